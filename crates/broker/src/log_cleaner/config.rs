//! The log cleaner's broker settings, by Kafka's names (`log.cleaner.*`), with Kafka's
//! defaults and ranges. The per-topic settings (`min.cleanable.dirty.ratio`,
//! `min.compaction.lag.ms`, `max.compaction.lag.ms`, `delete.retention.ms`) default to these.

use crate::config::ConfigError;

#[derive(Debug, Clone, PartialEq)]
pub struct CleanerConfig {
    /// `log.cleaner.enable`.
    pub enable: bool,
    /// `log.cleaner.threads`.
    pub threads: usize,
    /// `log.cleaner.dedupe.buffer.size`: the offset maps' bytes, over all threads.
    pub dedupe_buffer_size: usize,
    /// `log.cleaner.io.max.bytes.per.second`: reads and writes of all threads together.
    pub io_max_bytes_per_second: f64,
    /// `log.cleaner.backoff.ms`: a thread's sleep when no log is due.
    pub backoff_ms: u64,
    /// `log.cleaner.min.cleanable.ratio`.
    pub min_cleanable_ratio: f64,
    /// `log.cleaner.delete.retention.ms`.
    pub delete_retention_ms: i64,
    /// `log.cleaner.min.compaction.lag.ms`.
    pub min_compaction_lag_ms: i64,
    /// `log.cleaner.max.compaction.lag.ms`.
    pub max_compaction_lag_ms: i64,
}

impl Default for CleanerConfig {
    fn default() -> Self {
        CleanerConfig {
            enable: true,
            threads: 1,
            dedupe_buffer_size: 128 << 20,
            io_max_bytes_per_second: f64::INFINITY,
            backoff_ms: 15_000,
            min_cleanable_ratio: 0.5,
            delete_retention_ms: 24 * 60 * 60 * 1000,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
        }
    }
}

fn invalid(key: &str, value: &str, why: &str) -> ConfigError {
    ConfigError::Invalid { key: key.into(), value: value.into(), why: why.into() }
}

pub(crate) fn number<T: std::str::FromStr + PartialOrd + Copy + std::fmt::Display>(
    key: &str,
    value: &str,
    min: T,
    max: T,
) -> Result<T, ConfigError> {
    let n: T = value.trim().parse().map_err(|_| invalid(key, value, "not a number"))?;
    // NaN compares false both ways and is refused here too.
    if !(n >= min && n <= max) {
        return Err(invalid(key, value, &format!("must be within [{min}, {max}]")));
    }
    Ok(n)
}

/// A ratio in `[0, 1]`: `min.cleanable.dirty.ratio` and its broker default.
pub fn ratio(key: &str, value: &str) -> Result<f64, ConfigError> {
    number(key, value, 0.0, 1.0)
}

impl CleanerConfig {
    /// Sets one `log.cleaner.*` setting; `None` when `key` is not one.
    pub fn set(&mut self, key: &str, value: &str) -> Option<Result<(), ConfigError>> {
        let result = (|| {
            match key {
                "log.cleaner.enable" => {
                    self.enable = value.trim().parse().map_err(|_| invalid(key, value, "true or false"))?
                }
                "log.cleaner.threads" => self.threads = number(key, value, 1, 64)?,
                // Kafka's minimum is 1 MiB per thread (checked with the thread count at start).
                "log.cleaner.dedupe.buffer.size" => self.dedupe_buffer_size = number(key, value, 1, usize::MAX)?,
                "log.cleaner.io.max.bytes.per.second" => {
                    self.io_max_bytes_per_second = number(key, value, f64::MIN_POSITIVE, f64::INFINITY)?
                }
                "log.cleaner.backoff.ms" => self.backoff_ms = number(key, value, 0, u64::MAX)?,
                "log.cleaner.min.cleanable.ratio" => self.min_cleanable_ratio = ratio(key, value)?,
                "log.cleaner.delete.retention.ms" => self.delete_retention_ms = number(key, value, 0, i64::MAX)?,
                "log.cleaner.min.compaction.lag.ms" => self.min_compaction_lag_ms = number(key, value, 0, i64::MAX)?,
                "log.cleaner.max.compaction.lag.ms" => self.max_compaction_lag_ms = number(key, value, 1, i64::MAX)?,
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

    /// One thread's share of the dedupe buffer.
    pub fn buffer_per_thread(&self) -> usize {
        self.dedupe_buffer_size / self.threads.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_names_and_ranges() {
        let mut config = CleanerConfig::default();
        assert!(config.set("log.cleaner.threads", "2").unwrap().is_ok());
        assert!(config.set("log.cleaner.min.cleanable.ratio", "0.1").unwrap().is_ok());
        assert!(config.set("log.cleaner.io.max.bytes.per.second", "1048576").unwrap().is_ok());
        assert_eq!((config.threads, config.min_cleanable_ratio, config.io_max_bytes_per_second), (2, 0.1, 1048576.0));
        for (key, bad) in [
            ("log.cleaner.threads", "0"),
            ("log.cleaner.min.cleanable.ratio", "1.5"),
            ("log.cleaner.min.cleanable.ratio", "NaN"),
            ("log.cleaner.io.max.bytes.per.second", "0"),
            ("log.cleaner.delete.retention.ms", "-1"),
            ("log.cleaner.enable", "yes"),
        ] {
            assert!(config.set(key, bad).unwrap().is_err(), "{key}={bad}");
        }
        assert!(config.set("log.retention.ms", "1").is_none(), "not a cleaner setting");
    }
}
