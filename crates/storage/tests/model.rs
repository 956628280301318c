//! Property: any sequence of operations reads back exactly the acknowledged batches.
//!
//! The model is the list of acknowledged batches (base offset, stored bytes). Crashes here
//! are process crashes (the page cache survives), so an unclean reopen loses nothing.

mod common;

use std::fs::OpenOptions;
use std::io::Write;

use common::{active_log_file, batch, offset_at_per_mille, read_all};
use proptest::prelude::*;
use runnel_storage::{LogConfig, PartitionLog, StorageError};

#[derive(Clone, Debug)]
enum Op {
    Append {
        batches: Vec<(usize, usize)>,
    },
    Roll,
    RetainBytes(u64),
    /// Truncate at this fraction (per mille) of the way from the log start to the log end.
    Truncate(u16),
    Flush,
    ReopenClean,
    ReopenUnclean,
    /// A crash mid-write: part of a batch (or a whole batch with a flipped record byte) lands
    /// after the acknowledged data, then the log reopens uncleanly.
    CrashWithTornTail {
        prefix_per_mille: u16,
        flip: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => prop::collection::vec((1usize..6, 0usize..400), 1..5).prop_map(|batches| Op::Append { batches }),
        1 => Just(Op::Roll),
        1 => (0u64..20_000).prop_map(Op::RetainBytes),
        1 => (0u16..1000).prop_map(Op::Truncate),
        1 => Just(Op::Flush),
        1 => Just(Op::ReopenClean),
        1 => Just(Op::ReopenUnclean),
        1 => (0u16..1000, any::<bool>()).prop_map(|(prefix_per_mille, flip)| Op::CrashWithTornTail { prefix_per_mille, flip }),
    ]
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        segment_index_bytes: 64,
        index_interval_bytes: 256,
        retention_ms: -1,
        ..LogConfig::default()
    }
}

struct Harness {
    dir: tempfile::TempDir,
    log: Option<PartitionLog>,
    acked: Vec<(i64, Vec<u8>)>,
    now_ms: i64,
}

impl Harness {
    fn log(&mut self) -> &mut PartitionLog {
        self.log.as_mut().expect("open")
    }

    fn apply(&mut self, op: &Op) {
        self.now_ms += 10;
        let now_ms = self.now_ms;
        match op {
            Op::Append { batches } => self.append(batches),
            Op::Roll => self.log().roll(now_ms).unwrap(),
            Op::RetainBytes(bytes) => {
                let config = LogConfig { retention_bytes: *bytes as i64, ..config() };
                self.log().set_config(config).unwrap();
                self.log().apply_retention(now_ms).unwrap();
                self.log().set_config(config_without_retention()).unwrap();
                let start = self.log().log_start_offset();
                self.acked.retain(|(base, _)| *base >= start);
            }
            Op::Truncate(per_mille) => {
                let offset = offset_at_per_mille(self.log(), *per_mille);
                self.log().truncate_to(offset).unwrap();
                let end = self.log().log_end_offset();
                assert!(end <= offset);
                self.acked.retain(|(base, _)| *base < end);
            }
            Op::Flush => self.log().flush().unwrap(),
            Op::ReopenClean => {
                let log = self.log.take().unwrap();
                let (recovery_point, start) = (log.recovery_point(), log.log_start_offset());
                log.close().unwrap();
                self.reopen(recovery_point, start, true);
                assert_eq!(self.log().last_open_scanned_bytes(), 0);
            }
            Op::ReopenUnclean => {
                let log = self.log.take().unwrap();
                let (recovery_point, start) = (log.recovery_point(), log.log_start_offset());
                drop(log);
                self.reopen(recovery_point, start, false);
            }
            Op::CrashWithTornTail { prefix_per_mille, flip } => self.crash_with_torn_tail(*prefix_per_mille, *flip),
        }
    }

    fn append(&mut self, batches: &[(usize, usize)]) {
        let mut records = Vec::new();
        let mut sizes = Vec::new();
        for (count, value_bytes) in batches {
            let one = batch(self.now_ms, *count, *value_bytes);
            sizes.push((one.len(), *count as i64));
            records.extend(one);
        }
        let now_ms = self.now_ms;
        let end_before = self.log().log_end_offset();
        let info = match self.log().append(&mut records, 1, false, now_ms) {
            Ok(info) => info,
            Err(StorageError::RecordSetTooLarge { .. }) => {
                assert!(records.len() as u64 > config().segment_bytes);
                assert_eq!(self.log().log_end_offset(), end_before, "nothing appended");
                return;
            }
            Err(error) => panic!("append failed: {error}"),
        };
        let (mut at, mut offset) = (0, info.base_offset);
        for (size, count) in sizes {
            self.acked.push((offset, records[at..at + size].to_vec()));
            at += size;
            offset += count;
        }
        assert_eq!(offset, info.last_offset + 1);
    }

    fn crash_with_torn_tail(&mut self, prefix_per_mille: u16, flip: bool) {
        let log = self.log.take().unwrap();
        let (recovery_point, start, end) = (log.recovery_point(), log.log_start_offset(), log.log_end_offset());
        drop(log);
        let mut torn = batch(self.now_ms, 3, 40);
        torn[..8].copy_from_slice(&end.to_be_bytes());
        if flip {
            let last = torn.len() - 1;
            torn[last] ^= 0x55;
        } else {
            torn.truncate(torn.len() * usize::from(prefix_per_mille) / 1000);
        }
        let mut file = OpenOptions::new().append(true).open(active_log_file(self.dir.path())).unwrap();
        file.write_all(&torn).unwrap();
        self.reopen(recovery_point, start, false);
        assert_eq!(self.log().log_end_offset(), end);
    }

    fn reopen(&mut self, recovery_point: i64, log_start: i64, clean: bool) {
        let log = PartitionLog::open(
            self.dir.path(),
            config_without_retention(),
            recovery_point,
            log_start,
            clean,
            self.now_ms,
        )
        .unwrap();
        self.log = Some(log);
    }

    fn check(&mut self) {
        let log = self.log.as_ref().unwrap();
        let expected_end = self.acked.last().map(|(base, bytes)| {
            let view = runnel_protocol::batch::BatchView::parse(bytes).unwrap();
            assert_eq!(view.base_offset(), *base);
            view.last_offset() + 1
        });
        if let Some(end) = expected_end {
            assert_eq!(log.log_end_offset(), end);
        }
        assert!(log.recovery_point() <= log.log_end_offset());
        assert_eq!(read_all(log), self.acked);
    }
}

fn config_without_retention() -> LogConfig {
    config()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_operation_sequence_reads_back_exactly_the_acknowledged_batches(ops in prop::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let log = PartitionLog::open(dir.path(), config(), 0, 0, true, 0).unwrap();
        let mut harness = Harness { dir, log: Some(log), acked: Vec::new(), now_ms: 0 };
        for op in &ops {
            harness.apply(op);
            harness.check();
        }
    }
}
