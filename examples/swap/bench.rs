//! `swap bench`: benchmarks of the swap paths. Not implemented yet.
//!
//! Building blocks for whoever writes it: [`crate::area::prepare`] (a swap
//! area where `O_DIRECT` works), [`crate::swapio::SwapDevice`] (swap-out and
//! swap-in in every [`crate::swapio::IoMode`], with or without a
//! [`crate::swapio::SwapPlug`]; counters and per-kiocb latencies), and
//! [`crate::workload`] (page patterns, slot plans, latency percentiles,
//! throughput).

use std::process::ExitCode;

/// Runs `swap bench ARGS`: for now, says so and exits with status 2.
pub fn main(args: &[String]) -> ExitCode {
    let _ = args;
    eprintln!("swap bench: not implemented yet");
    ExitCode::from(2)
}
