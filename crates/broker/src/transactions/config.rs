//! The transaction coordinator's settings, by Kafka's names and with Kafka's defaults.

use crate::config::ConfigError;
use crate::log_cleaner::config::number;

#[derive(Debug, Clone, PartialEq)]
pub struct TxnConfig {
    /// `transaction.state.log.num.partitions`: partitions of `__transaction_state`.
    pub state_log_partitions: i32,
    /// `transaction.state.log.replication.factor`, capped at the live brokers when the topic
    /// is made (as for `__consumer_offsets`).
    pub state_log_replication_factor: i32,
    /// `transaction.state.log.min.isr`: the topic's `min.insync.replicas`.
    pub state_log_min_isr: i32,
    /// `transaction.state.log.segment.bytes`.
    pub state_log_segment_bytes: u64,
    /// `transaction.max.timeout.ms`: the longest `transaction.timeout.ms` a producer may ask.
    pub max_timeout_ms: i32,
    /// `transactional.id.expiration.ms`: an id idle this long is forgotten.
    pub id_expiration_ms: i64,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`: how often timed-out
    /// transactions are looked for (and unfinished markers resumed).
    pub abort_timed_out_interval_ms: u64,
    /// `transaction.remove.expired.transaction.cleanup.interval.ms`.
    pub remove_expired_interval_ms: u64,
}

impl Default for TxnConfig {
    fn default() -> Self {
        TxnConfig {
            state_log_partitions: 50,
            state_log_replication_factor: 3,
            state_log_min_isr: 2,
            state_log_segment_bytes: 100 * 1024 * 1024,
            max_timeout_ms: 900_000,
            id_expiration_ms: 604_800_000,
            abort_timed_out_interval_ms: 10_000,
            remove_expired_interval_ms: 3_600_000,
        }
    }
}

impl TxnConfig {
    /// Sets one transaction setting; `None` when `key` is not one.
    pub fn set(&mut self, key: &str, value: &str) -> Option<Result<(), ConfigError>> {
        let result = (|| {
            match key {
                "transaction.state.log.num.partitions" => self.state_log_partitions = number(key, value, 1, 10_000)?,
                "transaction.state.log.replication.factor" => {
                    self.state_log_replication_factor = number(key, value, 1, i32::from(i16::MAX))?
                }
                "transaction.state.log.min.isr" => self.state_log_min_isr = number(key, value, 1, i32::MAX)?,
                "transaction.state.log.segment.bytes" => {
                    let min = crate::topic_config::SEGMENT_BYTES_MIN;
                    self.state_log_segment_bytes = number(key, value, min, i64::from(i32::MAX))? as u64
                }
                "transaction.max.timeout.ms" => self.max_timeout_ms = number(key, value, 1, i32::MAX)?,
                "transactional.id.expiration.ms" => self.id_expiration_ms = number(key, value, 1, i64::from(i32::MAX))?,
                "transaction.abort.timed.out.transaction.cleanup.interval.ms" => {
                    self.abort_timed_out_interval_ms = number(key, value, 1, u64::from(u32::MAX))?
                }
                "transaction.remove.expired.transaction.cleanup.interval.ms" => {
                    self.remove_expired_interval_ms = number(key, value, 1, u64::from(u32::MAX))?
                }
                _ => return Ok(false),
            }
            Ok(true)
        })();
        match result {
            Ok(false) => None,
            Ok(true) => Some(Ok(())),
            Err(e) => Some(Err(e)),
        }
    }
}
