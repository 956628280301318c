//! `quorum_messages`: bytes arriving on a quorum transport connection
//! (`crates/quorum/src/rpc.rs`): length-prefixed JSON frames read with `rpc::read_message`,
//! as the server reads [`Request`]s and the client reads [`Response`]s, until the stream
//! ends or a frame is refused. Decoded requests are re-encoded (`rpc::encode`, as answers
//! are) and what they carry for the state machine is applied as it would be: the records of
//! `Propose` and of `AppendEntries` entries to the image, the image of a whole
//! `InstallSnapshot` (`snapshot::decode_image`, which must round-trip through
//! `snapshot::encode_image`) in place of it.
//!
//! Input: the byte stream itself (`u32` big-endian length, then JSON, repeated). The same
//! bytes are read once as requests and once as responses.

use std::future::Future;
use std::task::{Context, Poll, Waker};

use openraft::EntryPayload;
use runnel_metadata::MetadataImage;
use runnel_quorum::rpc::{self, Request, Response, FRAME_BYTES_MAX_DEFAULT};
use runnel_quorum::snapshot;

/// Runs a future over an in-memory stream to completion: reading from a slice never waits.
fn ready<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    match future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("reading from memory does not wait"),
    }
}

fn apply(image: &mut MetadataImage, request: &Request) {
    match request {
        Request::Propose(batch) => *image = image.apply(&batch.records),
        Request::AppendEntries(append) => {
            for entry in &append.entries {
                if let EntryPayload::Normal(batch) = &entry.payload {
                    *image = image.apply(&batch.records);
                }
            }
        }
        Request::InstallSnapshot(install) if install.offset == 0 && install.done => {
            if let Ok(decoded) = snapshot::decode_image(&install.data) {
                let again =
                    snapshot::decode_image(&snapshot::encode_image(&decoded)).expect("an encoded image decodes");
                assert_eq!(again, decoded, "an image survives its snapshot encoding");
                *image = decoded;
            }
        }
        _ => {}
    }
}

/// The fuzz target body.
pub fn run(data: &[u8]) {
    let mut image = MetadataImage::default();
    let mut stream = data;
    while let Ok(Some(request)) = ready(rpc::read_message::<Request>(&mut stream, FRAME_BYTES_MAX_DEFAULT)) {
        let _ = rpc::encode(&request, FRAME_BYTES_MAX_DEFAULT);
        apply(&mut image, &request);
    }
    let _ = snapshot::encode_image(&image);
    let mut stream = data;
    while let Ok(Some(response)) = ready(rpc::read_message::<Response>(&mut stream, FRAME_BYTES_MAX_DEFAULT)) {
        let _ = rpc::encode(&response, FRAME_BYTES_MAX_DEFAULT);
    }
}
