//! Tiered storage's broker settings: Kafka's `remote.log.storage.system.enable` and
//! `remote.log.manager.task.interval.ms` and `remote.fetch.max.wait.ms`, the remote reader's chunk
//! size and cache bound (`remote.log.reader.chunk.bytes`, `remote.log.reader.cache.bytes`), and Runnel's names for the backend (Kafka names a
//! plug-in class instead): `remote.log.storage.backend` (`local`, the default, a directory
//! under the data directory unless `remote.log.storage.local.dir` names one; or `s3`, with
//! `remote.log.storage.s3.{endpoint,bucket,region,access.key.id,secret.access.key}`,
//! credentials otherwise from the `AWS_*` environment), and `remote.log.storage.prefix`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use runnel_tiered::backend::S3Settings;
use runnel_tiered::BackendSettings;

use crate::config::ConfigError;

#[derive(Debug, Clone, PartialEq)]
pub struct TieredConfig {
    pub enabled: bool,
    pub s3: bool,
    pub local_dir: Option<PathBuf>,
    pub s3_endpoint: Option<String>,
    pub s3_bucket: Option<String>,
    pub s3_region: String,
    pub s3_access_key_id: Option<String>,
    pub s3_secret_access_key: Option<String>,
    pub prefix: String,
    pub task_interval_ms: u64,
    /// `remote.fetch.max.wait.ms` (Kafka's): how long a fetch waits for a remote read
    /// before it answers without those records (the read goes on into the cache).
    pub fetch_max_wait_ms: u64,
    /// `remote.log.reader.chunk.bytes`: the unit of reads from the store.
    pub chunk_bytes: u64,
    /// `remote.log.reader.cache.bytes`: the bound of the cache of remote indexes and chunks.
    pub cache_bytes: u64,
}

impl Default for TieredConfig {
    fn default() -> Self {
        TieredConfig {
            enabled: false,
            s3: false,
            local_dir: None,
            s3_endpoint: None,
            s3_bucket: None,
            s3_region: "us-east-1".into(),
            s3_access_key_id: None,
            s3_secret_access_key: None,
            prefix: "runnel".into(),
            task_interval_ms: 30_000,
            fetch_max_wait_ms: 500,
            chunk_bytes: 4 << 20,
            cache_bytes: 128 << 20,
        }
    }
}

/// The folder the local backend uses when none is named (one of the data directory's
/// fixed entries).
pub const LOCAL_DIR: &str = "remote-log-storage";

impl TieredConfig {
    /// Sets one tiered storage setting; `None` when `key` is not one.
    pub fn set(&mut self, key: &str, value: &str) -> Option<Result<(), ConfigError>> {
        let invalid = |why: &str| ConfigError::Invalid { key: key.into(), value: value.into(), why: why.into() };
        let text = Some(value.trim().to_string()).filter(|v| !v.is_empty());
        match key {
            "remote.log.storage.system.enable" => match value.trim() {
                "true" => self.enabled = true,
                "false" => self.enabled = false,
                _ => return Some(Err(invalid("true or false"))),
            },
            "remote.log.storage.backend" => match value.trim() {
                "local" => self.s3 = false,
                "s3" => self.s3 = true,
                _ => return Some(Err(invalid("local or s3"))),
            },
            "remote.log.storage.local.dir" => self.local_dir = text.map(PathBuf::from),
            "remote.log.storage.s3.endpoint" => self.s3_endpoint = text,
            "remote.log.storage.s3.bucket" => self.s3_bucket = text,
            "remote.log.storage.s3.region" => self.s3_region = text.unwrap_or_else(|| "us-east-1".into()),
            "remote.log.storage.s3.access.key.id" => self.s3_access_key_id = text,
            "remote.log.storage.s3.secret.access.key" => self.s3_secret_access_key = text,
            "remote.log.storage.prefix" => self.prefix = value.trim().trim_matches('/').to_string(),
            "remote.log.manager.task.interval.ms" => match value.trim().parse::<u64>() {
                Ok(ms) if ms > 0 => self.task_interval_ms = ms,
                _ => return Some(Err(invalid("a positive number of milliseconds"))),
            },
            "remote.fetch.max.wait.ms" => match value.trim().parse::<u64>() {
                Ok(ms) if ms > 0 => self.fetch_max_wait_ms = ms,
                _ => return Some(Err(invalid("a positive number of milliseconds"))),
            },
            "remote.log.reader.chunk.bytes" => match value.trim().parse::<u64>() {
                Ok(bytes) if (4096..=(256 << 20)).contains(&bytes) => self.chunk_bytes = bytes,
                _ => return Some(Err(invalid("bytes in [4096, 268435456]"))),
            },
            "remote.log.reader.cache.bytes" => match value.trim().parse::<u64>() {
                Ok(bytes) => self.cache_bytes = bytes,
                _ => return Some(Err(invalid("a number of bytes"))),
            },
            _ => return None,
        }
        Some(Ok(()))
    }

    /// The store to use, for a node whose data directory is `data_dir`.
    pub fn backend(&self, data_dir: &Path) -> Result<BackendSettings, ConfigError> {
        if !self.s3 {
            let dir = self.local_dir.clone().unwrap_or_else(|| data_dir.join(LOCAL_DIR));
            return Ok(BackendSettings::Local { dir });
        }
        let bucket = self.s3_bucket.as_deref().ok_or_else(|| ConfigError::Invalid {
            key: "remote.log.storage.s3.bucket".into(),
            value: String::new(),
            why: "the s3 backend needs a bucket".into(),
        })?;
        Ok(BackendSettings::S3(S3Settings {
            endpoint: self.s3_endpoint.clone(),
            access_key_id: self.s3_access_key_id.clone(),
            secret_access_key: self.s3_secret_access_key.clone(),
            request_timeout: Duration::from_secs(30),
            ..S3Settings::new(bucket, &self.s3_region)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_local_directory_by_default_and_s3_with_a_bucket() {
        let mut config = TieredConfig::default();
        assert_eq!(
            config.backend(Path::new("/data")).unwrap(),
            BackendSettings::Local { dir: PathBuf::from("/data").join(LOCAL_DIR) }
        );
        for (key, value) in [
            ("remote.log.storage.system.enable", "true"),
            ("remote.log.storage.backend", "s3"),
            ("remote.log.storage.s3.endpoint", "http://127.0.0.1:9000"),
        ] {
            config.set(key, value).unwrap().unwrap();
        }
        assert!(config.enabled && config.backend(Path::new("/data")).is_err(), "s3 needs a bucket");
        config.set("remote.log.storage.s3.bucket", "b").unwrap().unwrap();
        let BackendSettings::S3(s3) = config.backend(Path::new("/data")).unwrap() else { panic!("s3") };
        assert_eq!((s3.bucket.as_str(), s3.endpoint.as_deref()), ("b", Some("http://127.0.0.1:9000")));
        assert!(config.set("remote.log.storage.backend", "tape").unwrap().is_err());
        assert!(config.set("remote.log.manager.task.interval.ms", "0").unwrap().is_err());
        assert!(config.set("log.retention.ms", "1").is_none(), "not a tiered setting");
    }
}
