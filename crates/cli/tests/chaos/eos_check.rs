//! The exactly-once checker (`chaos/eos.rs`), pure: what the committed output of the
//! consume-transform-produce service must hold, given the input and the committed offsets.

use std::collections::{BTreeMap, BTreeSet};

use crate::check::{FinalLog, Value};
use crate::eos::OUTPUT;
use crate::TOPIC;

/// What the exactly-once checker found, besides its violations.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct EosFindings {
    /// Input records copied into committed output.
    pub(crate) copied: usize,
}

/// Kafka's exactly-once promise over the end state: `input` (the input topic as stored),
/// `committed` (the service's committed input offsets), `output` (what read_committed reads
/// of the output, by partition). Every committed copy names an input record that exists
/// with that value, in the same partition; no input record is copied twice; and the copies
/// are exactly the input records below the committed offset of their partition.
pub(crate) fn check_exactly_once(
    input: &FinalLog,
    committed: &BTreeMap<i32, i64>,
    output: &BTreeMap<i32, Vec<String>>,
) -> (EosFindings, Vec<String>) {
    let mut violations = Vec::new();
    let mut copied: BTreeSet<(i32, i64)> = BTreeSet::new();
    for (out_partition, copies) in output {
        for copy in copies {
            let parsed = copy.splitn(3, ':').collect::<Vec<_>>();
            let (Some(partition), Some(offset), Some(value)) = (
                parsed.first().and_then(|p| p.parse::<i32>().ok()),
                parsed.get(1).and_then(|o| o.parse::<i64>().ok()),
                parsed.get(2),
            ) else {
                violations.push(format!("{OUTPUT}-{out_partition}: {copy:?} is not a copy"));
                continue;
            };
            if partition != *out_partition {
                violations.push(format!("{OUTPUT}-{out_partition}: {copy:?} belongs to partition {partition}"));
            }
            let original = input.get(&partition).and_then(|log| log.iter().find(|s| s.offset == offset));
            match original {
                None => violations.push(format!("{copy:?}: {TOPIC}-{partition} has no record at {offset}")),
                Some(stored) if stored.value != Value::of(value.as_bytes()) => {
                    violations.push(format!("{copy:?}: {TOPIC}-{partition} holds {} at {offset}", stored.value))
                }
                Some(_) => {}
            }
            if !copied.insert((partition, offset)) {
                violations.push(format!("{TOPIC}-{partition} offset {offset} was copied into committed output twice"));
            }
        }
    }
    for (partition, log) in input {
        let upto = committed.get(partition).copied().unwrap_or(0);
        let missing: Vec<i64> = log
            .iter()
            .filter(|s| s.offset < upto && !copied.contains(&(*partition, s.offset)))
            .map(|s| s.offset)
            .collect();
        if !missing.is_empty() {
            violations.push(format!(
                "{TOPIC}-{partition}: offsets {missing:?} are committed as consumed but have no committed copy"
            ));
        }
        let beyond: Vec<i64> = copied.iter().filter(|(p, o)| p == partition && *o >= upto).map(|(_, o)| *o).collect();
        if !beyond.is_empty() {
            violations.push(format!(
                "{TOPIC}-{partition}: offsets {beyond:?} were copied but the committed offset is {upto}"
            ));
        }
    }
    (EosFindings { copied: copied.len() }, violations)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Stored;

    fn input() -> FinalLog {
        let stored = |offset, seq| Stored { offset, value: Value::of(format!("p9-{seq}").as_bytes()) };
        BTreeMap::from([(0, vec![stored(0, 0), stored(1, 1), stored(2, 2)]), (1, vec![stored(0, 3)])])
    }

    #[test]
    fn chaos_checker_eos_accepts_exactly_once_and_finds_every_violation() {
        let committed = BTreeMap::from([(0, 2), (1, 1)]);
        let good = BTreeMap::from([(0, vec!["0:0:p9-0".to_string(), "0:1:p9-1".into()]), (1, vec!["1:0:p9-3".into()])]);
        assert_eq!(check_exactly_once(&input(), &committed, &good), (EosFindings { copied: 3 }, vec![]));
        type Case = (&'static str, BTreeMap<i32, Vec<String>>, BTreeMap<i32, i64>);
        let cases: [Case; 5] = [
            (
                "twice",
                BTreeMap::from([
                    (0, vec!["0:0:p9-0".into(), "0:0:p9-0".into(), "0:1:p9-1".into()]),
                    (1, vec!["1:0:p9-3".into()]),
                ]),
                committed.clone(),
            ),
            (
                "missing",
                BTreeMap::from([(0, vec!["0:0:p9-0".into()]), (1, vec!["1:0:p9-3".into()])]),
                committed.clone(),
            ),
            ("beyond the committed offset", good.clone(), BTreeMap::from([(0, 1), (1, 1)])),
            (
                "invented",
                BTreeMap::from([(0, vec!["0:0:p9-7".into(), "0:1:p9-1".into()]), (1, vec!["1:0:p9-3".into()])]),
                committed.clone(),
            ),
            (
                "wrong partition",
                BTreeMap::from([(0, vec!["0:0:p9-0".into(), "0:1:p9-1".into(), "1:0:p9-3".into()]), (1, vec![])]),
                committed.clone(),
            ),
        ];
        for (what, output, committed) in cases {
            let (_, violations) = check_exactly_once(&input(), &committed, &output);
            assert!(!violations.is_empty(), "{what} is found");
        }
    }
}
