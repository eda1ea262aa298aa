//! Placeholder: the swap demo (being written).

// The building blocks below are used by the demo (to come) and by their unit
// tests; until the demo exists much of their API is unused in the binary.
#[allow(dead_code)]
mod activate;
#[allow(dead_code)]
mod header;
#[allow(dead_code)]
mod swapmap;
#[cfg(test)]
mod testutil;

fn main() {}
