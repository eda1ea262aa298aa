//! Phase NBD: phase A's rounds through a [`SwapDevice`] on an
//! [`NbdDevice`] to `qemu-nbd` serving a file on a unix socket, flushed
//! after every batch of I/O. In some swap-outs the server is SIGKILLed
//! (by its pid) in the middle: the requests it failed, and those the dead
//! connection refused at once, must carry a connection errno, and their
//! pages come back dirty and intact (the rounds check it exactly, from the
//! failed requests). Then the server is restarted on the same file, a new
//! `NbdDevice` connected behind the same swap device (its slot map and
//! swap cache survive), the writes retried; every page is verified from
//! the restarted server at the end.

use crate::Config;
use crate::common::Summary;

#[cfg(not(feature = "nbd"))]
pub fn phase_nbd(_cfg: &Config, _ops: u64) -> Summary {
    let mut sum = Summary::new("NBD killed server");
    sum.skipped = Some(crate::common::skip("NBD", "built without the nbd feature"));
    sum
}

#[cfg(feature = "nbd")]
pub use imp::phase_nbd;

#[cfg(feature = "nbd")]
mod imp {
    use std::collections::BTreeMap;
    use std::fs::File;
    use std::os::unix::fs::FileExt;
    use std::path::PathBuf;
    use std::sync::{Arc, Mutex};

    use iov_iter::backend::nbd::NbdDevice;
    use iov_iter::dio::{AsyncIo, AsyncMode, DioAlign, DirectIo};
    use iov_iter::kiocb::{FileCaps, RwType, RwfFlags};
    use iov_iter::{Errno, PAGE_SIZE, UserIovec};

    use iov_iter_swap::swapio::{IoMode, SwapDevice};
    use iov_iter_swap::swapmap::{Slot, SlotRng};
    use iov_iter_swap::testutil::{NbdServer, TestDir};

    use super::{Config, Summary};
    use crate::common::{Injected, lock, skip};
    use crate::swaprun::{Side, SwapReport, SwapRun};

    /// The errnos a killed server's requests may fail with.
    const CONNECTION_ERRNOS: [Errno; 5] = [
        Errno::ENOTCONN,
        Errno::ECONNRESET,
        Errno::EPIPE,
        Errno::ESHUTDOWN,
        Errno::EIO,
    ];

    /// Requests that did not complete in full, with their errno.
    type FailedLog = Arc<Mutex<Vec<(Injected, Option<Errno>)>>>;

    /// The connection behind the swap device, replaced on reconnect; every
    /// request that did not complete in full is logged with its errno.
    struct NbdLink {
        dev: Mutex<Arc<NbdDevice>>,
        failed: FailedLog,
    }

    impl NbdLink {
        fn cur(&self) -> Arc<NbdDevice> {
            Arc::clone(&lock(&self.dev))
        }
    }

    impl DirectIo for NbdLink {
        fn dio_align(&self) -> DioAlign {
            self.cur().dio_align()
        }
        fn caps(&self) -> FileCaps {
            self.cur().caps()
        }
        fn max_segs(&self) -> usize {
            self.cur().max_segs()
        }
        fn capacity(&self) -> Option<u64> {
            self.cur().capacity()
        }
        fn async_mode(&self) -> AsyncMode {
            AsyncMode::Queued
        }
        unsafe fn transfer(
            &self,
            rw: RwType,
            pos: u64,
            iov: &[UserIovec],
            flags: RwfFlags,
        ) -> iov_iter::Result<usize> {
            // SAFETY: forwarded unchanged under the caller's promises.
            unsafe { self.cur().transfer(rw, pos, iov, flags) }
        }
        fn start(&self, io: AsyncIo) {
            let (rw, pos, len) = (io.rw(), io.pos(), io.len());
            let failed = Arc::clone(&self.failed);
            let io = io.on_complete(move |res| {
                match &res {
                    Ok(n) if *n == len => {}
                    Ok(_) => lock(&failed).push((Injected { rw, pos, len }, None)),
                    Err(e) => lock(&failed).push((Injected { rw, pos, len }, Some(e.errno()))),
                }
                res
            });
            self.cur().start(io);
        }
        fn drive(&self, min_complete: usize) -> iov_iter::Result<usize> {
            self.cur().drive(min_complete)
        }
    }

    #[derive(Debug, Default)]
    struct NbdStats {
        kills_left: u32,
        kills: u64,
        in_flight_at_kill: u64,
        restarts: u64,
        flushes: u64,
        errnos: BTreeMap<String, u64>,
        failed_requests: u64,
    }

    struct NbdSide {
        link: Arc<NbdLink>,
        server: Option<NbdServer>,
        image: PathBuf,
        file: File,
        rng: SlotRng,
        faults_on: bool,
        kill_at: Option<usize>,
        stats: Arc<Mutex<NbdStats>>,
    }

    impl NbdSide {
        /// qemu-nbd started again on the same image, a new device behind
        /// the link.
        fn reconnect(&mut self) {
            let server = NbdServer::start(&self.image).expect("qemu-nbd restarts");
            let dev = Self::connect(&server.uri);
            *lock(&self.link.dev) = Arc::new(dev);
            self.server = Some(server);
            lock(&self.stats).restarts += 1;
        }

        fn connect(uri: &str) -> NbdDevice {
            NbdDevice::builder()
                .connections(2)
                .connect(uri)
                .unwrap_or_else(|e| panic!("connecting to {uri}: {e}"))
        }
    }

    impl Side for NbdSide {
        fn device_page(&self, slot: Slot) -> Box<[u8; PAGE_SIZE]> {
            let mut buf = Box::new([0u8; PAGE_SIZE]);
            self.file
                .read_exact_at(&mut buf[..], slot.byte_offset())
                .unwrap();
            buf
        }

        fn take_faults(&mut self) -> Vec<Injected> {
            let failed = std::mem::take(&mut *lock(&self.link.failed));
            let mut out = Vec::new();
            for (f, errno) in failed {
                match errno {
                    Some(e) if CONNECTION_ERRNOS.contains(&e) => {
                        *lock(&self.stats)
                            .errnos
                            .entry(format!("{e:?}"))
                            .or_default() += 1;
                    }
                    // A request of several commands, some answered
                    // before the kill: short, as a sequential transfer.
                    None => *lock(&self.stats).errnos.entry("short".into()).or_default() += 1,
                    other => panic!("NBD request {f:?} failed with {other:?}"),
                }
                assert!(
                    self.server.is_none(),
                    "a request failed ({errno:?}) with the server up"
                );
                lock(&self.stats).failed_requests += 1;
                out.push(f);
            }
            out
        }

        fn set_faults(&mut self, on: bool) {
            self.faults_on = on;
        }

        fn during_swap_out(&mut self, k: usize, n: usize) {
            if k == 0 {
                self.kill_at = None;
                let left = lock(&self.stats).kills_left;
                if self.faults_on && left > 0 && n >= 16 && self.rng.below(3) == 0 {
                    self.kill_at = Some(n / 4 + self.rng.below((n / 2) as u32) as usize);
                }
            }
            if self.kill_at == Some(k) {
                let mut server = self.server.take().expect("a server to kill");
                let in_flight = self.link.cur().in_flight() as u64;
                eprintln!(
                    "NBD: SIGKILL to qemu-nbd pid {} after {k} of {n} pages, {in_flight} \
                     requests in flight",
                    server.pid()
                );
                server.kill();
                let mut st = lock(&self.stats);
                st.in_flight_at_kill += in_flight;
                st.kills += 1;
                st.kills_left -= 1;
            }
        }

        fn restart(&mut self) {
            if let Some(mut server) = self.server.take() {
                server.kill();
            }
            self.reconnect();
            self.link.cur().flush().expect("flush");
        }

        fn recover(&mut self) {
            if self.server.is_none() {
                // The swap device drained: everything in flight completed,
                // and what came after the kill was refused.
                assert!(
                    self.link.cur().is_dead(),
                    "the connection outlived its server"
                );
                self.reconnect();
            }
            self.link.cur().flush().expect("flush");
            lock(&self.stats).flushes += 1;
        }
    }

    pub fn phase_nbd(cfg: &Config, ops: u64) -> Summary {
        let mut sum = Summary::new("NBD killed server");
        let dir = TestDir::new("stress-nbd");
        let image = dir.join("export.img");
        let slots = (cfg.nbd_pages * 2) as u64;
        std::fs::File::create(&image)
            .and_then(|f| f.set_len(slots * PAGE_SIZE as u64))
            .unwrap();
        let Some(server) = NbdServer::start(&image) else {
            sum.skipped = Some(skip("NBD", "qemu-nbd or libnbd unavailable"));
            return sum;
        };
        let dev = NbdSide::connect(&server.uri);
        let link = Arc::new(NbdLink {
            dev: Mutex::new(Arc::new(dev)),
            failed: Arc::new(Mutex::new(Vec::new())),
        });
        let swap = SwapDevice::new(link.clone(), IoMode::Uring, slots).unwrap();
        swap.set_page_cluster(0);
        let stats = Arc::new(Mutex::new(NbdStats {
            kills_left: cfg.nbd_kills,
            ..NbdStats::default()
        }));
        let side = NbdSide {
            link: Arc::clone(&link),
            server: Some(server),
            image: image.clone(),
            file: File::open(&image).unwrap(),
            rng: SlotRng::new(cfg.seed ^ 0x2bd),
            faults_on: true,
            kill_at: None,
            stats: Arc::clone(&stats),
        };
        let t0 = std::time::Instant::now();
        let mut report = SwapReport::default();
        let mut run = SwapRun::new(
            cfg.seed ^ 0x2bd,
            cfg.nbd_pages,
            Box::new(side),
            swap,
            0,
            false,
            &mut report,
        );
        // Rounds until the ops are done and every kill happened.
        let mut target = ops;
        loop {
            run.run_rounds(target);
            if lock(&stats).kills_left == 0 {
                break;
            }
            target = run.report.page_ops + 1;
        }
        // The last trip out and back in goes to a server restarted once
        // more, between rounds.
        run.side.restart();
        run.finish();
        drop(run);
        report.time = t0.elapsed();
        let st = lock(&stats);
        report.print();
        println!(
            "    server SIGKILLed {} times mid-swap-out ({} requests in flight at the kills), \
             restarted {} times; {} requests failed: {:?}; {} flushes",
            st.kills, st.in_flight_at_kill, st.restarts, st.failed_requests, st.errnos, st.flushes
        );
        assert_eq!(st.kills, u64::from(cfg.nbd_kills));
        assert!(
            st.failed_requests > 0,
            "no request failed: the kills came too late"
        );
        assert!(
            report.redirtied > 0,
            "no page came back dirty from a killed server"
        );
        sum = report.summary("NBD killed server");
        sum.faults = st.kills;
        sum.failures = st.failed_requests;
        sum
    }
}
