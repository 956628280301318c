//! The object stores remote segments live in: a local directory (the default, so one node
//! can tier with no other service), S3-compatible storage (endpoint, bucket, region,
//! credentials from settings or the `AWS_*` environment, path-style addressing by
//! default), and memory (tests). All through the `object_store` crate.
//!
//! Invariants: every error is one of three kinds, so callers know what to do:
//! [`RemoteError::NotFound`] (definite), [`RemoteError::Corrupt`] (the bytes are not what
//! was written: never served), [`RemoteError::Unavailable`] (anything else: retry later,
//! keep the local copy). Deleting what is not there succeeds on every backend. A whole
//! object read with an expected checksum is checked before it is returned. Requests are
//! bounded in time (`request_timeout`, `retries`).

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, RetryConfig};

/// Which store, and how to reach it.
#[derive(Debug, Clone, PartialEq)]
pub enum BackendSettings {
    /// In memory, for tests.
    Memory,
    /// A directory (created when missing); every write is fsynced before it counts.
    Local {
        dir: PathBuf,
    },
    S3(S3Settings),
}

#[derive(Debug, Clone, PartialEq)]
pub struct S3Settings {
    /// `http://host:port` of an S3-compatible server; `None`: AWS itself.
    pub endpoint: Option<String>,
    pub bucket: String,
    pub region: String,
    /// Credentials; `None` takes them from the environment (`AWS_ACCESS_KEY_ID`, ...).
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Virtual-hosted style (`bucket.host`) instead of path style (`host/bucket`).
    pub virtual_hosted_style: bool,
    /// Retries of a failed request, and how long one request may take.
    pub retries: usize,
    pub request_timeout: Duration,
}

impl S3Settings {
    /// Path style, two retries, 30 s per request.
    pub fn new(bucket: &str, region: &str) -> Self {
        S3Settings {
            endpoint: None,
            bucket: bucket.to_string(),
            region: region.to_string(),
            access_key_id: None,
            secret_access_key: None,
            virtual_hosted_style: false,
            retries: 2,
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// What went wrong with a store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RemoteError {
    #[error("{0}: not in remote storage")]
    NotFound(String),
    #[error("{key}: remote object failed its check: {why}")]
    Corrupt { key: String, why: String },
    #[error("remote storage unavailable: {0}")]
    Unavailable(String),
    #[error("remote storage settings: {0}")]
    Settings(String),
}

fn classify(key: &str, error: object_store::Error) -> RemoteError {
    match error {
        object_store::Error::NotFound { .. } => RemoteError::NotFound(key.to_string()),
        other => RemoteError::Unavailable(other.to_string()),
    }
}

/// One object store.
#[derive(Clone)]
pub struct RemoteStore {
    store: Arc<dyn ObjectStore>,
    /// The local-directory backend's directory: its objects are plain files there.
    local_dir: Option<PathBuf>,
}

impl RemoteStore {
    /// Opens the store `settings` name (nothing is sent to it yet).
    pub fn open(settings: &BackendSettings) -> Result<Self, RemoteError> {
        let local_dir = match settings {
            BackendSettings::Local { dir } => Some(dir.clone()),
            _ => None,
        };
        let store: Arc<dyn ObjectStore> = match settings {
            BackendSettings::Memory => Arc::new(InMemory::new()),
            BackendSettings::Local { dir } => {
                std::fs::create_dir_all(dir).map_err(|e| RemoteError::Settings(format!("{}: {e}", dir.display())))?;
                let local = LocalFileSystem::new_with_prefix(dir).map_err(|e| RemoteError::Settings(e.to_string()))?;
                Arc::new(local.with_automatic_cleanup(true))
            }
            BackendSettings::S3(s3) => {
                // reqwest's TLS without a compiled-in provider: Runnel's is ring. Another
                // provider installed first (by whoever) is fine too.
                #[allow(deprecated)] // ring's provider: see the broker's tls.rs
                let _ = rustls::crypto::ring::default_provider().install_default();
                let retry = RetryConfig {
                    backoff: BackoffConfig {
                        init_backoff: Duration::from_millis(100),
                        max_backoff: Duration::from_secs(2),
                        base: 2.0,
                    },
                    max_retries: s3.retries,
                    retry_timeout: s3.request_timeout.saturating_mul(u32::try_from(s3.retries + 1).unwrap_or(u32::MAX)),
                };
                let options = ClientOptions::new()
                    .with_connect_timeout(Duration::from_secs(5).min(s3.request_timeout))
                    .with_timeout(s3.request_timeout)
                    .with_allow_http(s3.endpoint.as_deref().is_some_and(|e| e.starts_with("http://")));
                let mut builder = AmazonS3Builder::from_env()
                    .with_bucket_name(&s3.bucket)
                    .with_region(&s3.region)
                    .with_virtual_hosted_style_request(s3.virtual_hosted_style)
                    .with_retry(retry)
                    .with_client_options(options);
                if let Some(endpoint) = &s3.endpoint {
                    builder = builder.with_endpoint(endpoint);
                }
                if let (Some(key), Some(secret)) = (&s3.access_key_id, &s3.secret_access_key) {
                    builder = builder.with_access_key_id(key).with_secret_access_key(secret);
                }
                Arc::new(builder.build().map_err(|e| RemoteError::Settings(e.to_string()))?)
            }
        };
        Ok(RemoteStore { store, local_dir })
    }

    /// The file that holds object `key`, for the local-directory backend (whose objects
    /// are plain files, so that reads can use the page cache and sendfile(2)); `None` for
    /// other backends. Keys are those `layout` makes: ASCII, no escaping needed.
    pub fn local_file(&self, key: &str) -> Option<PathBuf> {
        let dir = self.local_dir.as_ref()?;
        let safe = key.split('/').all(|part| !part.is_empty() && part != "." && part != "..");
        safe.then(|| dir.join(key))
    }

    /// Writes a whole object; returns its CRC32C, to be recorded and checked on reads.
    pub async fn put(&self, key: &str, bytes: Bytes) -> Result<u32, RemoteError> {
        let crc = crc32c::crc32c(&bytes);
        self.store.put(&Path::from(key), bytes.into()).await.map_err(|e| classify(key, e))?;
        Ok(crc)
    }

    /// Writes `len` bytes of `file` from its start as one object, in parts of `part_bytes`
    /// (at least 5 MiB for S3, except the last), read and sent without holding more than
    /// three parts in memory; returns the CRC32C of what was written. A failure aborts the
    /// upload, so no partial object remains (on S3 an aborted multipart upload leaves
    /// nothing readable).
    pub async fn put_file(
        &self,
        key: &str,
        file: Arc<std::fs::File>,
        len: u64,
        part_bytes: usize,
    ) -> Result<u32, RemoteError> {
        const PARTS_IN_FLIGHT: usize = 2;
        let part_bytes = part_bytes.max(1);
        let upload = self.store.put_multipart(&Path::from(key)).await.map_err(|e| classify(key, e))?;
        let mut writer = object_store::WriteMultipart::new_with_chunk_size(upload, part_bytes);
        let mut crc = 0u32;
        let mut position = 0u64;
        while position < len {
            let want = usize::try_from((len - position).min(part_bytes as u64)).unwrap_or(part_bytes);
            let file = file.clone();
            let read = tokio::task::spawn_blocking(move || {
                use std::os::unix::fs::FileExt;
                let mut buffer = vec![0u8; want];
                file.read_exact_at(&mut buffer, position).map(|()| buffer)
            })
            .await
            .map_err(|e| RemoteError::Unavailable(e.to_string()))
            .and_then(|r| r.map_err(|e| RemoteError::Unavailable(format!("reading the local file: {e}"))));
            let buffer = match read {
                Ok(buffer) => buffer,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(e);
                }
            };
            crc = crc32c::crc32c_append(crc, &buffer);
            position += buffer.len() as u64;
            writer.put(Bytes::from(buffer));
            if let Err(e) = writer.wait_for_capacity(PARTS_IN_FLIGHT).await {
                let _ = writer.abort().await;
                return Err(classify(key, e));
            }
        }
        writer.finish().await.map_err(|e| classify(key, e))?;
        Ok(crc)
    }

    /// Reads a whole object; with `expected` (its CRC32C) a mismatch is [`RemoteError::Corrupt`].
    pub async fn get(&self, key: &str, expected: Option<u32>) -> Result<Bytes, RemoteError> {
        let result = self.store.get(&Path::from(key)).await.map_err(|e| classify(key, e))?;
        let bytes = result.bytes().await.map_err(|e| classify(key, e))?;
        if let Some(expected) = expected {
            let crc = crc32c::crc32c(&bytes);
            if crc != expected {
                return Err(RemoteError::Corrupt {
                    key: key.to_string(),
                    why: format!("CRC32C {crc:08x}, {expected:08x} was written"),
                });
            }
        }
        Ok(bytes)
    }

    /// Reads `range` of an object; fewer bytes than asked is [`RemoteError::Corrupt`]
    /// (the object is shorter than its metadata says).
    pub async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, RemoteError> {
        let wanted = range.end.saturating_sub(range.start);
        let bytes = self.store.get_range(&Path::from(key), range).await.map_err(|e| classify(key, e))?;
        if bytes.len() as u64 != wanted {
            return Err(RemoteError::Corrupt {
                key: key.to_string(),
                why: format!("{} bytes where {wanted} were asked", bytes.len()),
            });
        }
        Ok(bytes)
    }

    /// Deletes an object; one that is not there is deleted already.
    pub async fn delete(&self, key: &str) -> Result<(), RemoteError> {
        match self.store.delete(&Path::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(classify(key, e)),
        }
    }

    /// Every object under `prefix` with its size, in key order.
    pub async fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>, RemoteError> {
        let prefix = Path::from(prefix.trim_end_matches('/'));
        let mut listed = self.store.list(Some(&prefix));
        let mut objects = Vec::new();
        while let Some(meta) = listed.next().await {
            let meta = meta.map_err(|e| classify(prefix.as_ref(), e))?;
            objects.push((meta.location.to_string(), meta.size));
        }
        objects.sort();
        Ok(objects)
    }
}
