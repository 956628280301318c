//! The coordinator's decisions against a model of one transactional id, with every
//! outcome's records applied (as the shell would) and the whole record log replayed after
//! each step (as a load would): the two must agree, and every record must be a transition
//! Kafka allows.

use std::collections::BTreeSet;

use kafka_protocol::error::ResponseError;
use proptest::prelude::*;

use super::decide::{self, Markers, Outcome, ProducerIdAndEpoch};
use super::state::{apply, TxnRecord, TxnState, TxnStates};

const ID: &str = "tx";
const TIMEOUT_MS: i32 = 1_000;

#[derive(Clone, Debug)]
enum Op {
    /// A producer (re)starts: InitProducerId without KIP-360 fields.
    Init,
    /// The current producer (or, with `stale`, the one before it) adds partitions.
    Add {
        partitions: Vec<i32>,
        stale: bool,
    },
    End {
        commit: bool,
        stale: bool,
    },
    /// The coordinator writes the owed markers.
    Markers,
    /// Time passes (the transaction timer runs).
    Wait {
        ms: i64,
    },
    /// The id-expiry timer runs with a short expiration.
    ExpireId,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => Just(Op::Init),
        4 => (prop::collection::vec(0..4i32, 0..3), prop::bool::weighted(0.15))
            .prop_map(|(partitions, stale)| Op::Add { partitions, stale }),
        3 => (any::<bool>(), prop::bool::weighted(0.15)).prop_map(|(commit, stale)| Op::End { commit, stale }),
        3 => Just(Op::Markers),
        1 => (0..1_500i64).prop_map(|ms| Op::Wait { ms }),
        1 => Just(Op::ExpireId),
    ]
}

/// What a client may rely on.
#[derive(Default)]
struct Model {
    /// The producer the coordinator last handed out.
    producer: Option<ProducerIdAndEpoch>,
    /// Partitions of the open transaction.
    open: BTreeSet<(String, i32)>,
    /// Markers owed (a prepared transaction).
    owed: Option<Markers>,
}

struct World {
    states: TxnStates,
    log: Vec<TxnRecord>,
    next_producer_id: i64,
    now: i64,
    model: Model,
}

impl World {
    fn commit<T>(&mut self, outcome: &Outcome<T>) {
        for record in &outcome.records {
            apply(&mut self.states, record).unwrap_or_else(|e| panic!("a decision wrote a bad record: {e}"));
            self.log.push(record.clone());
        }
        let mut replayed = TxnStates::new();
        for record in &self.log {
            apply(&mut replayed, record).expect("replay applies what was applied");
        }
        assert_eq!(replayed, self.states, "replay rebuilds the coordinator's state");
    }

    fn step(&mut self, op: &Op) {
        self.now += 1;
        let current = self.states.get(ID).cloned();
        match op {
            Op::Init => {
                let mut allocate = || {
                    self.next_producer_id += 1;
                    self.next_producer_id
                };
                let none = ProducerIdAndEpoch { producer_id: -1, producer_epoch: -1 };
                let outcome =
                    decide::init_producer_id(ID, current.as_ref(), TIMEOUT_MS, 60_000, none, &mut allocate, self.now);
                self.commit(&outcome);
                match outcome.answer {
                    Ok(given) => {
                        if let Some(before) = self.model.producer {
                            assert!(
                                given.producer_id != before.producer_id || given.producer_epoch > before.producer_epoch,
                                "a new producer gets a newer epoch: {before:?} then {given:?}"
                            );
                        }
                        self.model.producer = Some(given);
                        self.model.open.clear();
                    }
                    Err(ResponseError::ConcurrentTransactions) => {
                        // Fencing an open transaction aborts it: its markers are owed.
                        if let Some(markers) = outcome.markers {
                            assert!(!markers.commit);
                            assert_eq!(markers.partitions, self.model.open);
                            self.model.owed = Some(markers);
                            self.model.open.clear();
                        }
                    }
                    Err(e) => panic!("InitProducerId answered {e:?}"),
                }
            }
            Op::Add { partitions, stale } => {
                let Some(producer) = self.model.producer else { return };
                let epoch = if *stale { producer.producer_epoch - 1 } else { producer.producer_epoch };
                let wanted: BTreeSet<(String, i32)> = partitions.iter().map(|p| ("t".to_string(), *p)).collect();
                let outcome =
                    decide::add_partitions(ID, current.as_ref(), producer.producer_id, epoch, &wanted, self.now);
                self.commit(&outcome);
                match outcome.answer {
                    Ok(()) => {
                        assert!(!stale, "a fenced epoch is refused");
                        self.model.open.extend(wanted);
                    }
                    Err(ResponseError::ProducerFenced) => assert!(*stale || self.model.producer.is_some()),
                    Err(ResponseError::ConcurrentTransactions) => {
                        assert!(self.model.owed.is_some() || current.is_some())
                    }
                    Err(ResponseError::InvalidProducerIdMapping) => assert!(current.is_none()),
                    Err(e) => panic!("AddPartitionsToTxn answered {e:?}"),
                }
            }
            Op::End { commit, stale } => {
                let Some(producer) = self.model.producer else { return };
                let epoch = if *stale { producer.producer_epoch - 1 } else { producer.producer_epoch };
                let outcome =
                    decide::end_transaction(ID, current.as_ref(), producer.producer_id, epoch, *commit, self.now);
                self.commit(&outcome);
                if let Some(markers) = &outcome.markers {
                    assert!(!stale);
                    assert_eq!(markers.partitions, self.model.open, "markers go to every partition added");
                    assert_eq!(markers.commit, *commit);
                    self.model.owed = Some(markers.clone());
                    self.model.open.clear();
                }
                if *stale {
                    assert!(outcome.answer.is_err(), "a fenced producer cannot end a transaction");
                }
            }
            Op::Markers => {
                let Some(current) = current else { return };
                if let Some(record) = decide::markers_written(ID, &current, self.now) {
                    assert!(self.model.owed.take().is_some(), "markers complete only a prepared transaction");
                    self.commit(&Outcome::<()> { records: vec![record], answer: Ok(()), markers: None });
                    let done = &self.states[ID];
                    assert!(matches!(done.state, TxnState::CompleteCommit | TxnState::CompleteAbort));
                    assert!(done.partitions.is_empty());
                }
            }
            Op::Wait { ms } => {
                self.now += ms;
                let Some(current) = current else { return };
                if let Some(outcome) = decide::expire_transaction(ID, &current, self.now) {
                    self.commit(&outcome);
                    let markers = outcome.markers.expect("an expired transaction is aborted");
                    assert!(!markers.commit && markers.partitions == self.model.open);
                    assert!(markers.producer_epoch > current.producer_epoch, "the timed-out producer is fenced");
                    self.model.owed = Some(markers);
                    self.model.open.clear();
                }
            }
            Op::ExpireId => {
                let Some(current) = current else { return };
                if let Some(tombstone) = decide::expire_id(ID, &current, self.now, 5) {
                    assert!(self.model.owed.is_none() && self.model.open.is_empty(), "only an idle id expires");
                    self.commit(&Outcome::<()> { records: vec![tombstone], answer: Ok(()), markers: None });
                    assert!(!self.states.contains_key(ID));
                }
            }
        }
        // What the state says agrees with the model.
        if let Some(m) = self.states.get(ID) {
            let open = matches!(m.state, TxnState::Ongoing).then(|| m.partitions.clone()).unwrap_or_default();
            assert_eq!(open, self.model.open, "open partitions in {:?}", m.state);
            assert_eq!(m.state.holds_partitions(), !m.partitions.is_empty());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn decisions_follow_the_model_and_replay_rebuilds_them(ops in prop::collection::vec(op(), 1..60)) {
        let mut world = World { states: TxnStates::new(), log: Vec::new(), next_producer_id: 1000, now: 0, model: Model::default() };
        for op in &ops {
            world.step(op);
        }
    }
}

#[test]
fn a_second_producer_fences_the_first_and_aborts_its_transaction() {
    let mut next = 7;
    let mut allocate = || {
        next += 1;
        next
    };
    let none = ProducerIdAndEpoch { producer_id: -1, producer_epoch: -1 };
    let mut states = TxnStates::new();
    let first = decide::init_producer_id(ID, None, TIMEOUT_MS, 60_000, none, &mut allocate, 0);
    first.records.iter().for_each(|r| apply(&mut states, r).unwrap());
    let producer = first.answer.unwrap();
    assert_eq!(producer, ProducerIdAndEpoch { producer_id: 8, producer_epoch: 0 });
    let partitions = BTreeSet::from([("t".to_string(), 0), ("t".to_string(), 1)]);
    let added = decide::add_partitions(ID, states.get(ID), 8, 0, &partitions, 1);
    added.records.iter().for_each(|r| apply(&mut states, r).unwrap());
    // The second producer: the open transaction is aborted with epoch 1, the caller retries.
    let second = decide::init_producer_id(ID, states.get(ID), TIMEOUT_MS, 60_000, none, &mut allocate, 2);
    assert_eq!(second.answer, Err(ResponseError::ConcurrentTransactions));
    let markers = second.markers.clone().unwrap();
    assert_eq!((markers.producer_epoch, markers.commit, markers.partitions.len()), (1, false, 2));
    second.records.iter().for_each(|r| apply(&mut states, r).unwrap());
    // The first producer is fenced from now on.
    assert_eq!(decide::end_transaction(ID, states.get(ID), 8, 0, true, 3).answer, Err(ResponseError::ProducerFenced));
    let done = decide::markers_written(ID, &states[ID], 4).unwrap();
    apply(&mut states, &done).unwrap();
    let retry = decide::init_producer_id(ID, states.get(ID), TIMEOUT_MS, 60_000, none, &mut allocate, 5);
    assert_eq!(retry.answer, Ok(ProducerIdAndEpoch { producer_id: 8, producer_epoch: 2 }));
    // A timeout above transaction.max.timeout.ms is refused.
    let too_long = decide::init_producer_id(ID, states.get(ID), 70_000, 60_000, none, &mut allocate, 6);
    assert_eq!(too_long.answer, Err(ResponseError::InvalidTransactionTimeout));
}
