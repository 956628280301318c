//! The backends through their real stores: memory, a local directory, and an
//! S3-compatible server (moto's, a Python package `.ci/run` installs) that the test starts
//! on 127.0.0.1 and stops itself. Each gets the same exercise: whole and ranged reads,
//! checksums, listing in key order, deletion (also of what is not there), and the error
//! kinds; the S3 store is also stopped to check that a store that is down is
//! "unavailable", never "not found".

use std::time::Duration;

use bytes::Bytes;
use runnel_tiered::backend::S3Settings;
use runnel_tiered::testing::S3Server;
use runnel_tiered::{BackendSettings, ObjectKind, RemoteError, RemoteStore, SegmentKey};
use uuid::Uuid;

/// The store's settings for `bucket` on `server`.
fn s3_settings(server: &S3Server, bucket: &str) -> BackendSettings {
    BackendSettings::S3(S3Settings {
        endpoint: Some(server.endpoint()),
        access_key_id: Some("test".into()),
        secret_access_key: Some("test".into()),
        retries: 1,
        request_timeout: Duration::from_secs(5),
        ..S3Settings::new(bucket, "us-east-1")
    })
}

async fn exercise(store: &RemoteStore) {
    let topic = Uuid::from_u128(0xfeed);
    let keys: Vec<String> = [300i64, 0, 100]
        .into_iter()
        .map(|base| {
            SegmentKey {
                prefix: "runnel".into(),
                topic_id: topic,
                partition: 1,
                base_offset: base,
                segment_id: Uuid::from_u128(base as u128 + 1),
                kind: ObjectKind::Log,
            }
            .to_string()
        })
        .collect();
    let body = Bytes::from((0..100_000u32).flat_map(|i| i.to_le_bytes()).collect::<Vec<u8>>());
    let mut crcs = Vec::new();
    for key in &keys {
        crcs.push(store.put(key, body.clone()).await.expect("put"));
    }
    assert!(crcs.iter().all(|c| *c == crc32c::crc32c(&body)));
    assert_eq!(store.get(&keys[0], Some(crcs[0])).await.expect("get"), body);
    assert_eq!(store.get_range(&keys[1], 4_000..4_100).await.expect("range"), body.slice(4_000..4_100));
    let wrong = store.get(&keys[0], Some(crcs[0] ^ 1)).await;
    assert!(matches!(wrong, Err(RemoteError::Corrupt { .. })), "{wrong:?}");
    let past_end = store.get_range(&keys[0], 399_990..400_100).await;
    assert!(past_end.is_err(), "a range past the end is not served: {past_end:?}");

    let prefix = runnel_tiered::layout::partition_prefix("runnel", topic, 1);
    let listed: Vec<String> = store.list(&prefix).await.expect("list").into_iter().map(|(k, _)| k).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(listed, sorted, "in key order, which is offset order");
    assert!(listed.iter().all(|k| SegmentKey::parse(k).is_some()));

    // A file larger than a part goes up in parts, byte for byte.
    let mut file = tempfile::tempfile().unwrap();
    let big: Vec<u8> = (0..(12u32 << 20) / 4 + 7).flat_map(|i| i.wrapping_mul(2_654_435_761).to_le_bytes()).collect();
    std::io::Write::write_all(&mut file, &big).unwrap();
    let file = std::sync::Arc::new(file);
    let crc = store.put_file("runnel/big.log", file, big.len() as u64, 5 << 20).await.expect("put_file");
    assert_eq!(crc, crc32c::crc32c(&big));
    assert_eq!(store.get("runnel/big.log", Some(crc)).await.expect("get big").as_ref(), big.as_slice());
    store.delete("runnel/big.log").await.expect("delete big");

    store.delete(&keys[0]).await.expect("delete");
    store.delete(&keys[0]).await.expect("deleting what is gone succeeds");
    let gone = store.get(&keys[0], None).await;
    assert_eq!(gone, Err(RemoteError::NotFound(keys[0].clone())));
    assert_eq!(store.list(&prefix).await.expect("list").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_and_local_directory_backends() {
    exercise(&RemoteStore::open(&BackendSettings::Memory).unwrap()).await;
    let dir = tempfile::tempdir().unwrap();
    let local = BackendSettings::Local { dir: dir.path().join("remote") };
    exercise(&RemoteStore::open(&local).unwrap()).await;
    // The objects are files under the directory.
    let files = walk(&dir.path().join("remote"));
    assert_eq!(files.len(), 2, "{files:?}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().map(Result::unwrap) {
        if entry.file_type().unwrap().is_dir() {
            files.extend(walk(&entry.path()));
        } else {
            files.push(entry.path());
        }
    }
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_compatible_server_and_its_outage() {
    let server = S3Server::start("runnel-tests");
    let settings = s3_settings(&server, "runnel-tests");
    let store = RemoteStore::open(&settings).unwrap();
    exercise(&store).await;
    // The server stops: every request is "unavailable" (retry later, keep local data).
    drop(server);
    let down = store.put("runnel/x", Bytes::from_static(b"x")).await;
    assert!(matches!(down, Err(RemoteError::Unavailable(_))), "{down:?}");
    let down = store.get("runnel/x", None).await;
    assert!(matches!(down, Err(RemoteError::Unavailable(_))), "a store that is down is not 'not found': {down:?}");
}
