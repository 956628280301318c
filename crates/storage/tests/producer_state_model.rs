//! Property: the idempotent-producer state is a function of the log. Whatever sequence of
//! leader appends (next in sequence, retries, new epochs, gaps and stale epochs that are
//! refused), follower copies, rolls, truncations, clean and unclean restarts and torn
//! tails, the state the log keeps (snapshots plus the tail after each truncation and open)
//! equals the state a replay of every batch in the log from its start gives. A replica
//! whose state drifted from its log would answer a retried batch as new, or refuse the
//! next one as out of order, after a failover.

mod common;

use std::fs::OpenOptions;
use std::io::Write;

use common::{active_log_file, batch, offset_at_per_mille, read_all};
use proptest::prelude::*;
use runnel_protocol::batch::{BatchMut, BatchView};
use runnel_storage::producer_state::ProducerBatch;
use runnel_storage::{LogConfig, PartitionLog, ProducerStateManager, StorageError};

const PRODUCERS: usize = 3;
const LEADER_EPOCH: i32 = 1;

#[derive(Clone, Copy, Debug)]
enum Send {
    Next,
    /// Sends again the batch this many back in the current producer epoch.
    Retry(u8),
    /// The producer bumps its epoch and starts again at sequence 0.
    Bump,
    /// Skips sequence numbers: refused unless the log knows nothing of the producer.
    Gap,
    /// An epoch older than the producer's: refused once the log holds the newer one.
    Stale,
}

#[derive(Clone, Debug)]
enum Op {
    Send {
        producer: usize,
        records: usize,
        send: Send,
    },
    /// A batch copied from a leader (the follower path: unchecked, offsets as given).
    Copy {
        producer: usize,
        records: usize,
    },
    Roll,
    Truncate(u16),
    ReopenClean,
    ReopenUnclean,
    CrashWithTornTail(u16),
}

fn send() -> impl Strategy<Value = Send> {
    prop_oneof![
        8 => Just(Send::Next),
        3 => (0u8..7).prop_map(Send::Retry),
        1 => Just(Send::Bump),
        1 => Just(Send::Gap),
        1 => Just(Send::Stale),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => (0..PRODUCERS, 1usize..5, send()).prop_map(|(producer, records, send)| Op::Send { producer, records, send }),
        3 => (0..PRODUCERS, 1usize..5).prop_map(|(producer, records)| Op::Copy { producer, records }),
        1 => Just(Op::Roll),
        2 => (0u16..1000).prop_map(Op::Truncate),
        1 => Just(Op::ReopenClean),
        1 => Just(Op::ReopenUnclean),
        1 => (0u16..1000).prop_map(Op::CrashWithTornTail),
    ]
}

fn config() -> LogConfig {
    LogConfig { segment_bytes: 2048, segment_index_bytes: 64, index_interval_bytes: 256, ..LogConfig::default() }
}

/// What a producer believes: its epoch, its next sequence, and the batches it sent in
/// this epoch (first sequence, records) for retries.
#[derive(Clone, Debug, Default)]
struct Client {
    epoch: i16,
    next_seq: i32,
    sent: Vec<(i32, usize)>,
}

struct Harness {
    dir: tempfile::TempDir,
    log: Option<PartitionLog>,
    clients: Vec<Client>,
    now_ms: i64,
}

fn producer_batch(now_ms: i64, producer: usize, epoch: i16, seq: i32, records: usize) -> Vec<u8> {
    let mut bytes = batch(now_ms, records, 30);
    BatchMut::new(&mut bytes).set_producer(1_000 + producer as i64, epoch, seq);
    bytes
}

/// The producer state a replay of every batch of the log gives.
fn replayed(log: &PartitionLog) -> ProducerStateManager {
    let mut state = ProducerStateManager::default();
    for (base, bytes) in read_all(log) {
        let view = BatchView::parse(&bytes).expect("stored batches parse");
        if let Some(producer) = ProducerBatch::of(&view) {
            state.update(&producer, base, view.last_offset(), view.max_timestamp());
        }
    }
    state
}

impl Harness {
    fn log(&mut self) -> &mut PartitionLog {
        self.log.as_mut().expect("open")
    }

    /// Closes the log cleanly or drops it as a crash would, and reopens it.
    fn reopen_after(&mut self, clean: bool) {
        let log = self.log.take().expect("open");
        let recovery_point = log.recovery_point();
        match clean {
            true => log.close().unwrap(),
            false => drop(log),
        }
        self.reopen(recovery_point, clean);
    }

    fn apply(&mut self, op: &Op) {
        let now_ms = self.now_ms + 10;
        self.now_ms = now_ms;
        match op {
            Op::Send { producer, records, send } => self.send(*producer, *records, *send),
            Op::Copy { producer, records } => {
                let client = &mut self.clients[*producer];
                let mut bytes = producer_batch(now_ms, *producer, client.epoch, client.next_seq, *records);
                client.sent.push((client.next_seq, *records));
                client.next_seq += *records as i32;
                let end = self.log().log_end_offset();
                let mut copy = BatchMut::new(&mut bytes);
                copy.set_base_offset(end);
                copy.set_partition_leader_epoch(LEADER_EPOCH);
                self.log().append_as_follower(&bytes, now_ms).expect("a contiguous copy is appended");
            }
            Op::Roll => self.log().roll(now_ms).unwrap(),
            Op::Truncate(per_mille) => {
                let offset = offset_at_per_mille(self.log(), *per_mille);
                self.log().truncate_to(offset).unwrap();
            }
            Op::ReopenClean => self.reopen_after(true),
            Op::ReopenUnclean => self.reopen_after(false),
            Op::CrashWithTornTail(prefix_per_mille) => {
                let log = self.log.take().unwrap();
                let (recovery_point, end) = (log.recovery_point(), log.log_end_offset());
                drop(log);
                let mut torn = producer_batch(now_ms, 0, 0, 0, 3);
                BatchMut::new(&mut torn).set_base_offset(end);
                torn.truncate(torn.len() * usize::from(*prefix_per_mille) / 1000);
                let mut file = OpenOptions::new().append(true).open(active_log_file(self.dir.path())).unwrap();
                file.write_all(&torn).unwrap();
                self.reopen(recovery_point, false);
                assert_eq!(self.log().log_end_offset(), end, "the torn tail is dropped, nothing else");
            }
        }
    }

    fn send(&mut self, producer: usize, records: usize, send: Send) {
        let now_ms = self.now_ms;
        let client = &mut self.clients[producer];
        let (epoch, seq, records, advances) = match send {
            Send::Next => (client.epoch, client.next_seq, records, true),
            Send::Retry(back) => match client.sent.len().checked_sub(1 + usize::from(back)) {
                Some(at) => (client.epoch, client.sent[at].0, client.sent[at].1, false),
                None => (client.epoch, client.next_seq, records, true),
            },
            Send::Bump => {
                client.epoch += 1;
                client.next_seq = 0;
                client.sent.clear();
                (client.epoch, 0, records, true)
            }
            Send::Gap => (client.epoch, client.next_seq + 3, records, false),
            Send::Stale => (client.epoch - 1, client.next_seq, records, false),
        };
        let bytes = producer_batch(now_ms, producer, epoch, seq, records);
        let end_before = self.log().log_end_offset();
        match self.log().append_batch(&bytes, LEADER_EPOCH, false, now_ms) {
            Ok(info) => {
                let appended = info.base_offset == end_before;
                assert_eq!(self.log().log_end_offset() > end_before, appended, "a duplicate appends nothing");
                if appended && advances {
                    let client = &mut self.clients[producer];
                    client.sent.push((seq, records));
                    client.next_seq = seq + records as i32;
                }
            }
            Err(StorageError::Producer(_)) => {
                assert_eq!(self.log().log_end_offset(), end_before, "a refused batch appends nothing");
            }
            Err(error) => panic!("append failed: {error}"),
        }
    }

    fn reopen(&mut self, recovery_point: i64, clean: bool) {
        self.log = Some(PartitionLog::open(self.dir.path(), config(), recovery_point, 0, clean, self.now_ms).unwrap());
    }

    fn check(&mut self, after: &Op) {
        let log = self.log.as_ref().unwrap();
        assert_eq!(log.producer_state(), &replayed(log), "producer state differs from its log after {after:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn producer_state_always_equals_a_replay_of_the_log(ops in prop::collection::vec(op(), 1..80)) {
        let dir = tempfile::tempdir().unwrap();
        let log = PartitionLog::open(dir.path(), config(), 0, 0, true, 0).unwrap();
        let mut harness = Harness { dir, log: Some(log), clients: vec![Client::default(); PRODUCERS], now_ms: 0 };
        for op in &ops {
            harness.apply(op);
            harness.check(op);
        }
    }
}
