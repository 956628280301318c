//! `log.cleaner.io.max.bytes.per.second`: the cleaner's reads and writes, over all its
//! threads, are held to a byte rate (Kafka's `Throttler`): bytes are counted in periods of
//! at least [`PERIOD`], and a thread whose count puts the period above the bound sleeps
//! until the rate is back at it, at once, not only when the period ends (a pass reads in
//! chunks of a MiB, so a whole pass can fit in one period).
//!
//! Invariants: the decision ([`delay`]) is pure; a rate of `f64::INFINITY` (Kafka's
//! default, `Double.MAX_VALUE`) never sleeps; one sleep is bounded by what the counted
//! bytes take at the bound, so a waiting thread always resumes.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a counting period lasts before the rate is checked.
pub const PERIOD: Duration = Duration::from_millis(100);

/// How long to sleep after `bytes` in `elapsed` to average `rate` bytes per second.
pub fn delay(bytes: u64, elapsed: Duration, rate: f64) -> Duration {
    if !rate.is_finite() || rate <= 0.0 || bytes == 0 {
        return Duration::ZERO;
    }
    let wanted = Duration::from_secs_f64(bytes as f64 / rate);
    wanted.saturating_sub(elapsed)
}

pub struct Throttle {
    /// The bound's `f64` bits (changed at runtime by [`Throttle::set_rate`]).
    rate: AtomicU64,
    /// Set when the cleaner stops: passes give up at their next count.
    cancelled: AtomicBool,
    /// The current period's start and the bytes counted in it.
    period: Mutex<(Instant, u64)>,
}

impl Throttle {
    /// A bound of `bytes_per_second` (infinite or not positive: unbounded).
    pub fn new(bytes_per_second: f64) -> Self {
        Throttle {
            rate: AtomicU64::new(bytes_per_second.to_bits()),
            cancelled: AtomicBool::new(false),
            period: Mutex::new((Instant::now(), 0)),
        }
    }

    /// Changes the bound; the next count uses it.
    pub fn set_rate(&self, bytes_per_second: f64) {
        self.rate.store(bytes_per_second.to_bits(), Ordering::Relaxed);
    }

    fn rate(&self) -> f64 {
        f64::from_bits(self.rate.load(Ordering::Relaxed))
    }

    /// Makes every pass stop at its next count of bytes.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    /// Counts `bytes` of I/O, sleeping if the rate is above the bound.
    pub fn account(&self, bytes: u64) {
        let rate = self.rate();
        if !rate.is_finite() || rate <= 0.0 {
            return;
        }
        let sleep = {
            let mut period = self.period.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            period.1 = period.1.saturating_add(bytes);
            let elapsed = period.0.elapsed();
            let sleep = delay(period.1, elapsed, rate);
            if sleep.is_zero() && elapsed < PERIOD {
                return;
            }
            *period = (Instant::now() + sleep, 0);
            sleep
        };
        // Slept in slices so that a stopping node does not wait out a long sleep.
        let until = Instant::now() + sleep;
        while !self.is_cancelled() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(PERIOD));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleeps_only_what_brings_the_rate_back_to_the_bound() {
        let second = Duration::from_secs(1);
        assert_eq!(delay(2_000, second, 1_000.0), second, "twice the bound: wait as long again");
        assert_eq!(delay(500, second, 1_000.0), Duration::ZERO);
        assert_eq!(delay(u64::MAX, second, f64::INFINITY), Duration::ZERO);
        assert_eq!(delay(10, Duration::ZERO, 0.0), Duration::ZERO, "no bound");
    }

    #[test]
    fn a_burst_inside_one_period_is_held_back_at_once() {
        // 2 MiB at 10 MiB/s must take at least 200 ms, even though both counts fall in
        // the first period (a lower bound only: a slow machine takes longer, never less).
        let throttle = Throttle::new(10.0 * 1024.0 * 1024.0);
        let start = Instant::now();
        throttle.account(1024 * 1024);
        throttle.account(1024 * 1024);
        assert!(start.elapsed() >= Duration::from_millis(190), "took {:?}", start.elapsed());
    }

    #[test]
    fn cancelling_ends_a_sleep() {
        let throttle = std::sync::Arc::new(Throttle::new(1.0));
        let sleeper = {
            let throttle = throttle.clone();
            std::thread::spawn(move || throttle.account(1_000_000))
        };
        throttle.cancel();
        sleeper.join().unwrap();
    }
}
