//! Replays the seed corpora and regression inputs of the `record_batch` and `storage_files`
//! fuzz targets (`fuzz/corpus/<target>`, `fuzz/regressions/<target>`) through the targets'
//! own bodies, on the stable toolchain. Fuzzing itself: `scripts/fuzz.sh`.

#[path = "../../../fuzz/src/corpus.rs"]
mod corpus;
#[path = "../../../fuzz/src/produce_batch.rs"]
mod produce_batch;
#[path = "../../../fuzz/src/record_batch.rs"]
mod record_batch;
#[path = "../../../fuzz/src/scratch.rs"]
mod scratch;
#[path = "../../../fuzz/src/storage_files.rs"]
mod storage_files;

#[test]
fn record_batch_corpus_replays() {
    corpus::replay(env!("CARGO_MANIFEST_DIR"), "record_batch", record_batch::run);
}

#[test]
fn storage_files_corpus_replays() {
    corpus::replay(env!("CARGO_MANIFEST_DIR"), "storage_files", storage_files::run);
}
