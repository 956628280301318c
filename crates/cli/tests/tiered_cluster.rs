//! Tiered storage on three nodes sharing one local-directory store: the leader uploads and
//! every replica deletes its uploaded segments by local retention; a replica added by
//! reassignment copies only the local part (OFFSET_MOVED_TO_TIERED_STORAGE, then it starts
//! above what remote storage holds); after the old leader is killed, the new one serves
//! every record from offset 0, the old ones from the segments the old leader uploaded.
//! An idempotent producer whose last batch only remote storage holds keeps writing after
//! the failover: the new leader took the producer state from remote storage. A cluster
//! with the default per-node directory is refused at start.

mod support;

use std::process::Command;
use std::time::Duration;

use support::cluster::*;
use support::tiered::*;
use support::*;
use tempfile::TempDir;

const RECORDS: usize = 10_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_keep_the_local_part_and_a_new_leader_serves_the_remote_part() {
    let store = TempDir::new().unwrap();
    let shared = format!("remote.log.storage.local.dir={}", store.path().display());
    let args = [FAST_FAILURE_DETECTION, &FAST_TIERING[..], &["--set", &shared]].concat();
    let mut cluster = three_agreed_nodes(&args, Duration::from_secs(60)).await;
    let configs =
        [("remote.storage.enable", "true"), ("internal.segment.bytes", "500000"), ("local.retention.bytes", "1000000")];
    create_topic_with_configs_via(cluster.kafka_addr(1), "tiered", 1, 2, &configs).await.unwrap();
    let replicas = eventually(Duration::from_secs(60), "both replicas in sync", || async {
        let view = cluster.view(1).await?;
        let p = view.topic("tiered").ok_or("topic missing")?.partitions[0].clone();
        (p.isr.len() == 2).then_some(p.clone()).ok_or(format!("{p:?}"))
    })
    .await;
    let bootstrap = [1, 2, 3].map(|id| cluster.kafka_addr(id).to_string()).join(",");
    // The first records come from an idempotent producer that then stays idle.
    let idempotent = producer(&bootstrap, &[("enable.idempotence", "true"), ("linger.ms", "5")]);
    let messages: Vec<Msg> = (0..RECORDS).map(|i| Msg::new(format!("k{i}"), value(i))).collect();
    produce_all(&idempotent, "tiered", Some(0), &messages[..100], None).await;
    let producer = producer(&bootstrap, &[("acks", "all"), ("batch.size", "65536"), ("linger.ms", "5")]);
    produce_all(&producer, "tiered", Some(0), &messages[100..], None).await;

    // Both replicas delete what was uploaded, down to about 1 MB each.
    for id in &replicas.replicas {
        let data = cluster.node(*id).data_dir().to_path_buf();
        poll_until(Duration::from_secs(60), Duration::from_millis(100), "local retention on every replica", || {
            local_start(&data, "tiered-0").filter(|start| *start > 5_000)
        });
    }
    reads_everything(&bootstrap, "tiered", RECORDS).await;
    // Each uploaded segment has its producer state at its end beside it.
    let snapshots = files_under(store.path()).iter().filter(|p| p.extension().is_some_and(|e| e == "snapshot")).count();
    let logs = files_under(store.path()).iter().filter(|p| p.extension().is_some_and(|e| e == "log")).count();
    assert!(logs > 10 && snapshots == logs, "{snapshots} producer snapshots for {logs} segments");

    // A node that never held the partition joins it: it copies the local part only.
    let newcomer = [1, 2, 3].into_iter().find(|id| !replicas.replicas.contains(id)).unwrap();
    let kept = replicas.leader;
    let target = format!("{newcomer},{kept}");
    let moved = runnel_topic(
        cluster.kafka_addr(kept),
        &["reassign", "tiered", "--partition", "0", "--replicas", &target, "--wait"],
    );
    assert!(moved.ends_with(&format!("reassigned tiered-0 to {target}\n")), "{moved}");
    eventually(Duration::from_secs(60), "the reassignment to complete", || async {
        let view = cluster.view(kept).await?;
        let p = view.topic("tiered").ok_or("topic missing")?.partitions[0].clone();
        (p.replicas.contains(&newcomer) && p.replicas.len() == 2 && p.isr.len() == 2)
            .then_some(())
            .ok_or_else(|| format!("{p:?}"))
    })
    .await;
    let newcomer_start = local_start(cluster.node(newcomer).data_dir(), "tiered-0").expect("the new replica's log");
    assert!(newcomer_start > 5_000, "the new replica starts at {newcomer_start}, above what remote storage holds");

    // The leader dies; the new replica leads and serves everything, the remote part from
    // what the old leader uploaded.
    cluster.kill9(kept);
    eventually(Duration::from_secs(60), "the new replica to lead", || async {
        let view = cluster.view(newcomer).await?;
        let p = view.topic("tiered").ok_or("topic missing")?.partitions[0].clone();
        (p.leader == newcomer).then_some(()).ok_or_else(|| format!("{p:?}"))
    })
    .await;
    let survivors = [1, 2, 3].into_iter().filter(|id| *id != kept).map(|id| cluster.kafka_addr(id).to_string());
    let survivors = survivors.collect::<Vec<_>>().join(",");
    // The idempotent producer goes on with its sequence numbers: the new leader knows it.
    let more: Vec<Msg> = (RECORDS..RECORDS + 100).map(|i| Msg::new(format!("k{i}"), value(i))).collect();
    produce_all(&idempotent, "tiered", Some(0), &more, None).await;
    reads_everything(&survivors, "tiered", RECORDS + 100).await;
}

#[test]
fn a_cluster_with_each_nodes_own_directory_is_refused() {
    let data = TempDir::new().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_runnel"))
        .args(["server", "--data-dir"])
        .arg(data.path())
        .args([
            "--node-id",
            "1",
            "--controller-quorum",
            "1@127.0.0.1:1",
            "--controller-listen",
            "127.0.0.1:0",
            "--set",
            "remote.log.storage.system.enable=true",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("remote.log.storage.local.dir"), "{stderr}");
}
