//! Replays the `request_frame` fuzz target's seed corpus and every regression input
//! (`fuzz/corpus/request_frame`, `fuzz/regressions/request_frame`) through the target's own
//! body, on the stable toolchain. Fuzzing itself: `scripts/fuzz.sh`.

#[path = "../../../fuzz/src/corpus.rs"]
mod corpus;
#[path = "../../../fuzz/src/produce_batch.rs"]
mod produce_batch;
#[path = "../../../fuzz/src/request_frame.rs"]
mod request_frame;

#[test]
fn request_frame_corpus_replays() {
    corpus::replay(env!("CARGO_MANIFEST_DIR"), "request_frame", request_frame::run);
}
