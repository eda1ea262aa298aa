//! `rwf_flags`: `Kiocb::set_rw_flags` over arbitrary `rwf_t` bits ×
//! `RwType` × `FileCaps` × starting `ki_flags`, against an independent
//! reference of the kernel's `kiocb_set_rw_flags` (include/linux/fs.h):
//!
//! 1. no flags: nothing changes;
//! 2. bits outside `RWF_SUPPORTED` (0x1ff): EOPNOTSUPP, checked first;
//! 3. `RWF_APPEND | RWF_NOAPPEND`: EINVAL;
//! 4. `RWF_NOWAIT` without `FMODE_NOWAIT`: EOPNOTSUPP (else `IOCB_NOIO` too);
//! 5. `RWF_ATOMIC` on a read, or without `FMODE_CAN_ATOMIC_WRITE`: EOPNOTSUPP;
//! 6. `RWF_DONTCACHE` without `FOP_DONTCACHE`, or on a DAX inode: EOPNOTSUPP;
//! 7. the bits are copied (`RWF_SYNC` also sets `IOCB_DSYNC`);
//! 8. `RWF_NOAPPEND` on an `IOCB_APPEND` kiocb: EPERM on an append-only
//!    inode, else `IOCB_APPEND` is cleared.
//!
//! On error the flags, position and priority are unchanged. The crate's one
//! documented difference is kept: `RWF_NOAPPEND` (0x20) itself is not copied
//! into `ki_flags`.

#![no_main]

use arbitrary::{Result, Unstructured};
use iov_iter::Errno;
use iov_iter::kiocb::{FileCaps, IocbFlags, Kiocb, RwType, RwfFlags};
use libfuzzer_sys::fuzz_target;

// Raw kernel values, not the crate's constants.
const RWF_HIPRI: u32 = 0x1;
const RWF_DSYNC: u32 = 0x2;
const RWF_SYNC: u32 = 0x4;
const RWF_NOWAIT: u32 = 0x8;
const RWF_APPEND: u32 = 0x10;
const RWF_NOAPPEND: u32 = 0x20;
const RWF_ATOMIC: u32 = 0x40;
const RWF_DONTCACHE: u32 = 0x80;
const RWF_NOSIGNAL: u32 = 0x100;
const RWF_SUPPORTED: u32 = RWF_HIPRI
    | RWF_DSYNC
    | RWF_SYNC
    | RWF_NOWAIT
    | RWF_APPEND
    | RWF_NOAPPEND
    | RWF_ATOMIC
    | RWF_DONTCACHE
    | RWF_NOSIGNAL;
const IOCB_DSYNC: u32 = 0x2;
const IOCB_APPEND: u32 = 0x10;
const IOCB_NOIO: u32 = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let _ = fuzz_one(&mut u);
});

/// Returns the new `ki_flags` or the errno.
fn reference(ki_flags: u32, flags: u32, write: bool, caps: &FileCaps) -> Result<u32, i32> {
    const EPERM: i32 = 1;
    const EINVAL: i32 = 22;
    const EOPNOTSUPP: i32 = 95;
    if flags == 0 {
        return Ok(ki_flags);
    }
    if flags & !RWF_SUPPORTED != 0 {
        return Err(EOPNOTSUPP);
    }
    if flags & RWF_APPEND != 0 && flags & RWF_NOAPPEND != 0 {
        return Err(EINVAL);
    }
    let mut add = 0;
    if flags & RWF_NOWAIT != 0 {
        if !caps.nowait {
            return Err(EOPNOTSUPP);
        }
        add |= IOCB_NOIO;
    }
    if flags & RWF_ATOMIC != 0 && (!write || !caps.atomic_write) {
        return Err(EOPNOTSUPP);
    }
    if flags & RWF_DONTCACHE != 0 && (!caps.dontcache || caps.dax) {
        return Err(EOPNOTSUPP);
    }
    add |= flags & RWF_SUPPORTED & !RWF_NOAPPEND;
    if flags & RWF_SYNC != 0 {
        add |= IOCB_DSYNC;
    }
    let mut ki = ki_flags;
    if flags & RWF_NOAPPEND != 0 && ki & IOCB_APPEND != 0 {
        if caps.append_only {
            return Err(EPERM);
        }
        ki &= !IOCB_APPEND;
    }
    Ok(ki | add)
}

fn fuzz_one(u: &mut Unstructured) -> Result<()> {
    for _ in 0..16 {
        if u.is_empty() {
            break;
        }
        let flags: u32 = match u.int_in_range(0u8..=3)? {
            0 => u.arbitrary()?,
            // Mostly known bits, so the later rules are reached.
            _ => u.arbitrary::<u32>()? & RWF_SUPPORTED,
        };
        let ki_flags: u32 = match u.int_in_range(0u8..=2)? {
            0 => u.arbitrary()?,
            1 => u.arbitrary::<u32>()? & (IOCB_APPEND | 1 << 17 | 1 << 18),
            _ => 0,
        };
        let write: bool = u.arbitrary()?;
        let caps = FileCaps {
            nowait: u.arbitrary()?,
            atomic_write: u.arbitrary()?,
            dontcache: u.arbitrary()?,
            append_only: u.arbitrary()?,
            dax: u.arbitrary()?,
        };
        let pos: u64 = u.arbitrary()?;
        let ioprio: u16 = u.arbitrary()?;
        let rw = if write { RwType::Write } else { RwType::Read };
        let start = IocbFlags::from_bits_retain(ki_flags);
        let (mut kiocb, _fut) = if u.arbitrary()? {
            let (k, f) = Kiocb::new_async(pos);
            (k.with_flags(start).with_ioprio(ioprio), Some(f))
        } else {
            (
                Kiocb::new_sync(pos).with_flags(start).with_ioprio(ioprio),
                None,
            )
        };
        let sync = kiocb.is_sync();
        let got = kiocb.set_rw_flags(RwfFlags::from_raw_bits(flags), rw, &caps);
        let want = reference(ki_flags, flags, write, &caps);
        match (&got, want) {
            (Ok(()), Ok(new)) => assert_eq!(
                kiocb.flags.bits(),
                new,
                "flags {flags:#x} on {ki_flags:#x}, {rw:?}, {caps:?}"
            ),
            (Err(e), Err(errno)) => {
                assert_eq!(
                    e.errno(),
                    Errno::from_raw(errno),
                    "flags {flags:#x} on {ki_flags:#x}, {rw:?}, {caps:?}"
                );
                assert_eq!(kiocb.flags, start, "flags changed on error");
            }
            _ => panic!(
                "set_rw_flags({flags:#x}) on {ki_flags:#x}, {rw:?}, {caps:?}: got {got:?}, reference {want:?}"
            ),
        }
        assert_eq!(
            (kiocb.pos, kiocb.ioprio, kiocb.is_sync()),
            (pos, ioprio, sync)
        );
    }
    Ok(())
}
