//! KIP-392: consumers read from the closest in-sync replica. On a three-node cluster with
//! one broker per rack and `replica.selector.class` set to Kafka's rack-aware selector, a
//! librdkafka consumer with `client.rack` naming a follower's rack is sent to that follower
//! (`preferred_read_replica`) and reads every record from it, in order.

mod support;

use rdkafka::consumer::Consumer;
use rdkafka::Message;
use support::cluster::*;
use support::*;

const RACK_AWARE: &str = "replica.selector.class=org.apache.kafka.common.replica.RackAwareReplicaSelector";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_reads_from_the_in_sync_replica_in_its_rack() {
    let racks = [(1, "a"), (2, "b"), (3, "c")];
    let specs: Vec<Spec> = racks
        .iter()
        .map(|(id, rack)| Spec::combined(*id).with_rack(rack).with_metrics().with_args(&["--set", RACK_AWARE]))
        .collect();
    let cluster = Cluster::start(&specs);
    cluster.await_brokers_listed(CONVERGE_TIMEOUT).await;
    create_topic_via(cluster.kafka_addr(1), "near", 1, 3).await.expect("create near");
    let partition = eventually(CONVERGE_TIMEOUT, "every replica of near-0 in sync", || async {
        let view = cluster.view(1).await?;
        let p = view.topic("near").ok_or("no topic yet")?.partitions[0].clone();
        (p.isr.len() == 3).then_some(p.clone()).ok_or(format!("{p:?}"))
    })
    .await;
    let follower = *partition.replicas.iter().find(|id| **id != partition.leader).unwrap();
    let follower_rack = racks.iter().find(|(id, _)| *id == follower).unwrap().1;
    let bootstrap: String = cluster.ids().iter().map(|id| cluster.kafka_addr(*id)).collect::<Vec<_>>().join(",");

    let producer = producer(&bootstrap, &[("acks", "all")]);
    let messages: Vec<Msg> =
        (0..300).map(|i| Msg::new(format!("k{i}"), format!("value-{i:05}-{}", "x".repeat(500)))).collect();
    produce_all(&producer, "near", Some(0), &messages, None).await;

    // The follower sends no records to anyone but a consumer (it leads nothing).
    let expected: Vec<Vec<u8>> = messages.iter().map(|m| m.value.clone()).collect();
    let read_all = |rack: Option<&str>| {
        let mut settings = vec![("auto.offset.reset", "earliest")];
        settings.extend(rack.map(|rack| ("client.rack", rack)));
        let consumer = consumer(&bootstrap, &settings);
        let mut assignment = rdkafka::TopicPartitionList::new();
        assignment.add_partition_offset("near", 0, rdkafka::Offset::Beginning).unwrap();
        consumer.assign(&assignment).unwrap();
        let expected = expected.clone();
        async move {
            let mut values = Vec::new();
            while values.len() < expected.len() {
                let message =
                    tokio::time::timeout(IO_TIMEOUT, consumer.recv()).await.expect("in time").expect("a record");
                values.push(message.payload().unwrap().to_vec());
            }
            assert_eq!(values, expected, "every record, in order");
        }
    };
    let sent_by_follower = || metric(cluster.node(follower).metrics_url(), "runnel_sendfile_bytes_total");

    // Without a rack, the leader serves.
    let before = sent_by_follower();
    read_all(None).await;
    assert_eq!(sent_by_follower(), before, "a consumer without a rack reads from the leader");
    // In the follower's rack, the follower serves.
    read_all(Some(follower_rack)).await;
    let served = sent_by_follower() - before;
    let payload: usize = expected.iter().map(Vec::len).sum();
    assert!(
        served as usize >= payload,
        "the follower in rack {follower_rack} sent {served} bytes of records, the records are {payload} bytes"
    );
}
