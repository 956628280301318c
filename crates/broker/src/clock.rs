//! The runtime shell's clock. Core logic takes `now_ms` as a parameter; only the shell reads
//! the wall clock, here.

use std::time::{SystemTime, UNIX_EPOCH};

pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
