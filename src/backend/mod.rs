//! Direct-I/O backends: each implements [`Transfer`](crate::dio::Transfer).
//!
//! - [`mem`]: a RAM device with the same alignment rules and fault
//!   injection, for tests and Miri.
