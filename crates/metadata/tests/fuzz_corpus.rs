//! Replays the `metadata_records` fuzz target's seed corpus and every regression input
//! (`fuzz/corpus/metadata_records`, `fuzz/regressions/metadata_records`) through the
//! target's own body, on the stable toolchain. Fuzzing itself: `scripts/fuzz.sh`.

#[path = "../../../fuzz/src/corpus.rs"]
mod corpus;
#[path = "../../../fuzz/src/metadata_records.rs"]
mod metadata_records;

#[test]
fn metadata_records_corpus_replays() {
    corpus::replay(env!("CARGO_MANIFEST_DIR"), "metadata_records", metadata_records::run);
}
