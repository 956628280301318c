//! The remote log image (tiered storage) under any sequence of uploads, finishes,
//! deletions, log-start moves and leadership changes, some from stale leaders: readable
//! segments never overlap, only the current leader's copies become readable, the remote
//! log start never goes back, every offset of a readable segment finds that segment, and a
//! JSON snapshot gives the same image.

use std::collections::BTreeMap;

use proptest::prelude::*;
use runnel_metadata::remote_log::{RemoteSegment, RemoteSegmentState, RemoteStateChange};
use runnel_metadata::{MetadataImage, MetadataRecord};
use uuid::Uuid;

const TOPIC: Uuid = Uuid::from_u128(7);

#[derive(Debug, Clone)]
enum Step {
    /// The leader moves to broker `0` (1..=3), bumping the leader epoch.
    Lead(i32),
    /// Broker `0` restarts (a new incarnation).
    Restart(i32),
    /// A copy of `len` offsets starts, from the current uploader (or a stale one).
    Start {
        len: i64,
        stale: bool,
    },
    /// A known segment finishes (a leader change since its start makes it stale).
    Finish(usize),
    DeleteStart(usize),
    DeleteFinish(usize),
    AdvanceStart(i64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (1..=3i32).prop_map(Step::Lead),
        (1..=3i32).prop_map(Step::Restart),
        (1..50i64, any::<bool>()).prop_map(|(len, stale)| Step::Start { len, stale: stale && len % 3 == 0 }),
        any::<usize>().prop_map(Step::Finish),
        any::<usize>().prop_map(Step::DeleteStart),
        any::<usize>().prop_map(Step::DeleteFinish),
        (0..500i64).prop_map(Step::AdvanceStart),
    ]
}

fn register(id: i32, incarnation: u128) -> MetadataRecord {
    MetadataRecord::RegisterBroker {
        node_id: id,
        host: "h".into(),
        port: 1,
        rack: None,
        incarnation_id: Uuid::from_u128(incarnation),
        endpoints: Vec::new(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn readable_segments_never_overlap_and_only_the_leaders_copies_count(steps in prop::collection::vec(step(), 1..60)) {
        let mut incarnations: BTreeMap<i32, u128> = (1..=3).map(|id| (id, id as u128)).collect();
        let mut records: Vec<MetadataRecord> = (1..=3).map(|id| register(id, id as u128)).collect();
        records.push(MetadataRecord::Topic { name: "t".into(), topic_id: TOPIC });
        records.push(MetadataRecord::Partition {
            topic_id: TOPIC, partition: 0, replicas: vec![1, 2, 3], isr: vec![1, 2, 3],
            leader: 1, leader_epoch: 0, partition_epoch: 0,
        });
        let mut image = MetadataImage::default().apply(&records);
        let mut next_offset = 0i64;
        let mut last_start: Option<i64> = None;
        let mut started: Vec<Uuid> = Vec::new();
        for (n, step) in steps.into_iter().enumerate() {
            let uploader = image.current_uploader(&TOPIC, 0).expect("a leader");
            let record = match step {
                Step::Lead(id) => {
                    let p = &image.topic("t").unwrap().partitions[0];
                    MetadataRecord::ChangePartition {
                        topic_id: TOPIC, partition: 0, expected_partition_epoch: p.partition_epoch,
                        leader: id, isr: vec![1, 2, 3], replicas: None, reassignment: None,
                    }
                }
                Step::Restart(id) => {
                    let incarnation = incarnations.get_mut(&id).unwrap();
                    *incarnation += 100;
                    register(id, *incarnation)
                }
                Step::Start { len, stale } => {
                    let id = Uuid::from_u128(1_000 + n as u128);
                    started.push(id);
                    let (epoch, broker, incarnation) = uploader;
                    let high = image.remote_logs.get(&(TOPIC, 0)).and_then(|l| l.highest_remote_offset());
                    let start = high.map_or(next_offset, |h| h + 1).max(next_offset - 10).max(0);
                    next_offset = start + len;
                    MetadataRecord::RemoteSegmentStarted { topic_id: TOPIC, partition: 0, segment: RemoteSegment {
                        segment_id: id, base_offset: start, start_offset: start, end_offset: start + len - 1,
                        max_timestamp_ms: 0, size_bytes: len as u64 * 100, leader_epochs: vec![(epoch, start)],
                        leader_epoch: if stale { epoch - 1 } else { epoch }, broker_id: broker,
                        incarnation_id: incarnation, state: RemoteSegmentState::CopyStarted,
                    }}
                }
                Step::Finish(pick) if !started.is_empty() => MetadataRecord::RemoteSegmentChanged {
                    topic_id: TOPIC, partition: 0, segment_id: started[pick % started.len()],
                    change: RemoteStateChange::CopyFinished { checksums: BTreeMap::new() } },
                Step::DeleteStart(pick) if !started.is_empty() => MetadataRecord::RemoteSegmentChanged {
                    topic_id: TOPIC, partition: 0, segment_id: started[pick % started.len()],
                    change: RemoteStateChange::DeleteStarted },
                Step::DeleteFinish(pick) if !started.is_empty() => MetadataRecord::RemoteSegmentChanged {
                    topic_id: TOPIC, partition: 0, segment_id: started[pick % started.len()],
                    change: RemoteStateChange::DeleteFinished },
                Step::AdvanceStart(offset) => MetadataRecord::RemoteLogStart { topic_id: TOPIC, partition: 0, offset },
                _ => continue,
            };
            let before = image.remote_logs.get(&(TOPIC, 0)).cloned();
            image = image.apply(std::slice::from_ref(&record));
            let Some(log) = image.remote_logs.get(&(TOPIC, 0)) else { continue };

            // Readable segments: finished, in order, not overlapping, found by every offset.
            let mut previous_end = -1;
            for (start, id) in &log.readable {
                let segment = &log.segments[id];
                let finished = matches!(segment.state, RemoteSegmentState::CopyFinished { .. });
                prop_assert!(finished, "a readable segment is finished");
                prop_assert_eq!(*start, segment.start_offset);
                prop_assert!(segment.start_offset > previous_end, "overlap at {}", start);
                previous_end = segment.end_offset;
                for offset in [segment.start_offset, segment.end_offset, (segment.start_offset + segment.end_offset) / 2] {
                    prop_assert_eq!(log.segment_for(offset).map(|s| s.segment_id), Some(*id));
                }
            }
            // A copy becomes readable only when the current uploader finishes it.
            if let MetadataRecord::RemoteSegmentChanged { segment_id, change: RemoteStateChange::CopyFinished { .. }, .. } = &record {
                let was = before.as_ref().and_then(|l| l.segments.get(segment_id)).cloned();
                if let Some(was) = was.filter(|s| s.state == RemoteSegmentState::CopyStarted) {
                    let finished = log.readable.values().any(|id| id == segment_id);
                    if finished {
                        prop_assert_eq!((was.leader_epoch, was.broker_id, was.incarnation_id), uploader);
                    }
                }
            }
            if let MetadataRecord::RemoteSegmentStarted { segment, .. } = &record {
                let current = (segment.leader_epoch, segment.broker_id, segment.incarnation_id) == uploader;
                prop_assert!(current || !log.segments.contains_key(&segment.segment_id), "a stale start was taken");
            }
            // The remote log start never goes back.
            if let (Some(was), Some(now)) = (last_start, log.log_start_offset) {
                prop_assert!(now >= was);
            }
            last_start = log.log_start_offset.or(last_start);
        }
        // A snapshot (the image as JSON) gives the same image.
        let snapshot = serde_json::to_string(&image).expect("encode");
        let restored: MetadataImage = serde_json::from_str(&snapshot).expect("decode");
        prop_assert_eq!(restored, image);
    }
}
