//! A small bit-flag type generator for the `UFFD*` masks (the package
//! depends on no flags crate): a `u64` newtype with named constants, the
//! set operations and a `Debug` that names the known bits.

/// Declares a `u64` flag type: `flags! { /// doc  pub struct Name { /// doc
/// const A = 1 << 0; ... } }`. Unknown bits are kept (`from_bits_retain`).
macro_rules! flags {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$fmeta:meta])* const $flag:ident = $value:expr; )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
        pub struct $name(u64);

        impl $name {
            $( $(#[$fmeta])* pub const $flag: $name = $name($value); )*

            /// No bit set.
            pub const fn empty() -> $name {
                $name(0)
            }

            /// The raw bits.
            pub const fn bits(self) -> u64 {
                self.0
            }

            /// From raw bits, unknown ones kept.
            pub const fn from_bits_retain(bits: u64) -> $name {
                $name(bits)
            }

            /// Whether every bit of `other` is set.
            pub const fn contains(self, other: $name) -> bool {
                self.0 & other.0 == other.0
            }

            /// Whether any bit of `other` is set.
            pub const fn intersects(self, other: $name) -> bool {
                self.0 & other.0 != 0
            }

            /// Whether no bit is set.
            pub const fn is_empty(self) -> bool {
                self.0 == 0
            }
        }

        impl core::ops::BitOr for $name {
            type Output = $name;
            fn bitor(self, rhs: $name) -> $name {
                $name(self.0 | rhs.0)
            }
        }

        impl core::ops::BitOrAssign for $name {
            fn bitor_assign(&mut self, rhs: $name) {
                self.0 |= rhs.0;
            }
        }

        impl core::ops::BitAnd for $name {
            type Output = $name;
            fn bitand(self, rhs: $name) -> $name {
                $name(self.0 & rhs.0)
            }
        }

        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                let mut rest = self.0;
                let mut first = true;
                f.write_str(concat!(stringify!($name), "("))?;
                $(
                    if $value != 0 && self.0 & $value == $value {
                        if !first {
                            f.write_str(" | ")?;
                        }
                        f.write_str(stringify!($flag))?;
                        first = false;
                        rest &= !$value;
                    }
                )*
                if rest != 0 {
                    if !first {
                        f.write_str(" | ")?;
                    }
                    write!(f, "{rest:#x}")?;
                }
                f.write_str(")")
            }
        }
    };
}

pub(crate) use flags;

#[cfg(test)]
mod tests {
    flags! {
        /// Test flags.
        pub struct T {
            /// A.
            const A = 1 << 0;
            /// B.
            const B = 1 << 3;
        }
    }

    #[test]
    fn set_operations_and_debug() {
        let ab = T::A | T::B;
        assert!(ab.contains(T::A) && ab.intersects(T::B) && !T::A.contains(ab));
        assert_eq!((ab & T::B), T::B);
        assert!(T::empty().is_empty());
        assert_eq!(T::B.bits(), 8);
        assert_eq!(format!("{ab:?}"), "T(A | B)");
        assert_eq!(format!("{:?}", T::from_bits_retain(0x31)), "T(A | 0x30)");
        assert_eq!(format!("{:?}", T::empty()), "T()");
    }
}
