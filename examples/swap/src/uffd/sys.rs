//! `#[repr(C)]` mirrors of the structures in `include/uapi/linux/userfaultfd.h`
//! and the `UFFDIO_*` ioctl opcodes, computed from the structure types with
//! rustix's `opcode` helpers (never hard-coded numbers).
//!
//! Everything here is plain old data: every bit pattern is valid.

use core::mem::size_of;
use rustix::ioctl::{Opcode, opcode};

/// `UFFD_API`: the only API version the kernel knows.
pub(crate) const UFFD_API: u64 = 0xAA;

/// `UFFD_USER_MODE_ONLY`: flag of `userfaultfd(2)` (Linux 5.11+).
pub(crate) const UFFD_USER_MODE_ONLY: u32 = 1;

/// `UFFD_EVENT_*` values of `uffd_msg.event`.
pub(crate) const UFFD_EVENT_PAGEFAULT: u8 = 0x12;
pub(crate) const UFFD_EVENT_FORK: u8 = 0x13;
pub(crate) const UFFD_EVENT_REMAP: u8 = 0x14;
pub(crate) const UFFD_EVENT_REMOVE: u8 = 0x15;
pub(crate) const UFFD_EVENT_UNMAP: u8 = 0x16;

/// `UFFD_PAGEFAULT_FLAG_*` bits of `uffd_msg.arg.pagefault.flags`.
pub(crate) const UFFD_PAGEFAULT_FLAG_WRITE: u64 = 1 << 0;
pub(crate) const UFFD_PAGEFAULT_FLAG_WP: u64 = 1 << 1;
pub(crate) const UFFD_PAGEFAULT_FLAG_MINOR: u64 = 1 << 2;

/// `struct uffdio_api`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct UffdioApi {
    pub api: u64,
    pub features: u64,
    pub ioctls: u64,
}

/// `struct uffdio_range`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct UffdioRange {
    pub start: u64,
    pub len: u64,
}

/// `struct uffdio_register`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct UffdioRegister {
    pub range: UffdioRange,
    pub mode: u64,
    pub ioctls: u64,
}

/// `struct uffdio_copy`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct UffdioCopy {
    pub dst: u64,
    pub src: u64,
    pub len: u64,
    pub mode: u64,
    /// Bytes copied, or a negated errno (output).
    pub copy: i64,
}

/// `struct uffdio_zeropage`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct UffdioZeropage {
    pub range: UffdioRange,
    pub mode: u64,
    /// Bytes zero-mapped, or a negated errno (output).
    pub zeropage: i64,
}

/// `struct uffdio_continue`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct UffdioContinue {
    pub range: UffdioRange,
    pub mode: u64,
    /// Bytes mapped, or a negated errno (output).
    pub mapped: i64,
}

/// `struct uffdio_poison`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct UffdioPoison {
    pub range: UffdioRange,
    pub mode: u64,
    /// Bytes poisoned, or a negated errno (output).
    pub updated: i64,
}

/// `uffd_msg.arg.pagefault`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct UffdMsgPagefault {
    pub flags: u64,
    pub address: u64,
    /// `feat.ptid`: faulting thread id (only with `UFFD_FEATURE_THREAD_ID`).
    pub ptid: u32,
    pub _pad: u32,
}

/// `uffd_msg.arg.fork`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct UffdMsgFork {
    pub ufd: u32,
}

/// `uffd_msg.arg.remap`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct UffdMsgRemap {
    pub from: u64,
    pub to: u64,
    pub len: u64,
}

/// `uffd_msg.arg.remove` (also used by `UFFD_EVENT_UNMAP`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct UffdMsgRemove {
    pub start: u64,
    pub end: u64,
}

/// `uffd_msg.arg`.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) union UffdMsgArg {
    pub pagefault: UffdMsgPagefault,
    pub fork: UffdMsgFork,
    pub remap: UffdMsgRemap,
    pub remove: UffdMsgRemove,
    pub reserved: [u64; 3],
}

/// `struct uffd_msg` (declared `__packed` in C; every field is naturally
/// aligned, so `repr(C)` has the same layout and size).
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct UffdMsg {
    pub event: u8,
    pub reserved1: u8,
    pub reserved2: u16,
    pub reserved3: u32,
    pub arg: UffdMsgArg,
}

impl UffdMsg {
    /// An all-zero message (a valid bit pattern).
    pub(crate) const ZERO: Self = Self {
        event: 0,
        reserved1: 0,
        reserved2: 0,
        reserved3: 0,
        arg: UffdMsgArg { reserved: [0; 3] },
    };
}

// Sizes from the kernel header; the ioctl opcodes encode them, so a mismatch
// would make every ioctl fail with ENOTTY / EINVAL.
const _: () = assert!(size_of::<UffdioApi>() == 24);
const _: () = assert!(size_of::<UffdioRange>() == 16);
const _: () = assert!(size_of::<UffdioRegister>() == 32);
const _: () = assert!(size_of::<UffdioCopy>() == 40);
const _: () = assert!(size_of::<UffdioZeropage>() == 32);
const _: () = assert!(size_of::<UffdioContinue>() == 32);
const _: () = assert!(size_of::<UffdioPoison>() == 32);
const _: () = assert!(size_of::<UffdMsg>() == 32);
const _: () = assert!(core::mem::offset_of!(UffdMsg, arg) == 8);
const _: () = assert!(core::mem::offset_of!(UffdMsgPagefault, ptid) == 16);

/// `UFFDIO`: the ioctl group.
const UFFDIO: u8 = 0xAA;

/// `_UFFDIO_*` ioctl numbers; also the bit positions in the `ioctls` masks.
pub(crate) const NR_REGISTER: u8 = 0x00;
pub(crate) const NR_UNREGISTER: u8 = 0x01;
pub(crate) const NR_WAKE: u8 = 0x02;
pub(crate) const NR_COPY: u8 = 0x03;
pub(crate) const NR_ZEROPAGE: u8 = 0x04;
pub(crate) const NR_MOVE: u8 = 0x05;
pub(crate) const NR_WRITEPROTECT: u8 = 0x06;
pub(crate) const NR_CONTINUE: u8 = 0x07;
pub(crate) const NR_POISON: u8 = 0x08;
pub(crate) const NR_API: u8 = 0x3F;

/// `UFFDIO_API`: `_IOWR(UFFDIO, _UFFDIO_API, struct uffdio_api)`.
pub(crate) const UFFDIO_API: Opcode = opcode::read_write::<UffdioApi>(UFFDIO, NR_API);
/// `UFFDIO_REGISTER`: `_IOWR(UFFDIO, _UFFDIO_REGISTER, struct uffdio_register)`.
pub(crate) const UFFDIO_REGISTER: Opcode =
    opcode::read_write::<UffdioRegister>(UFFDIO, NR_REGISTER);
/// `UFFDIO_UNREGISTER`: `_IOR(UFFDIO, _UFFDIO_UNREGISTER, struct uffdio_range)`.
pub(crate) const UFFDIO_UNREGISTER: Opcode = opcode::read::<UffdioRange>(UFFDIO, NR_UNREGISTER);
/// `UFFDIO_WAKE`: `_IOR(UFFDIO, _UFFDIO_WAKE, struct uffdio_range)`.
pub(crate) const UFFDIO_WAKE: Opcode = opcode::read::<UffdioRange>(UFFDIO, NR_WAKE);
/// `UFFDIO_COPY`: `_IOWR(UFFDIO, _UFFDIO_COPY, struct uffdio_copy)`.
pub(crate) const UFFDIO_COPY: Opcode = opcode::read_write::<UffdioCopy>(UFFDIO, NR_COPY);
/// `UFFDIO_ZEROPAGE`: `_IOWR(UFFDIO, _UFFDIO_ZEROPAGE, struct uffdio_zeropage)`.
pub(crate) const UFFDIO_ZEROPAGE: Opcode =
    opcode::read_write::<UffdioZeropage>(UFFDIO, NR_ZEROPAGE);
/// `UFFDIO_CONTINUE`: `_IOWR(UFFDIO, _UFFDIO_CONTINUE, struct uffdio_continue)`.
pub(crate) const UFFDIO_CONTINUE: Opcode =
    opcode::read_write::<UffdioContinue>(UFFDIO, NR_CONTINUE);
/// `UFFDIO_POISON`: `_IOWR(UFFDIO, _UFFDIO_POISON, struct uffdio_poison)`.
pub(crate) const UFFDIO_POISON: Opcode = opcode::read_write::<UffdioPoison>(UFFDIO, NR_POISON);

#[cfg(test)]
mod tests {
    use super::*;

    /// The opcodes as the C preprocessor computes them on x86_64, only to
    /// cross-check the computed ones.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn opcodes_match_c_header_on_x86_64() {
        assert_eq!(UFFDIO_API as u64, 0xc018_aa3f);
        assert_eq!(UFFDIO_REGISTER as u64, 0xc020_aa00);
        assert_eq!(UFFDIO_UNREGISTER as u64, 0x8010_aa01);
        assert_eq!(UFFDIO_WAKE as u64, 0x8010_aa02);
        assert_eq!(UFFDIO_COPY as u64, 0xc028_aa03);
        assert_eq!(UFFDIO_ZEROPAGE as u64, 0xc020_aa04);
        assert_eq!(UFFDIO_CONTINUE as u64, 0xc020_aa07);
        assert_eq!(UFFDIO_POISON as u64, 0xc020_aa08);
    }
}
