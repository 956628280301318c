//! A client's use of one quota, as a token bucket (Kafka's `TokenBucket`, KIP-599), and
//! the throttle time that brings it back within the quota.
//!
//! Tokens accrue at the quota's rate up to a burst of one quota window
//! (`quota.window.size.seconds` of the rate). What a request costs is taken from the
//! bucket; a bucket below zero is a debt, and the throttle is the time the debt takes to
//! repay. A client that always waits out its throttle therefore runs at its quota, with at
//! most one window's burst at its start.
//!
//! Why not Kafka's sampled rate for bandwidth: its average over `quota.window.num`
//! windows drops a whole window at once when that window expires, so a client that sends
//! as fast as it is let through gets about ten windows' worth in one burst every eleven
//! windows, and any ten-second span of its traffic is off its quota by up to a tenth.
//!
//! Invariants: pure (time is an argument); a throttle is never negative and is bounded
//! by [`TokenBucket::throttle_ms`]'s cap; the bucket never holds more than its burst.

/// One client's bucket for one quota.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    tokens: f64,
    last_ms: i64,
    burst_ms: i64,
}

impl TokenBucket {
    /// A full bucket at `now_ms`, with a burst of `burst_ms` of the quota.
    pub fn new(burst_ms: i64, now_ms: i64) -> Self {
        TokenBucket { tokens: f64::NAN, last_ms: now_ms, burst_ms: burst_ms.max(1) }
    }

    fn burst(&self, quota: f64) -> f64 {
        quota * self.burst_ms as f64 / 1000.0
    }

    /// Adds what `quota` per second accrued since the last call.
    fn refill(&mut self, quota: f64, now_ms: i64) {
        let burst = self.burst(quota);
        if self.tokens.is_nan() {
            self.tokens = burst;
        }
        let elapsed = (now_ms - self.last_ms).max(0) as f64 / 1000.0;
        self.tokens = (self.tokens + elapsed * quota).min(burst);
        self.last_ms = self.last_ms.max(now_ms);
    }

    /// Takes `cost` at `now_ms` under `quota` per second, and returns how long the client
    /// must now wait, in ms, capped at `cap_ms`.
    pub fn take(&mut self, cost: f64, quota: f64, now_ms: i64, cap_ms: i64) -> i64 {
        if quota.is_nan() || quota <= 0.0 {
            return 0;
        }
        self.refill(quota, now_ms);
        self.tokens -= cost;
        self.throttle_ms(quota, cap_ms)
    }

    /// The wait that repays the debt, in ms (0 without one), capped at `cap_ms`.
    pub fn throttle_ms(&self, quota: f64, cap_ms: i64) -> i64 {
        if self.tokens >= 0.0 || quota.is_nan() || quota <= 0.0 {
            return 0;
        }
        let ms = (-self.tokens / quota * 1000.0).ceil();
        (ms as i64).clamp(0, cap_ms.max(0))
    }

    /// When the bucket was last used, for expiring idle ones.
    pub fn last_used_ms(&self) -> i64 {
        self.last_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_burst_then_exactly_the_quota() {
        // 1000 units/s, a burst of one second.
        let mut bucket = TokenBucket::new(1_000, 0);
        assert_eq!(bucket.take(1_000.0, 1_000.0, 0, 60_000), 0, "the first second's worth at once");
        assert_eq!(bucket.take(500.0, 1_000.0, 0, 60_000), 500, "then half a second of debt");
        // A client that waits out its throttle and sends again runs at the quota.
        let mut now = 500;
        let mut sent = 0.0_f64;
        while now < 10_500 {
            sent += 100.0;
            now += bucket.take(100.0, 1_000.0, now, 60_000);
        }
        assert!((sent - 10_000.0).abs() <= 100.0, "sent {sent} in 10 s");
    }

    #[test]
    fn an_idle_bucket_refills_only_to_its_burst_and_throttles_are_capped() {
        let mut bucket = TokenBucket::new(1_000, 0);
        assert_eq!(bucket.take(0.0, 1_000.0, 100_000, 60_000), 0);
        assert_eq!(bucket.take(2_000.0, 1_000.0, 100_000, 60_000), 1_000, "an hour idle is still one second's burst");
        assert_eq!(bucket.take(1e12, 1_000.0, 100_000, 11_000), 11_000);
        assert_eq!(bucket.take(1.0, f64::NAN, 100_000, 11_000), 0);
        assert_eq!(bucket.last_used_ms(), 100_000);
    }
}
