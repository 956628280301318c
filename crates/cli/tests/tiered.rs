//! Tiered storage, copy only (issue 19 in progress): with `remote.log.storage.system.enable`
//! and the default local-directory backend, a topic with `remote.storage.enable` has every
//! closed segment below the high watermark copied to the store, byte for byte, with its
//! indexes and leader epochs, exactly once, also across a restart; local segments stay.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use support::*;
use tempfile::TempDir;

/// The remote `.log` objects by base offset, and how many objects there are per kind.
fn remote_objects(data: &Path) -> (BTreeMap<i64, Vec<PathBuf>>, BTreeMap<String, usize>) {
    let files = support::tiered::files_under(&data.join("remote-log-storage"));
    let mut logs: BTreeMap<i64, Vec<PathBuf>> = BTreeMap::new();
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        let Some((stem, kind)) = name.rsplit_once('.') else { continue };
        *kinds.entry(kind.to_string()).or_default() += 1;
        if kind == "log" {
            let base: i64 = stem.split('-').next().unwrap().parse().unwrap();
            logs.entry(base).or_default().push(file);
        }
    }
    (logs, kinds)
}

/// The local closed segments (every `.log` but the last) by base offset.
fn closed_local(data: &Path, folder: &str) -> BTreeMap<i64, PathBuf> {
    let mut logs: Vec<(i64, PathBuf)> = std::fs::read_dir(data.join(folder))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .map(|p| (p.file_stem().unwrap().to_string_lossy().parse().unwrap(), p))
        .collect();
    logs.sort();
    logs.pop();
    logs.into_iter().collect()
}

fn copied_exactly(data: &Path) -> Result<usize, String> {
    let local = closed_local(data, "tiered-0");
    let (remote, kinds) = remote_objects(data);
    if local.is_empty() || remote.len() != local.len() {
        return Err(format!("{} of {} closed segments remote", remote.len(), local.len()));
    }
    for (base, path) in &local {
        let copies = remote.get(base).ok_or(format!("segment {base} not remote"))?;
        if copies.len() != 1 {
            return Err(format!("segment {base} remote {} times", copies.len()));
        }
        if std::fs::read(&copies[0]).unwrap() != std::fs::read(path).unwrap() {
            return Err(format!("segment {base} differs"));
        }
    }
    for kind in ["index", "timeindex", "epochs"] {
        if kinds.get(kind) != Some(&local.len()) {
            return Err(format!("{kind}: {kinds:?}"));
        }
    }
    Ok(local.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_segments_are_copied_to_the_local_directory_backend_once() {
    let data = TempDir::new().unwrap();
    let settings =
        ["--set", "remote.log.storage.system.enable=true", "--set", "remote.log.manager.task.interval.ms=100"];
    let mut node = Node::start_with_metrics(data.path(), &settings);
    let bootstrap = node.bootstrap().to_string();
    create_topic(&bootstrap, "tiered", 1, &[("remote.storage.enable", "true"), ("internal.segment.bytes", "20000")])
        .await;
    create_topic(&bootstrap, "local-only", 1, &[("internal.segment.bytes", "20000")]).await;
    let producer = producer(&bootstrap, &[("batch.size", "4096"), ("linger.ms", "0")]);
    let messages: Vec<Msg> = (0..200).map(|i| Msg::new(format!("k{i}"), vec![b'v'; 1000])).collect();
    produce_all(&producer, "tiered", Some(0), &messages, None).await;
    produce_all(&producer, "local-only", Some(0), &messages, None).await;
    let copied = poll_until(Duration::from_secs(30), Duration::from_millis(100), "every closed segment remote", || {
        copied_exactly(data.path()).ok()
    });
    assert!(copied >= 5, "{copied} segments");
    let local_bytes: u64 =
        closed_local(data.path(), "tiered-0").values().map(|p| std::fs::metadata(p).unwrap().len()).sum();
    // The last copy's objects are in the store a moment before it is committed and counted.
    poll_until(Duration::from_secs(10), Duration::from_millis(20), "the copies counted", || {
        (metric(node.metrics_url(), "runnel_remote_copied_segments_total") == copied as u64).then_some(())
    });
    assert_eq!(metric(node.metrics_url(), "runnel_remote_copied_bytes_total"), local_bytes);
    assert_eq!(closed_local(data.path(), "tiered-0").len(), copied, "local segments are kept");

    // After a restart, and more records, the new segments follow and none is copied twice.
    node.terminate();
    node.restart();
    let bootstrap = node.bootstrap().to_string();
    let producer = support::producer(&bootstrap, &[("batch.size", "4096"), ("linger.ms", "0")]);
    produce_all(&producer, "tiered", Some(0), &messages, None).await;
    let after = poll_until(Duration::from_secs(30), Duration::from_millis(100), "the new segments remote", || {
        copied_exactly(data.path()).ok().filter(|n| *n > copied)
    });
    assert!(after > copied);
    let (remote, _) = remote_objects(data.path());
    assert_eq!(remote.len(), after, "only the tiered topic's segments are remote");
}

/// kill -9 while segments are being copied, three times: after each restart, whatever the
/// killed round left (a copy started and not finished, objects of it) is cleaned up, and in
/// the end every closed segment is remote exactly once, byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_during_copies_leaves_nothing_half_written() {
    let data = TempDir::new().unwrap();
    let settings =
        ["--set", "remote.log.storage.system.enable=true", "--set", "remote.log.manager.task.interval.ms=50"];
    let mut node = Node::start(data.path(), &settings);
    let bootstrap = node.bootstrap().to_string();
    create_topic(&bootstrap, "tiered", 1, &[("remote.storage.enable", "true"), ("internal.segment.bytes", "20000")])
        .await;
    let messages: Vec<Msg> = (0..150).map(|i| Msg::new(format!("k{i}"), vec![b'v'; 1000])).collect();
    for _ in 0..3 {
        let bootstrap = node.bootstrap().to_string();
        let copies_before = node.logged_lines("segment copied to remote storage").len();
        let producer = support::producer(&bootstrap, &[("batch.size", "4096"), ("linger.ms", "0")]);
        produce_all(&producer, "tiered", Some(0), &messages, None).await;
        drop(producer);
        poll_until(Duration::from_secs(30), Duration::from_millis(1), "a copy to finish", || {
            (node.logged_lines("segment copied to remote storage").len() > copies_before).then_some(())
        });
        node.kill9();
        node.restart();
        eprintln!("abandoned copies removed so far: {}", node.logged_lines("abandoned remote copy removed").len());
    }
    poll_until(Duration::from_secs(30), Duration::from_millis(100), "every closed segment remote once", || {
        copied_exactly(data.path()).ok()
    });
}
