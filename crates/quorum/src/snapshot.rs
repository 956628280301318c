//! The snapshot file: the metadata image as of one log id, which lets the log be purged.
//!
//! # Format of `<dir>/snapshot`
//! ```text
//! magic "RNLSNAP1" | u32 meta_bytes | u64 data_bytes | u32 crc32c(meta ++ data) | meta | data
//! ```
//! (integers big-endian). `meta` is openraft's `SnapshotMeta` as JSON; `data` is the image as
//! JSON ([`encode_image`]), exactly the bytes sent to a follower that installs the snapshot.
//! The file is replaced atomically, so a damaged one (bad magic, lengths that disagree with
//! the file size, CRC mismatch) is corruption and refuses to load.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use runnel_metadata::acl::Acls;
use runnel_metadata::quota::QuotaEntity;
use runnel_metadata::remote_log::RemoteLogImage;
use runnel_metadata::scram::ScramCredentials;
use runnel_metadata::{BrokerImage, ConfigResource, MetadataImage, TopicImage};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::types::SnapshotMeta;

pub const SNAPSHOT_FILE: &str = "snapshot";
const MAGIC: &[u8; 8] = b"RNLSNAP1";
const HEADER_BYTES: usize = 8 + 4 + 8 + 4;

#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot i/o in {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("snapshot {path} corrupt: {why}")]
    Corrupt { path: PathBuf, why: String },
    #[error("snapshot data undecodable: {0}")]
    Data(#[from] serde_json::Error),
    #[error("snapshot meta of {bytes} bytes does not fit the snapshot file")]
    MetaTooLarge { bytes: u64 },
}

/// The image as a snapshot holds it. JSON object keys must be strings, so the configs map
/// (keyed by [`ConfigResource`]) and the quotas (keyed by [`QuotaEntity`]) travel as lists
/// of pairs.
#[derive(Serialize)]
struct ImageOut<'a> {
    brokers: &'a BTreeMap<i32, BrokerImage>,
    topics: &'a BTreeMap<String, TopicImage>,
    topic_names_by_id: &'a HashMap<Uuid, String>,
    configs: Vec<(&'a ConfigResource, &'a BTreeMap<String, String>)>,
    records_applied: u64,
    next_producer_id: i64,
    producer_id_block_owner: i32,
    producer_id_grant: Uuid,
    scram: &'a ScramCredentials,
    acls: &'a Acls,
    quotas: Vec<(&'a QuotaEntity, &'a BTreeMap<String, f64>)>,
    remote_logs: Vec<(&'a (Uuid, i32), &'a Arc<RemoteLogImage>)>,
    leader_elections: u64,
    unclean_elections: u64,
}

#[derive(Deserialize)]
struct ImageIn {
    brokers: BTreeMap<i32, BrokerImage>,
    topics: BTreeMap<String, TopicImage>,
    topic_names_by_id: HashMap<Uuid, String>,
    configs: Vec<(ConfigResource, BTreeMap<String, String>)>,
    records_applied: u64,
    next_producer_id: i64,
    #[serde(default)]
    producer_id_block_owner: i32,
    #[serde(default)]
    producer_id_grant: Uuid,
    #[serde(default)]
    scram: ScramCredentials,
    #[serde(default)]
    acls: Acls,
    #[serde(default)]
    quotas: Vec<(QuotaEntity, BTreeMap<String, f64>)>,
    #[serde(default)]
    remote_logs: Vec<((Uuid, i32), Arc<RemoteLogImage>)>,
    #[serde(default)]
    leader_elections: u64,
    #[serde(default)]
    unclean_elections: u64,
}

pub fn encode_image(image: &MetadataImage) -> Vec<u8> {
    // Destructured without `..`: a new image field fails to compile here until it is carried.
    let MetadataImage {
        brokers,
        topics,
        topic_names_by_id,
        configs,
        records_applied,
        next_producer_id,
        producer_id_block_owner,
        producer_id_grant,
        scram,
        acls,
        quotas,
        remote_logs,
        leader_elections,
        unclean_elections,
    } = image;
    let mut configs: Vec<_> = configs.iter().collect();
    configs.sort_by(|a, b| a.0.cmp(b.0));
    let out = ImageOut {
        brokers,
        topics,
        topic_names_by_id,
        configs,
        records_applied: *records_applied,
        next_producer_id: *next_producer_id,
        producer_id_block_owner: *producer_id_block_owner,
        producer_id_grant: *producer_id_grant,
        scram,
        acls,
        quotas: quotas.iter().collect(),
        remote_logs: remote_logs.iter().collect(),
        leader_elections: *leader_elections,
        unclean_elections: *unclean_elections,
    };
    serde_json::to_vec(&out).expect("images always serialize")
}

pub fn decode_image(data: &[u8]) -> Result<MetadataImage, serde_json::Error> {
    let ImageIn {
        brokers,
        topics,
        topic_names_by_id,
        configs,
        records_applied,
        next_producer_id,
        producer_id_block_owner,
        producer_id_grant,
        scram,
        acls,
        quotas,
        remote_logs,
        leader_elections,
        unclean_elections,
    } = serde_json::from_slice(data)?;
    let configs = configs.into_iter().collect();
    Ok(MetadataImage {
        brokers,
        topics,
        topic_names_by_id,
        configs,
        records_applied,
        next_producer_id,
        producer_id_block_owner,
        producer_id_grant,
        scram,
        acls,
        quotas: quotas.into_iter().collect(),
        remote_logs: remote_logs.into_iter().collect(),
        leader_elections,
        unclean_elections,
    })
}

/// Replaces the snapshot in `dir` with `meta` and `data`, durably.
pub fn write(dir: &Path, meta: &SnapshotMeta, data: &[u8]) -> Result<(), SnapshotError> {
    // The meta may come from the leader that sent the snapshot: refused, never a panic.
    let meta_json = serde_json::to_vec(meta)?;
    let meta_bytes =
        u32::try_from(meta_json.len()).map_err(|_| SnapshotError::MetaTooLarge { bytes: meta_json.len() as u64 })?;
    let mut bytes = Vec::with_capacity(HEADER_BYTES + meta_json.len() + data.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&meta_bytes.to_be_bytes());
    bytes.extend_from_slice(&(data.len() as u64).to_be_bytes());
    let mut crc = crc32c::crc32c(&meta_json);
    crc = crc32c::crc32c_append(crc, data);
    bytes.extend_from_slice(&crc.to_be_bytes());
    bytes.extend_from_slice(&meta_json);
    bytes.extend_from_slice(data);
    let path = dir.join(SNAPSHOT_FILE);
    runnel_fs::write_atomically(&dir.join(SNAPSHOT_FILE), &bytes).map_err(|source| SnapshotError::Io { path, source })
}

/// The snapshot in `dir`, if one was written.
pub fn read(dir: &Path) -> Result<Option<(SnapshotMeta, Vec<u8>)>, SnapshotError> {
    let path = dir.join(SNAPSHOT_FILE);
    let Some(bytes) =
        runnel_fs::read_optional(&path).map_err(|source| SnapshotError::Io { path: path.clone(), source })?
    else {
        return Ok(None);
    };
    let corrupt = |why: &str| SnapshotError::Corrupt { path: path.clone(), why: why.to_string() };
    if bytes.len() < HEADER_BYTES || &bytes[..8] != MAGIC {
        return Err(corrupt("bad magic or short header"));
    }
    let meta_bytes = u32::from_be_bytes(bytes[8..12].try_into().expect("4 bytes")) as u64;
    let data_bytes = u64::from_be_bytes(bytes[12..20].try_into().expect("8 bytes"));
    let crc = u32::from_be_bytes(bytes[20..24].try_into().expect("4 bytes"));
    let body = &bytes[HEADER_BYTES..];
    if meta_bytes.checked_add(data_bytes) != Some(body.len() as u64) {
        return Err(corrupt("lengths disagree with the file size"));
    }
    if crc32c::crc32c(body) != crc {
        return Err(corrupt("checksum mismatch"));
    }
    let (meta_json, data) = usize::try_from(meta_bytes)
        .ok()
        .and_then(|meta_bytes| body.split_at_checked(meta_bytes))
        .ok_or_else(|| corrupt("lengths disagree with the file size"))?;
    let meta = serde_json::from_slice(meta_json).map_err(|e| corrupt(&e.to_string()))?;
    Ok(Some((meta, data.to_vec())))
}

#[cfg(test)]
mod tests {
    use runnel_metadata::quota::EntityName;
    use runnel_metadata::MetadataRecord;

    use super::*;

    #[test]
    fn image_with_configs_round_trips() {
        let id = Uuid::from_u128(3);
        let image = MetadataImage::default().apply(&[
            MetadataRecord::Topic { name: "t".into(), topic_id: id },
            MetadataRecord::Config { resource: ConfigResource::Broker(1), name: "a".into(), value: Some("1".into()) },
            MetadataRecord::Config {
                resource: ConfigResource::Topic("t".into()),
                name: "retention.ms".into(),
                value: Some("5".into()),
            },
            MetadataRecord::Config {
                resource: ConfigResource::BrokerDefault,
                name: "b".into(),
                value: Some("2".into()),
            },
            MetadataRecord::ClientQuota {
                entity: QuotaEntity { user: Some(EntityName::Named("u".into())), client_id: Some(EntityName::Default) },
                key: "producer_byte_rate".into(),
                value: Some(1024.0),
            },
        ]);
        assert_eq!(image.quotas.len(), 1);
        assert_eq!(decode_image(&encode_image(&image)).unwrap(), image);
    }

    #[test]
    fn damaged_snapshot_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read(dir.path()).unwrap().is_none());
        let meta = SnapshotMeta::default();
        write(dir.path(), &meta, b"{}").unwrap();
        let (read_meta, data) = read(dir.path()).unwrap().unwrap();
        assert_eq!((read_meta, data.as_slice()), (meta, &b"{}"[..]));

        let path = dir.path().join(SNAPSHOT_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(matches!(read(dir.path()), Err(SnapshotError::Corrupt { .. })));
    }
}
