//! Replays the `quorum_messages` fuzz target's seed corpus and every regression input
//! (`fuzz/corpus/quorum_messages`, `fuzz/regressions/quorum_messages`) through the
//! target's own body, on the stable toolchain. Fuzzing itself: `scripts/fuzz.sh`.

#[path = "../../../fuzz/src/corpus.rs"]
mod corpus;
#[path = "../../../fuzz/src/quorum_messages.rs"]
mod quorum_messages;

#[test]
fn quorum_messages_corpus_replays() {
    corpus::replay(env!("CARGO_MANIFEST_DIR"), "quorum_messages", quorum_messages::run);
}
