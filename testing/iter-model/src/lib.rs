//! The flat model of an [`IovIter`](iov_iter::IovIter), shared by the tests
//! that check the iterator against it: the proptest suite (`tests/model.rs`),
//! the kernel-oracle suite (`tests/kernel_oracle.rs`, for the stream
//! position) and the `iter_ops` fuzz target (`fuzz/fuzz_targets/iter_ops.rs`).
//!
//! - [`Model`]: the concatenated segment bytes, where each segment lives, the
//!   stream position and `count`, and the kernel's segment position, with the
//!   operations (advance, revert, truncate, reexpand, save / restore, copies,
//!   page extraction) following the rules of `lib/iov_iter.c` and
//!   `include/linux/iov_iter.h`. See its documentation for the rules.
//! - [`Layout`], [`split_spans`], [`concat()`]: segments carved out of one
//!   buffer.
//! - [`fill_random`], [`random_vec`], [`canary`]: test data.
//! - [`Step`] and [`Model::step`]: one position operation (advance, revert,
//!   truncate, reexpand) on the iterator and on the model alike; [`PosOp`]
//!   and [`Amt`]: the operation and its amount before they are resolved
//!   against the model's state when the operation runs.
//!
//! Each driver keeps its own input generation (proptest strategies,
//! `arbitrary::Unstructured`) and its own checks; this crate only says what
//! the iterator must look like. It makes no syscalls (the model suite runs
//! under Miri) and has no unsafe code.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod data;
mod layout;
mod model;
mod step;

pub use data::{canary, fill_random, random_vec};
pub use layout::{Layout, concat, split_spans};
pub use model::{Model, Seg, Snap, user_extract};
pub use step::{Amt, PosOp, Step};
