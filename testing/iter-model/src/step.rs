//! Position operations, applied to an iterator and to its model alike.

use iov_iter::{Direction, Error, IovIter, Kind, MAX_RW_COUNT};

use crate::Model;

/// An amount resolved against the state when an operation runs: a fraction
/// of a base, just past the base, or a small absolute value. The base
/// ([`PosOp::resolve`]) is the bytes consumed ([`Model::pos`]) for a revert,
/// what the segments still hold from the position (`total - pos`) for a
/// reexpand, so that `Over` is the first invalid value there, and `count`
/// otherwise (the drivers' copies too).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Amt {
    /// `base * p / 1000`.
    Permille(u16),
    /// `base + 1 + k`.
    Over(u16),
    /// `k`.
    Abs(u16),
}

impl Amt {
    /// The amount against `base`.
    pub fn of(self, base: usize) -> usize {
        match self {
            Amt::Permille(p) => base * p as usize / 1000,
            Amt::Over(k) => base + 1 + k as usize,
            Amt::Abs(k) => k as usize,
        }
    }
}

/// A position operation with its amount resolved: the same call on the
/// iterator and on the [`Model`] ([`Model::step`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// `advance(n)`: [`Model::advance`].
    Advance(usize),
    /// `revert(n)`: [`Model::revert`].
    Revert(usize),
    /// `truncate(limit)`: [`Model::truncate`].
    Truncate(u64),
    /// `reexpand(n)`: [`Model::reexpand`].
    Reexpand(usize),
}

/// A position operation whose amount is resolved against the model when it
/// runs ([`PosOp::resolve`]); what the proptest drivers generate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PosOp {
    /// Advance by an amount of `count`.
    Advance(Amt),
    /// Revert by an amount of the bytes consumed (`Over`: past the start).
    Revert(Amt),
    /// Revert by `MAX_RW_COUNT + 1`.
    RevertHuge,
    /// Truncate to an amount of `count`.
    Truncate(Amt),
    /// Truncate to `u64::MAX`.
    TruncateMax,
    /// Reexpand to an amount of what the segments hold from the position
    /// (`Over`: past the end).
    Reexpand(Amt),
}

impl PosOp {
    /// The step this is in state `m`.
    pub fn resolve(self, m: &Model) -> Step {
        match self {
            PosOp::Advance(a) => Step::Advance(a.of(m.count)),
            PosOp::Revert(a) => Step::Revert(a.of(m.pos)),
            PosOp::RevertHuge => Step::Revert(MAX_RW_COUNT + 1),
            PosOp::Truncate(a) => Step::Truncate(a.of(m.count) as u64),
            PosOp::TruncateMax => Step::Truncate(u64::MAX),
            PosOp::Reexpand(a) => Step::Reexpand(a.of(m.total - m.pos)),
        }
    }
}

impl Model {
    /// Applies `step` to `it` and to the model, and returns what each said,
    /// `(iterator, model)`, for the driver to compare (`Ok(())` from both
    /// for an advance or a truncate). The driver then checks the iterator's
    /// state against the model as usual.
    #[must_use = "compare the iterator's result with the model's"]
    pub fn step<D: Direction, K: Kind>(
        &mut self,
        it: &mut IovIter<'_, D, K>,
        step: Step,
    ) -> (Result<(), Error>, Result<(), Error>) {
        match step {
            Step::Advance(n) => {
                it.advance(n);
                self.advance(n);
                (Ok(()), Ok(()))
            }
            Step::Revert(n) => (it.revert(n), self.revert(n)),
            Step::Truncate(limit) => {
                it.truncate(limit);
                self.truncate(limit);
                (Ok(()), Ok(()))
            }
            Step::Reexpand(n) => (it.reexpand(n), self.reexpand(n)),
        }
    }
}
