//! Client quota enforcement (Kafka's `ClientQuotaManager`, `ClientRequestQuotaManager`).
//!
//! The quotas themselves are in the metadata image (`runnel_metadata::quota`); the
//! publisher chain hands them to [`QuotaManager::publish`]. On the request path
//! (`handlers::handle`, the one place every API passes) a [`Charge`] records what a request
//! costs against the quota that applies to its user and client id: the request's bytes for
//! Produce (`producer_byte_rate`), the response's bytes for a consumer's Fetch
//! (`consumer_byte_rate`), and the time the broker's threads spent on it for every request
//! but ApiVersions, the SASL exchange and followers' fetches (`request_percentage`, a
//! percentage of one thread), and the partitions CreateTopics, CreatePartitions and
//! DeleteTopics create or delete (`controller_mutation_rate`, `mutations.rs`). The response carries the resulting `throttle_time_ms`, and
//! the connection reads nothing more from the client for that long (KIP-219: the client
//! is told, and held even if it ignores the hint).
//!
//! Use is kept per sensor (a token bucket, `rate.rs`): the entity the quota was found on,
//! with the client's own user and client id in place of a default (a `<default>`
//! client-id quota gives each client id that rate). When the sensors reach their bound,
//! those idle for `quota.window.num` windows are dropped. A throttle is at most
//! `quota.window.num` × `quota.window.size.seconds` (a larger debt is repaid over several
//! requests).
//!
//! Invariants: with no quota stored anywhere nothing is measured or allocated; the number
//! of sensors is bounded ([`SENSORS_MAX`]); a throttle never exceeds the quota window.

pub mod mutations;
pub mod rate;
pub mod response;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use runnel_metadata::quota::{self, Quotas};

use crate::locks::MutexExt;
use rate::TokenBucket;

/// At most this many rates are kept; beyond it, idle ones are dropped first and a new
/// client is then not measured until room is made (the node's memory is the bound that
/// matters more).
pub const SENSORS_MAX: usize = 100_000;

/// What a rate measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuotaKind {
    Produce,
    Fetch,
    Request,
    /// Partitions created or deleted (`mutations.rs`).
    ControllerMutation,
}

impl QuotaKind {
    fn key(self) -> &'static str {
        match self {
            QuotaKind::Produce => quota::PRODUCER_BYTE_RATE,
            QuotaKind::Fetch => quota::CONSUMER_BYTE_RATE,
            QuotaKind::Request => quota::REQUEST_PERCENTAGE,
            QuotaKind::ControllerMutation => quota::CONTROLLER_MUTATION_RATE,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SensorKey {
    kind: QuotaKind,
    user: Option<String>,
    client_id: Option<String>,
}

pub struct QuotaManager {
    quotas: RwLock<Arc<Quotas>>,
    /// Whether any quota is stored: the fast path of every request reads only this.
    any: AtomicBool,
    sensors: Mutex<HashMap<SensorKey, TokenBucket>>,
    samples: usize,
    window_ms: i64,
}

impl QuotaManager {
    /// `quota.window.num` windows of `quota.window.size.seconds`.
    pub fn new(samples: usize, window_seconds: u64) -> Self {
        QuotaManager {
            quotas: RwLock::new(Arc::new(Quotas::new())),
            any: AtomicBool::new(false),
            sensors: Mutex::new(HashMap::new()),
            samples: samples.max(2),
            window_ms: i64::try_from(window_seconds.saturating_mul(1000)).unwrap_or(i64::MAX).max(1),
        }
    }

    /// Takes the quotas of a new image (the publisher chain).
    pub fn publish(&self, quotas: &Quotas) {
        *self.quotas.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(quotas.clone());
        self.any.store(!quotas.is_empty(), Ordering::Relaxed);
    }

    /// Whether any client has a quota.
    pub fn is_active(&self) -> bool {
        self.any.load(Ordering::Relaxed)
    }

    /// Records `value` for a client of `user` with `client_id` and returns how long it must
    /// now wait, in ms (0: it has no such quota, or is within it).
    pub fn record(&self, kind: QuotaKind, user: &str, client_id: &str, value: f64, now_ms: i64) -> i64 {
        if !self.is_active() {
            return 0;
        }
        let quotas = self.quotas.read().unwrap_or_else(|p| p.into_inner()).clone();
        let Some((entity, bound)) = quota::resolve(&quotas, user, client_id, kind.key()) else { return 0 };
        // request_percentage is a percentage of one thread: 100 is 1000 ms per second.
        let bound = if kind == QuotaKind::Request { bound * 10.0 } else { bound };
        let key = SensorKey {
            kind,
            user: entity.user.as_ref().map(|_| user.to_string()),
            client_id: entity.client_id.as_ref().map(|_| client_id.to_string()),
        };
        let span = self.window_ms.saturating_mul(self.samples as i64);
        let mut sensors = self.sensors.locked();
        if sensors.len() >= SENSORS_MAX && !sensors.contains_key(&key) {
            sensors.retain(|_, bucket| now_ms - bucket.last_used_ms() < span);
            if sensors.len() >= SENSORS_MAX {
                return 0;
            }
        }
        let bucket = sensors.entry(key).or_insert_with(|| TokenBucket::new(self.window_ms, now_ms));
        bucket.take(value, bound, now_ms, span)
    }

    /// The number of rates kept, for the metrics.
    pub fn sensors(&self) -> usize {
        self.sensors.locked().len()
    }
}

/// The time a request's future spent being polled: the broker's thread time for it
/// (waits for data, replicas or a rebalance are not counted).
#[derive(Default)]
pub struct BusyClock {
    total_ns: AtomicU64,
    polling_since: Mutex<Option<Instant>>,
}

impl BusyClock {
    /// Thread time so far, including the poll under way.
    pub fn busy(&self) -> Duration {
        let now = self.polling_since.locked().map_or(Duration::ZERO, |since| since.elapsed());
        Duration::from_nanos(self.total_ns.load(Ordering::Relaxed)) + now
    }
}

/// A future whose poll time is added up in a [`BusyClock`].
pub struct Busy<'a, T> {
    inner: std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>,
    clock: Arc<BusyClock>,
}

impl<'a, T> Busy<'a, T> {
    pub fn new(inner: impl std::future::Future<Output = T> + Send + 'a, clock: Arc<BusyClock>) -> Self {
        Busy { inner: Box::pin(inner), clock }
    }
}

impl<T> std::future::Future for Busy<'_, T> {
    type Output = T;
    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<T> {
        let start = Instant::now();
        *self.clock.polling_since.locked() = Some(start);
        let result = self.inner.as_mut().poll(cx);
        *self.clock.polling_since.locked() = None;
        let ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.clock.total_ns.fetch_add(ns, Ordering::Relaxed);
        result
    }
}

/// What one request is charged, and the throttle it earns.
pub struct Charge {
    quotas: Arc<QuotaManager>,
    user: String,
    client_id: String,
    clock: Arc<BusyClock>,
    /// The largest throttle earned so far, in ms.
    throttle_ms: AtomicU64,
    /// Whether thread time counts against `request_percentage` for this request.
    timed: AtomicBool,
}

impl Charge {
    /// `principal`: Kafka's `User:name` form (the user is the name).
    pub fn new(quotas: Arc<QuotaManager>, principal: &str, client_id: &str, clock: Arc<BusyClock>) -> Self {
        let user = principal.strip_prefix("User:").unwrap_or(principal).to_string();
        Charge {
            quotas,
            user,
            client_id: client_id.to_string(),
            clock,
            throttle_ms: AtomicU64::new(0),
            timed: AtomicBool::new(true),
        }
    }

    fn raise(&self, ms: i64) {
        self.throttle_ms.fetch_max(u64::try_from(ms).unwrap_or(0), Ordering::Relaxed);
    }

    /// Charges `bytes` (or, for mutations, partitions) against the rate `kind` measures.
    pub fn bytes(&self, kind: QuotaKind, bytes: usize) {
        self.raise(self.quotas.record(kind, &self.user, &self.client_id, bytes as f64, crate::clock::now_ms()));
    }

    /// Whether the client's quota of `kind` is already exhausted (it owes a throttle).
    pub fn exhausted(&self, kind: QuotaKind) -> bool {
        self.quotas.record(kind, &self.user, &self.client_id, 0.0, crate::clock::now_ms()) > 0
    }

    /// This request does not count against the request quota (ApiVersions, SASL,
    /// replication).
    pub fn exempt(&self) {
        self.timed.store(false, Ordering::Relaxed);
    }

    /// Charges the thread time spent so far (once) and returns the request's throttle, in
    /// ms.
    pub fn finish(&self) -> i32 {
        if self.timed.swap(false, Ordering::Relaxed) {
            let ms = self.clock.busy().as_secs_f64() * 1000.0;
            self.raise(self.quotas.record(QuotaKind::Request, &self.user, &self.client_id, ms, crate::clock::now_ms()));
        }
        i32::try_from(self.throttle_ms.load(Ordering::Relaxed)).unwrap_or(i32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use runnel_metadata::quota::{EntityName, QuotaEntity};

    use super::*;

    fn manager(entity: QuotaEntity, key: &str, value: f64) -> QuotaManager {
        let manager = QuotaManager::new(11, 1);
        let mut quotas = Quotas::new();
        quotas.entry(entity).or_default().insert(key.to_string(), value);
        manager.publish(&quotas);
        manager
    }

    #[test]
    fn a_default_client_quota_gives_each_client_its_own_rate() {
        let entity = QuotaEntity { user: None, client_id: Some(EntityName::Default) };
        let manager = manager(entity, quota::PRODUCER_BYTE_RATE, 1_000.0);
        // 6 KB at once is 5 s beyond the one-second burst.
        assert_eq!(manager.record(QuotaKind::Produce, "u", "a", 6_000.0, 0), 5_000);
        assert_eq!(manager.record(QuotaKind::Produce, "u", "b", 1_000.0, 0), 0, "b has its own rate");
        assert_eq!(manager.record(QuotaKind::Fetch, "u", "a", 1e9, 0), 0, "no consumer quota");
        assert_eq!(manager.sensors(), 2);
        manager.publish(&Quotas::new());
        assert!(!manager.is_active());
        assert_eq!(manager.record(QuotaKind::Produce, "u", "a", 1e9, 0), 0);
    }

    #[test]
    fn request_percentage_counts_thread_time_against_a_share_of_one_thread() {
        let entity = QuotaEntity { user: Some(EntityName::Named("alice".into())), client_id: None };
        let manager = Arc::new(manager(entity, quota::REQUEST_PERCENTAGE, 10.0));
        // 10% of a thread: 100 ms of thread time per second; 1100 ms at once is 10 s beyond
        // the one-second burst.
        let charge = Charge::new(manager.clone(), "User:alice", "c", Arc::new(BusyClock::default()));
        charge.bytes(QuotaKind::Produce, 100);
        assert_eq!(charge.finish(), 0, "no time spent yet");
        assert_eq!(manager.record(QuotaKind::Request, "alice", "c", 1_100.0, 0), 10_000);
        let exempt = Charge::new(manager.clone(), "User:alice", "c", Arc::new(BusyClock::default()));
        exempt.exempt();
        assert_eq!(exempt.finish(), 0);
    }
}
