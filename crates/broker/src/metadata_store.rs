//! The node's metadata: the durable metadata log and the current image built from it.
//!
//! [`LocalMetadataLog`] keeps records in `<data_dir>/__cluster_metadata-0`, a partition log
//! like any other whose batches hold one JSON record each, fsynced on every commit. The Raft
//! quorum will implement [`MetadataLog`] in its place; nothing above this module changes.

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use runnel_metadata::{MetadataError, MetadataImage, MetadataLog, MetadataRecord};
use runnel_protocol::batch::{build_batch_with_keys, BatchIter};
use runnel_storage::{LogConfig, PartitionLog};

pub const METADATA_DIR: &str = "__cluster_metadata-0";
/// Bytes read per step while replaying the metadata log.
const REPLAY_READ_BYTES: usize = 1 << 20;

pub struct LocalMetadataLog {
    log: PartitionLog,
}

fn storage_error(e: impl std::fmt::Display) -> MetadataError {
    MetadataError::Storage(e.to_string())
}

impl LocalMetadataLog {
    pub fn open(data_dir: &Path, clean_shutdown: bool, now_ms: i64) -> Result<Self, MetadataError> {
        let dir = data_dir.join(METADATA_DIR);
        // Every commit is fsynced, so the whole log is below the recovery point only when
        // the shutdown was clean; otherwise recovery scans it (it is small).
        let log =
            PartitionLog::open(&dir, LogConfig::default(), 0, 0, clean_shutdown, now_ms).map_err(storage_error)?;
        Ok(LocalMetadataLog { log })
    }

    pub fn close(self) -> Result<(), MetadataError> {
        self.log.close().map_err(storage_error)
    }
}

impl MetadataLog for LocalMetadataLog {
    fn append(&mut self, records: &[MetadataRecord]) -> Result<i64, MetadataError> {
        assert!(!records.is_empty(), "commit at least one record");
        let values: Vec<Vec<u8>> = records.iter().map(MetadataRecord::encode).collect();
        let pairs: Vec<(Option<&[u8]>, &[u8])> = values.iter().map(|v| (None, v.as_slice())).collect();
        let now_ms = crate::clock::now_ms();
        let mut batch = build_batch_with_keys(now_ms, &pairs);
        let info = self.log.append(&mut batch, 0, false, now_ms).map_err(storage_error)?;
        self.log.flush().map_err(storage_error)?;
        Ok(info.last_offset)
    }

    fn replay(&mut self) -> Result<Vec<MetadataRecord>, MetadataError> {
        let mut records = Vec::new();
        let mut offset = self.log.log_start_offset();
        let end = self.log.log_end_offset();
        while offset < end {
            let read = self.log.read(offset, REPLAY_READ_BYTES, end, true).map_err(storage_error)?;
            let Some(slice) = read.slice else { break };
            let mut bytes = vec![0u8; slice.len as usize];
            slice.file.read_exact_at(&mut bytes, slice.position)?;
            for item in BatchIter::new(&bytes) {
                let (_, batch) = item.map_err(|e| MetadataError::Corrupt(e.to_string()))?;
                for record in batch.records().map_err(|e| MetadataError::Corrupt(e.to_string()))? {
                    let value = record.value.ok_or_else(|| MetadataError::Corrupt("null metadata record".into()))?;
                    records.push(MetadataRecord::decode(value).map_err(|e| MetadataError::Corrupt(e.to_string()))?);
                }
                offset = batch.last_offset() + 1;
            }
        }
        Ok(records)
    }
}

/// The metadata log plus the image it has produced. Commits are serialised by the log lock;
/// readers take the current image without waiting for writers.
pub struct MetadataStore {
    log: Mutex<Box<dyn MetadataLog>>,
    image: RwLock<Arc<MetadataImage>>,
}

impl MetadataStore {
    /// Replays the log into a fresh image.
    pub fn load(mut log: Box<dyn MetadataLog>) -> Result<Self, MetadataError> {
        let records = log.replay()?;
        let image = MetadataImage::default().apply(&records);
        Ok(MetadataStore { log: Mutex::new(log), image: RwLock::new(Arc::new(image)) })
    }

    pub fn image(&self) -> Arc<MetadataImage> {
        self.image.read().expect("image lock").clone()
    }

    /// Makes `decide`'s records durable and publishes the image they produce. `decide` runs
    /// under the commit lock against the latest image, so check-then-write is atomic.
    pub fn commit<E>(
        &self,
        decide: impl FnOnce(&MetadataImage) -> Result<Vec<MetadataRecord>, E>,
    ) -> Result<Result<Arc<MetadataImage>, E>, MetadataError> {
        let mut log = self.log.lock().expect("metadata log lock");
        let current = self.image();
        let records = match decide(&current) {
            Ok(records) => records,
            Err(e) => return Ok(Err(e)),
        };
        if records.is_empty() {
            return Ok(Ok(current));
        }
        log.append(&records)?;
        let next = Arc::new(current.apply(&records));
        *self.image.write().expect("image lock") = next.clone();
        Ok(Ok(next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use runnel_metadata::ConfigResource;

    #[test]
    fn committed_records_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let log = LocalMetadataLog::open(dir.path(), false, 0).unwrap();
        let store = MetadataStore::load(Box::new(log)).unwrap();
        for i in 0..3 {
            let record = MetadataRecord::Config {
                resource: ConfigResource::Broker(1),
                name: format!("k{i}"),
                value: Some("v".into()),
            };
            store.commit(|_| Ok::<_, ()>(vec![record])).unwrap().unwrap();
        }
        drop(store);
        let log = LocalMetadataLog::open(dir.path(), false, 0).unwrap();
        let store = MetadataStore::load(Box::new(log)).unwrap();
        assert_eq!(store.image().configs[&ConfigResource::Broker(1)].len(), 3);
    }
}
