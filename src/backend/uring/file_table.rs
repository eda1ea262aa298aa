//! The ring's file table: which files the queue and its
//! [`UringFile`](super::UringFile)s do I/O on, each one's slot in the
//! registered-file table (`IORING_REGISTER_FILES`) when registration is on,
//! and when a file may be closed.
//!
//! The kernel resolves an SQE's file when it takes the SQE (at submission),
//! not when the SQE is queued, so a descriptor closed while its SQE waits
//! in the ring (a [`UringPlug`](super::UringPlug)) could name another file
//! by then, and a registered slot cleared and reused meanwhile would too.
//! The table therefore counts the operations that name each file, from
//! push to CQE, and closes a file (clears its slot, drops its descriptor)
//! only once its handle is gone *and* that count is 0.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

use io_uring::Submitter;

use super::sqe::Target;

/// A file's index in the table (stable while its handle or any operation
/// naming it lives; reused after).
pub(super) type FileId = u32;

/// `-1`: an empty slot of the registered-file table.
const EMPTY_SLOT: i32 = -1;

struct Entry {
    /// The table's reference to the descriptor (the handle holds the other
    /// one, for `AsFd`); closed when both are gone.
    fd: Arc<OwnedFd>,
    /// The registered slot naming this file, if it got one.
    slot: Option<u32>,
    /// Operations in the in-flight table that name this file.
    ops: usize,
    /// The handle (queue or [`UringFile`](super::UringFile)) is alive.
    open: bool,
}

/// The files of one ring.
pub(super) struct FileTable {
    entries: Vec<Option<Entry>>,
    free: Vec<FileId>,
    /// Free slots of the registered-file table; `None` when registration
    /// is off (not asked for, or refused by the kernel).
    slots: Option<Vec<u32>>,
}

impl FileTable {
    pub(super) fn new() -> FileTable {
        FileTable {
            entries: Vec::new(),
            free: Vec::new(),
            slots: None,
        }
    }

    /// Registers an empty table of `n` slots (`IORING_REGISTER_FILES` with
    /// every descriptor `-1`, which kernels since 5.5 accept). Returns
    /// whether the kernel took it; when it does not (`EINVAL`, `ENOMEM`,
    /// `EMFILE` past `RLIMIT_NOFILE`, `EPERM` under restrictions, ...),
    /// files use their plain descriptors.
    pub(super) fn register(&mut self, sub: &Submitter<'_>, n: u32) -> bool {
        if n == 0 || self.slots.is_some() {
            return self.slots.is_some();
        }
        let empty = vec![EMPTY_SLOT; n as usize];
        if sub.register_files(&empty).is_err() {
            return false;
        }
        // Hand slot 0 out first.
        self.slots = Some((0..n).rev().collect());
        true
    }

    /// Adds a file: takes a free registered slot if there is one and the
    /// kernel fills it (`IORING_REGISTER_FILES_UPDATE`), else the file goes
    /// by its descriptor. Returns the file's id and what its SQEs name.
    pub(super) fn add(&mut self, sub: &Submitter<'_>, fd: Arc<OwnedFd>) -> (FileId, Target) {
        let raw = fd.as_raw_fd();
        let mut slot = None;
        if let Some(free) = &mut self.slots {
            if let Some(s) = free.pop() {
                match sub.register_files_update(s, &[raw]) {
                    Ok(1) => slot = Some(s),
                    // The slot holds what it held (empty): free again.
                    Ok(_) | Err(_) => free.push(s),
                }
            }
        }
        let entry = Entry {
            fd,
            slot,
            ops: 0,
            open: true,
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.entries[id as usize] = Some(entry);
                id
            }
            None => {
                self.entries.push(Some(entry));
                (self.entries.len() - 1) as FileId
            }
        };
        let target = slot.map_or(Target::Fd(raw), Target::Fixed);
        (id, target)
    }

    fn entry(&mut self, id: FileId) -> &mut Entry {
        self.entries[id as usize]
            .as_mut()
            .expect("file table entry of a live handle or operation")
    }

    /// An SQE naming `id` was pushed.
    pub(super) fn op_started(&mut self, id: FileId) {
        self.entry(id).ops += 1;
    }

    /// The CQE of an operation naming `id` arrived.
    pub(super) fn op_done(&mut self, sub: &Submitter<'_>, id: FileId) {
        let e = self.entry(id);
        e.ops -= 1;
        if e.ops == 0 && !e.open {
            self.release(sub, id);
        }
    }

    /// The handle of `id` is gone: the file closes now, or with the CQE of
    /// the last operation naming it.
    pub(super) fn close(&mut self, sub: &Submitter<'_>, id: FileId) {
        let e = self.entry(id);
        e.open = false;
        if e.ops == 0 {
            self.release(sub, id);
        }
    }

    /// Empties the file's registered slot (the kernel keeps its own
    /// reference for requests still using it) and drops the table's
    /// descriptor. A slot the kernel would not empty is never handed out
    /// again: it may still name this file.
    fn release(&mut self, sub: &Submitter<'_>, id: FileId) {
        let Some(e) = self.entries[id as usize].take() else {
            return;
        };
        if let (Some(s), Some(free)) = (e.slot, &mut self.slots) {
            if matches!(sub.register_files_update(s, &[EMPTY_SLOT]), Ok(1)) {
                free.push(s);
            }
        }
        self.free.push(id);
        drop(e.fd);
    }
}
