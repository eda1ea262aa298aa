//! A minimal spin lock, so `Sync` types need no `std::sync::Mutex` in the
//! `alloc`-only build. Critical sections in this crate are short (a few
//! moves or a memcpy) and never run arbitrary user code.

use core::cell::UnsafeCell;
use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicBool, Ordering};

/// A test-and-test-and-set lock.
pub(crate) struct SpinLock<T> {
    locked: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: `value` is reached only through a `SpinGuard`, and at most one
// guard exists at a time (the `locked` flag, taken with `Acquire` and
// released with `Release`), so sharing the lock only ever hands `T` from one
// thread to another: `T: Send` suffices.
unsafe impl<T: Send> Sync for SpinLock<T> {}

impl<T> SpinLock<T> {
    pub(crate) const fn new(value: T) -> SpinLock<T> {
        SpinLock {
            locked: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    pub(crate) fn lock(&self) -> SpinGuard<'_, T> {
        while self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            while self.locked.load(Ordering::Relaxed) {
                core::hint::spin_loop();
            }
        }
        SpinGuard {
            lock: self,
            _not_send: PhantomData,
        }
    }
}

/// Proof of holding the lock; `!Send` so it is released where it was taken.
pub(crate) struct SpinGuard<'a, T> {
    lock: &'a SpinLock<T>,
    _not_send: PhantomData<*mut ()>,
}

impl<T> Deref for SpinGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: this guard holds the lock, so no other reference to
        // `value` exists; the borrow is tied to `&self` and ends before the
        // guard releases the lock in `drop`.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for SpinGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes this the only borrow
        // through the guard.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for SpinGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.locked.store(false, Ordering::Release);
    }
}

/// Thread wakers and a minimal blocking executor, shared by the kiocb's
/// [`CompletionFuture::wait`](crate::kiocb::CompletionFuture::wait) and the
/// backends that wait for completions.
#[cfg(feature = "std")]
mod park {
    use std::future::Future;
    use std::pin::pin;
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};
    use std::thread::{self, Thread};

    /// Wakes a parked thread.
    struct Unparker(Thread);

    impl Wake for Unparker {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }

    /// A waker that unparks the current thread; made once per thread, so
    /// waiting allocates nothing.
    pub(crate) fn thread_waker() -> Waker {
        thread_local! {
            static WAKER: Waker = Waker::from(Arc::new(Unparker(thread::current())));
        }
        WAKER
            .try_with(Waker::clone)
            .unwrap_or_else(|_| Waker::from(Arc::new(Unparker(thread::current()))))
    }

    /// Polls `fut` on this thread, calling `idle` whenever it is pending
    /// (`idle` drives whatever completes it, or parks).
    pub(crate) fn drive_on<F: Future>(fut: F, mut idle: impl FnMut()) -> F::Output {
        let mut fut = pin!(fut);
        let waker = thread_waker();
        let mut cx = Context::from_waker(&waker);
        loop {
            if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
                return v;
            }
            idle();
        }
    }

    /// Polls `fut` on this thread, parking between polls.
    pub(crate) fn park_on<F: Future>(fut: F) -> F::Output {
        drive_on(fut, thread::park)
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn thread_wakers_are_made_once_per_thread() {
            assert!(super::thread_waker().will_wake(&super::thread_waker()));
        }
    }
}

#[cfg(feature = "std")]
pub(crate) use park::{drive_on, park_on};

/// Runs `f` on every item, even when some panic: with `std`, each call
/// runs under `catch_unwind` and the first panic is raised again once every
/// item has had its turn (the others are delivered, nothing is lost). When
/// already unwinding, later panics are dropped rather than raised twice.
pub(crate) fn run_all<T>(items: impl IntoIterator<Item = T>, mut f: impl FnMut(T)) {
    #[cfg(feature = "std")]
    {
        let mut first = None;
        for item in items {
            if let Err(p) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(item))) {
                first.get_or_insert(p);
            }
        }
        if let Some(p) = first {
            if !std::thread::panicking() {
                std::panic::resume_unwind(p);
            }
        }
    }
    #[cfg(not(feature = "std"))]
    for item in items {
        f(item);
    }
}

/// A bounded free list of recycled values (the reserve of a `mempool`):
/// what [`PagePool`](crate::PagePool) and [`FolioPool`](crate::FolioPool)
/// keep their frames in.
#[cfg(feature = "alloc")]
pub(crate) struct FreeList<T> {
    free: SpinLock<alloc::vec::Vec<T>>,
    max: usize,
}

#[cfg(feature = "alloc")]
impl<T> FreeList<T> {
    /// An empty list that keeps at most `max` values.
    pub(crate) const fn new(max: usize) -> FreeList<T> {
        FreeList {
            free: SpinLock::new(alloc::vec::Vec::new()),
            max,
        }
    }

    /// The most recently given value, if any.
    pub(crate) fn take(&self) -> Option<T> {
        self.free.lock().pop()
    }

    /// Keeps `value`, or drops it (outside the lock) when the list is full.
    pub(crate) fn give(&self, value: T) {
        let mut free = self.free.lock();
        if free.len() < self.max {
            free.push(value);
            return;
        }
        drop(free);
        drop(value);
    }

    /// Values held.
    pub(crate) fn len(&self) -> usize {
        self.free.lock().len()
    }

    /// Most values kept.
    pub(crate) fn max(&self) -> usize {
        self.max
    }
}
