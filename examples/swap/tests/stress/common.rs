//! What every phase shares: the configuration from the environment, the
//! per-phase summary, and the fault-injecting RAM device.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use iov_iter::backend::mem::{Fault, FaultPlan, MemDevice};
use iov_iter::dio::{AsyncIo, AsyncMode, DioAlign, DirectIo};
use iov_iter::kiocb::{FileCaps, RwType, RwfFlags};
use iov_iter::{PAGE_SIZE, UserIovec};

use iov_iter_swap::swapmap::{Slot, SlotRng};

pub const PS: u64 = PAGE_SIZE as u64;

pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

pub fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim().replace('_', "");
    let parsed = match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => v.parse(),
    };
    Some(parsed.unwrap_or_else(|e| panic!("{name}={v}: {e}")))
}

pub fn seed_from_env() -> u64 {
    env_u64("STRESS_SEED").unwrap_or_else(|| {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let mut r = SlotRng::new(t.as_nanos() as u64 ^ (u64::from(std::process::id()) << 48));
        r.next_u64()
    })
}

pub fn rate(ops: u64, t: Duration) -> f64 {
    ops as f64 / t.as_secs_f64().max(1e-9)
}

/// Prints a loud SKIP line (and returns the reason, for the summary).
pub fn skip(phase: &str, why: &str) -> String {
    eprintln!("\n**************** SKIPPED swap_stress phase {phase}: {why} ****************\n");
    why.to_string()
}

/// One phase's line of the final table: what the README reports.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    pub name: &'static str,
    /// Page operations (a page written or read through the path under
    /// test counts one).
    pub ops: u64,
    /// Faults injected (or server kills, for NBD: see `details`).
    pub faults: u64,
    /// Failed operations seen (batches or requests that did not complete
    /// in full; for NBD, the requests the kills failed).
    pub failures: u64,
    /// Pages (or requests) done again after a failure.
    pub retries: u64,
    /// Pages whose data could not be found again (must be 0).
    pub lost: u64,
    /// Page verifications by checksum (or against the model).
    pub verified: u64,
    pub time: Duration,
    pub skipped: Option<String>,
}

impl Summary {
    pub fn new(name: &'static str) -> Summary {
        Summary {
            name,
            ..Summary::default()
        }
    }
}

/// A tag for logical page `index` at `generation`, for `fill_page`.
pub fn tag(index: usize, generation: u32) -> u64 {
    ((index as u64) << 32) | u64::from(generation)
}

/// A transfer a fault was injected into.
#[derive(Debug, Clone, Copy)]
pub struct Injected {
    pub rw: RwType,
    pub pos: u64,
    pub len: usize,
}

impl Injected {
    pub fn covers(&self, slot: Slot) -> bool {
        let p = slot.byte_offset();
        self.pos <= p && p + PS <= self.pos + self.len as u64
    }
}

struct Injector {
    rng: SlotRng,
    one_in: u32,
    /// Short transfers are cut to a multiple of this (1: any length).
    short_align: usize,
    enabled: bool,
    injected: u64,
    log: Vec<Injected>,
}

/// Completions the device holds back, and the order it delivers them in.
struct Pending {
    ios: Vec<AsyncIo>,
    rng: SlotRng,
}

/// A [`MemDevice`] whose transfers get a one-shot [`FaultPlan`] at random
/// (`EIO`, or a short transfer of a random length), armed just before the
/// transfer (so the fault's target and the request's length are known),
/// and logged. Deferred, it holds asynchronous requests back until it is
/// driven and then completes them in a random order (the transfer, and
/// so the fault, happens at completion).
pub struct FaultyMem {
    pub mem: Arc<MemDevice>,
    inj: Mutex<Injector>,
    pending: Option<Mutex<Pending>>,
}

impl FaultyMem {
    /// Faults on one transfer in `one_in` (0: never), short lengths cut
    /// to multiples of `short_align`; `deferred` completions reordered.
    pub fn new(
        mem: Arc<MemDevice>,
        seed: u64,
        one_in: u32,
        short_align: usize,
        deferred: bool,
    ) -> FaultyMem {
        FaultyMem {
            mem,
            inj: Mutex::new(Injector {
                rng: SlotRng::new(seed ^ 0xfa17_fa17_fa17_fa17),
                one_in,
                short_align: short_align.max(1),
                enabled: one_in > 0,
                injected: 0,
                log: Vec::new(),
            }),
            pending: deferred.then(|| {
                Mutex::new(Pending {
                    ios: Vec::new(),
                    rng: SlotRng::new(seed ^ 0x0de1_a7ed),
                })
            }),
        }
    }

    pub fn set_enabled(&self, on: bool) {
        let mut inj = lock(&self.inj);
        inj.enabled = on && inj.one_in > 0;
    }

    pub fn take_log(&self) -> Vec<Injected> {
        std::mem::take(&mut lock(&self.inj).log)
    }

    /// Faults injected so far.
    pub fn injected(&self) -> u64 {
        lock(&self.inj).injected
    }

    /// Requests held back.
    pub fn pending(&self) -> usize {
        self.pending.as_ref().map_or(0, |p| lock(p).ios.len())
    }
}

impl DirectIo for FaultyMem {
    fn dio_align(&self) -> DioAlign {
        DirectIo::dio_align(&*self.mem)
    }

    fn caps(&self) -> FileCaps {
        DirectIo::caps(&*self.mem)
    }

    fn max_segs(&self) -> usize {
        DirectIo::max_segs(&*self.mem)
    }

    fn capacity(&self) -> Option<u64> {
        DirectIo::capacity(&*self.mem)
    }

    fn async_mode(&self) -> AsyncMode {
        if self.pending.is_some() {
            AsyncMode::Queued
        } else {
            AsyncMode::Inline
        }
    }

    unsafe fn transfer(
        &self,
        rw: RwType,
        pos: u64,
        iov: &[UserIovec],
        flags: RwfFlags,
    ) -> iov_iter::Result<usize> {
        let len: usize = iov.iter().map(|v| v.len).sum();
        // Held across the transfer: the armed fault hits this one.
        let mut inj = lock(&self.inj);
        let one_in = inj.one_in;
        if inj.enabled && len > 0 && inj.rng.below(one_in) == 0 {
            let fault = if inj.rng.below(2) == 0 {
                Fault::EIO
            } else {
                // Anything from nothing to all but one unit: partial
                // pages and whole pages of a batch.
                let a = inj.short_align;
                let units = (len / a).max(1) as u32;
                Fault::Short(inj.rng.below(units) as usize * a)
            };
            self.mem.inject(FaultPlan::next(1, fault));
            inj.injected += 1;
            inj.log.push(Injected { rw, pos, len });
        }
        // SAFETY: the caller's promise for `iov` covers this call, which
        // forwards it unchanged for the duration of this one.
        let r = unsafe { DirectIo::transfer(&*self.mem, rw, pos, iov, flags) };
        assert_eq!(self.mem.armed_faults(), 0, "a one-shot fault was not used");
        drop(inj);
        r
    }

    fn start(&self, io: AsyncIo) {
        match &self.pending {
            Some(p) => lock(p).ios.push(io),
            None => {
                // SAFETY: the request owns its memory until it completes,
                // and its iovecs describe that memory.
                let res = unsafe { self.transfer(io.rw(), io.pos(), io.iovecs(), io.flags()) };
                io.complete(res);
            }
        }
    }

    /// Completes at least `min_complete` (at least one) held-back requests
    /// if there are any, picked at random, then more at random.
    fn drive(&self, min_complete: usize) -> iov_iter::Result<usize> {
        let Some(p) = &self.pending else {
            return Ok(0);
        };
        let mut done = 0usize;
        loop {
            let io = {
                let mut p = lock(p);
                if p.ios.is_empty() || (done >= min_complete.max(1) && p.rng.below(2) == 0) {
                    break;
                }
                let len = p.ios.len() as u32;
                let k = p.rng.below(len) as usize;
                p.ios.swap_remove(k)
            };
            // SAFETY: as in `start`.
            let res = unsafe { self.transfer(io.rw(), io.pos(), io.iovecs(), io.flags()) };
            io.complete(res);
            done += 1;
        }
        Ok(done)
    }
}
