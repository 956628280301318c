//! Builds the seed corpora in `fuzz/corpus/` from captured client traffic and broker data
//! directories (see fuzz/README.md for how those were produced):
//!
//!     cargo run --example make_seeds -- --requests DIR... --quorum DIR... \
//!         --data-dir DIR... --out fuzz/corpus
//!
//! `--requests`: request frames as `tools/capture_proxy.py` writes them; `--quorum`: quorum
//! frames (`--quorum` mode of the proxy); `--data-dir`: data directories of stopped brokers
//! (their `__consumer_offsets-*`, `__cluster_metadata-0` and topic partition logs).
//! Seeds are named after their content hash, so rerunning adds nothing twice.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, ProduceRequest};
use kafka_protocol::protocol::Decodable;
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, SnapshotMeta, StoredMembership, Vote};
use runnel_metadata::records::ConfigResource;
use runnel_metadata::{MetadataImage, MetadataRecord};
use runnel_protocol::batch::{build_batch, BatchIter, Compression};
use runnel_protocol::frame::decode_header;
use runnel_quorum::rpc::{self, Request};
use runnel_quorum::{snapshot, MetadataBatch, TypeConfig};

fn hash(bytes: &[u8]) -> String {
    format!("{:08x}", crc32c::crc32c(bytes))
}

fn write_seed(out: &Path, target: &str, name: &str, bytes: &[u8]) {
    let dir = out.join(target);
    std::fs::create_dir_all(&dir).expect("corpus dir");
    std::fs::write(dir.join(format!("{name}-{}", hash(bytes))), bytes).expect("seed");
}

fn files(dirs: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in dirs {
        for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            out.push(entry.expect("entry").path());
        }
    }
    out.sort();
    out
}

/// The concatenated `.log` segments of a partition directory.
fn log_bytes(dir: &Path) -> Vec<u8> {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    segments.retain(|p| p.extension().is_some_and(|e| e == "log"));
    segments.sort();
    segments.iter().flat_map(|p| std::fs::read(p).expect("segment")).collect()
}

/// Request frames: at most 3 per API key and version, the smallest ones. Record sets of
/// Produce requests are collected for `record_batch`.
fn requests(dirs: &[PathBuf], out: &Path, batches: &mut BTreeMap<String, Vec<u8>>) {
    let mut by_api: BTreeMap<(i16, i16), Vec<Vec<u8>>> = BTreeMap::new();
    for path in files(dirs) {
        let frame = std::fs::read(&path).expect("frame");
        if frame.len() < 4 {
            continue;
        }
        let key = (i16::from_be_bytes([frame[0], frame[1]]), i16::from_be_bytes([frame[2], frame[3]]));
        if key.0 == ApiKey::Produce as i16 {
            if let Ok((_, header, mut body)) = decode_header(Bytes::from(frame.clone())) {
                if let Ok(request) = ProduceRequest::decode(&mut body, header.request_api_version) {
                    for data in request.topic_data.iter().flat_map(|t| &t.partition_data) {
                        let Some(records) = &data.records else { continue };
                        let Some(Ok((_, view))) = BatchIter::new(records).next() else { continue };
                        let codec = match view.compression() {
                            Ok(Compression::None) => "none",
                            Ok(Compression::Gzip) => "gzip",
                            Ok(Compression::Snappy) => "snappy",
                            Ok(Compression::Lz4) => "lz4",
                            Ok(Compression::Zstd) => "zstd",
                            Err(_) => "unknown",
                        };
                        let idempotent = if view.producer_id() >= 0 { "idem" } else { "plain" };
                        let name = format!("{codec}-{idempotent}-v{}", header.request_api_version);
                        let entry = batches.entry(name).or_insert_with(|| records.to_vec());
                        if records.len() < entry.len() {
                            *entry = records.to_vec();
                        }
                    }
                }
            }
        }
        by_api.entry(key).or_default().push(frame);
    }
    for ((key, version), mut frames) in by_api {
        frames.sort_by_key(|f| (f.len(), f.clone()));
        frames.dedup();
        // The smallest, the largest and one from the middle.
        let picks: Vec<&Vec<u8>> = match frames.len() {
            0..=3 => frames.iter().collect(),
            n => vec![&frames[0], &frames[n / 2], &frames[n - 1]],
        };
        for frame in picks.into_iter().filter(|f| f.len() <= 16 * 1024) {
            write_seed(out, "request_frame", &format!("{key}-{version}"), frame);
        }
    }
}

fn record_batches(mut batches: BTreeMap<String, Vec<u8>>, data_dirs: &[PathBuf], out: &Path) {
    batches.insert("built".into(), build_batch(1_700_000_000_000, &[b"a", b"bb", b""]));
    // A follower's view: the first batches of a replicated partition, as the leader sent them.
    for data_dir in data_dirs {
        for entry in std::fs::read_dir(data_dir).expect("data dir").flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("__") || !entry.path().is_dir() {
                continue;
            }
            let bytes = log_bytes(&entry.path());
            let mut end = 0;
            for (i, item) in BatchIter::new(&bytes).enumerate() {
                let Ok((start, view)) = item else { break };
                end = start + view.size();
                if i == 3 {
                    break;
                }
            }
            if end > 0 && end <= 8 * 1024 {
                batches.insert(format!("replicated-{name}"), bytes[..end].to_vec());
            }
        }
    }
    for (name, batch) in batches {
        for flags in [0u8, 2] {
            let mut seed = vec![flags];
            seed.extend_from_slice(&batch);
            write_seed(out, "record_batch", &format!("{name}-f{flags}"), &seed);
        }
    }
}

/// Records in the `group_records` input format (see `src/group_records.rs`).
fn encode_records(records: &[(Vec<u8>, Option<Vec<u8>>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (key, value) in records {
        out.extend_from_slice(&(key.len() as u16).to_be_bytes());
        out.extend_from_slice(key);
        match value {
            Some(value) => {
                out.extend_from_slice(&(value.len() as i32).to_be_bytes());
                out.extend_from_slice(value);
            }
            None => out.extend_from_slice(&(-1i32).to_be_bytes()),
        }
    }
    out
}

fn group_records(data_dirs: &[PathBuf], out: &Path) {
    for data_dir in data_dirs {
        for entry in std::fs::read_dir(data_dir).expect("data dir").flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with("__consumer_offsets-") {
                continue;
            }
            let bytes = log_bytes(&entry.path());
            let mut records = Vec::new();
            for (_, view) in BatchIter::new(&bytes).flatten() {
                for record in view.records().unwrap_or_default() {
                    let Some(key) = record.key else { continue };
                    records.push((key.to_vec(), record.value.map(<[u8]>::to_vec)));
                }
            }
            if !records.is_empty() {
                write_seed(out, "group_records", &name, &encode_records(&records));
            }
        }
    }
    // Kafka's GroupMetadataValue v0 (no rebalance timeout, state time or instance id).
    let mut v0 = vec![0, 0, 0, 8];
    v0.extend_from_slice(b"consumer");
    v0.extend_from_slice(&[0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]);
    let seed = encode_records(&[(vec![0, 2, 0, 1, b'g'], Some(v0))]);
    write_seed(out, "group_records", "kafka-v0", &seed);
}

fn synthetic_metadata() -> Vec<MetadataRecord> {
    let id = uuid::Uuid::from_u128(0x1234);
    vec![
        MetadataRecord::RegisterBroker {
            node_id: 1,
            host: "127.0.0.1".into(),
            port: 9092,
            rack: Some("r1".into()),
            incarnation_id: uuid::Uuid::from_u128(1),
        },
        MetadataRecord::RegisterBroker {
            node_id: 2,
            host: "127.0.0.1".into(),
            port: 9093,
            rack: Some("r2".into()),
            incarnation_id: uuid::Uuid::from_u128(2),
        },
        MetadataRecord::Topic { name: "t".into(), topic_id: id },
        MetadataRecord::Partition {
            topic_id: id,
            partition: 0,
            replicas: vec![1, 2],
            isr: vec![1, 2],
            leader: 1,
            leader_epoch: 0,
            partition_epoch: 0,
        },
        MetadataRecord::Config {
            resource: ConfigResource::Topic("t".into()),
            name: "unclean.leader.election.enable".into(),
            value: Some("true".into()),
        },
        MetadataRecord::FenceBroker { node_id: 1, shutting_down: true },
        MetadataRecord::ChangePartition {
            topic_id: id,
            partition: 0,
            expected_partition_epoch: 0,
            leader: 2,
            isr: vec![2],
            replicas: Some(vec![2, 3, 1]),
            reassignment: Some((vec![3], vec![1])),
        },
        MetadataRecord::UnfenceBroker { node_id: 1 },
        MetadataRecord::ProducerIds { broker_id: 2, next_producer_id: 2000, request_id: uuid::Uuid::from_u128(9) },
        MetadataRecord::Config { resource: ConfigResource::Broker(1), name: "x".into(), value: None },
        MetadataRecord::RemoveTopic { topic_id: id },
    ]
}

fn lines(batches: &[Vec<MetadataRecord>]) -> Vec<u8> {
    let mut out = Vec::new();
    for batch in batches {
        for record in batch {
            out.extend_from_slice(&record.encode());
            out.push(b'\n');
        }
        out.push(b'\n');
    }
    out
}

/// Metadata log batches of the data directories (one record value per line, batches apart).
fn metadata_records(data_dirs: &[PathBuf], out: &Path) -> MetadataImage {
    let mut image = MetadataImage::default();
    for data_dir in data_dirs {
        let bytes = log_bytes(&data_dir.join("__cluster_metadata-0"));
        let mut batches = Vec::new();
        for (_, view) in BatchIter::new(&bytes).flatten() {
            let Ok(records) = view.records() else { continue };
            let batch: Vec<MetadataRecord> =
                records.iter().filter_map(|r| r.value.and_then(|v| MetadataRecord::decode(v).ok())).collect();
            batches.push(batch);
        }
        if batches.is_empty() {
            continue;
        }
        for batch in &batches {
            image = image.apply(batch);
        }
        // The whole log, and its first few commits.
        write_seed(out, "metadata_records", "log", &lines(&batches));
        write_seed(out, "metadata_records", "log-head", &lines(&batches[..batches.len().min(4)]));
    }
    let synthetic = synthetic_metadata();
    write_seed(out, "metadata_records", "all-kinds", &lines(&[synthetic[..5].to_vec(), synthetic[5..].to_vec()]));
    image
}

fn quorum_messages(dirs: &[PathBuf], image: &MetadataImage, out: &Path) {
    let mut stream = Vec::new();
    for path in files(dirs) {
        let frame = std::fs::read(&path).expect("frame");
        if frame.len() <= 8 * 1024 {
            write_seed(out, "quorum_messages", "captured", &frame);
            if stream.len() < 4 * 1024 {
                stream.extend_from_slice(&frame);
            }
        }
    }
    if !stream.is_empty() {
        write_seed(out, "quorum_messages", "stream", &stream);
    }
    let limit = rpc::FRAME_BYTES_MAX_DEFAULT;
    let records = synthetic_metadata();
    let log_id = LogId::new(CommittedLeaderId::new(3, 1), 7);
    let entry =
        Entry::<TypeConfig> { log_id, payload: EntryPayload::Normal(MetadataBatch { records: records.clone() }) };
    let append = openraft::raft::AppendEntriesRequest::<TypeConfig> {
        vote: Vote::new_committed(3, 1),
        prev_log_id: Some(LogId::new(CommittedLeaderId::new(3, 1), 6)),
        entries: vec![entry],
        leader_commit: Some(LogId::new(CommittedLeaderId::new(3, 1), 6)),
    };
    let install = openraft::raft::InstallSnapshotRequest::<TypeConfig> {
        vote: Vote::new_committed(3, 1),
        meta: SnapshotMeta {
            last_log_id: Some(log_id),
            last_membership: StoredMembership::default(),
            snapshot_id: "3-1-7".into(),
        },
        offset: 0,
        data: snapshot::encode_image(image),
        done: true,
    };
    let mut all = Vec::new();
    for (name, request) in [
        ("append", Request::AppendEntries(append)),
        ("install", Request::InstallSnapshot(install)),
        ("propose", Request::Propose(MetadataBatch { records })),
    ] {
        let frame = rpc::encode(&request, limit).expect("encodes");
        if frame.len() <= 16 * 1024 {
            write_seed(out, "quorum_messages", name, &frame);
        }
        all.extend_from_slice(&frame);
    }
    if all.len() <= 32 * 1024 {
        write_seed(out, "quorum_messages", "install-then-append", &all);
    }
}

fn storage_files(out: &Path) {
    let template = runnel_fuzz::storage_files::template();
    let scratch = Path::new("/nonexistent");
    for kind in 0u8..10 {
        let path = runnel_fuzz::storage_files::target_file(kind, template, scratch, scratch);
        let name = path.file_name().expect("name").to_string_lossy().into_owned();
        let contents = match kind {
            8 => format!("0\n1\nt 0 {}\n", template.log_end).into_bytes(),
            9 => b"0\n1\nt 0 3\n".to_vec(),
            _ => template.files.iter().find(|(n, _)| *n == name).expect("template file").1.clone(),
        };
        for flags in [0u8, 1] {
            let mut seed = vec![kind, flags];
            seed.extend_from_slice(&contents);
            write_seed(out, "storage_files", &format!("{kind}-{flags}"), &seed);
        }
    }
}

fn main() {
    let mut args: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    let mut current = String::new();
    for arg in std::env::args().skip(1) {
        if let Some(flag) = arg.strip_prefix("--") {
            current = flag.to_string();
        } else {
            args.entry(current.clone()).or_default().push(PathBuf::from(arg));
        }
    }
    let out = args.get("out").and_then(|o| o.first()).expect("--out DIR").clone();
    let none = Vec::new();
    let data_dirs = args.get("data-dir").unwrap_or(&none);
    let mut batches = BTreeMap::new();
    requests(args.get("requests").unwrap_or(&none), &out, &mut batches);
    record_batches(batches, data_dirs, &out);
    group_records(data_dirs, &out);
    let image = metadata_records(data_dirs, &out);
    quorum_messages(args.get("quorum").unwrap_or(&none), &image, &out);
    storage_files(&out);
}
