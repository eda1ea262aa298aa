//! Test data: reproducible random bytes and canaries.

/// Fills `buf` with deterministic pseudo-random bytes (xorshift64*, eight
/// at a time) from `seed`.
pub fn fill_random(seed: u64, buf: &mut [u8]) {
    let mut x = seed | 1;
    for chunk in buf.chunks_mut(8) {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let v = x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
}

/// `len` bytes of [`fill_random`] from `seed`.
pub fn random_vec(seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0; len];
    fill_random(seed, &mut v);
    v
}

/// A position-dependent canary of `len` bytes (period 256; `salt` tells
/// buffers apart), so that a byte written to the wrong place is seen even
/// when it happens to equal a constant. Built by doubling (memcpy), not byte
/// by byte: the tests run unoptimised.
pub fn canary(salt: u8, len: usize) -> Vec<u8> {
    let mut v: Vec<u8> = (0..=255u8)
        .map(|i| i.wrapping_mul(151) ^ 0x5a ^ salt)
        .collect();
    while v.len() < len {
        v.extend_from_within(..);
    }
    v.truncate(len);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canary_is_the_byte_pattern() {
        let c = canary(3, 1000);
        assert_eq!(c.len(), 1000);
        for (i, &b) in c.iter().enumerate() {
            assert_eq!(b, (i as u8).wrapping_mul(151) ^ 0x5a ^ 3);
        }
        assert!(canary(0, 0).is_empty());
    }

    #[test]
    fn random_is_reproducible() {
        assert_eq!(random_vec(5, 13), random_vec(5, 13));
        assert_ne!(random_vec(5, 16), random_vec(6, 16));
        assert_eq!(&random_vec(5, 16)[..13], &random_vec(5, 13)[..]);
    }
}
