//! Replays the `group_records` fuzz target's seed corpus and every regression input
//! (`fuzz/corpus/group_records`, `fuzz/regressions/group_records`) through the target's own
//! body, on the stable toolchain. Fuzzing itself: `scripts/fuzz.sh`.

#[path = "../../../fuzz/src/corpus.rs"]
mod corpus;
#[path = "../../../fuzz/src/group_records.rs"]
mod group_records;
#[path = "../../../fuzz/src/sasl_messages.rs"]
mod sasl_messages;

#[test]
fn group_records_corpus_replays() {
    corpus::replay(env!("CARGO_MANIFEST_DIR"), "group_records", group_records::run);
}

#[test]
fn sasl_messages_corpus_replays() {
    corpus::replay(env!("CARGO_MANIFEST_DIR"), "sasl_messages", sasl_messages::run);
}
