//! Malformed input on raw sockets. Each named case must close only its own connection:
//! the broker keeps serving a fresh Kafka client afterwards, and counts the case in
//! `runnel_bad_frames_total`. Frames are built by hand here, byte by byte, as a hostile or
//! broken client would send them.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use support::*;
use tempfile::TempDir;

const API_PRODUCE: i16 = 0;
const API_METADATA: i16 = 3;
const API_VERSIONS: i16 = 18;
const UNSUPPORTED_VERSION: i16 = 35;
const SOCKET_REQUEST_MAX_BYTES: i32 = 1_048_576;
/// Lets the stalled-frame case end within a second instead of 30.
const REQUEST_TIMEOUT_MS: u64 = 1_000;
/// How long a bad connection may stay open before the test fails.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// A request header: v1 (`flexible == false`) or v2 (adds an empty tagged-field section).
fn header(api_key: i16, version: i16, correlation_id: i32, client_id: &str, flexible: bool) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&api_key.to_be_bytes());
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(&correlation_id.to_be_bytes());
    out.extend_from_slice(&i16::try_from(client_id.len()).unwrap().to_be_bytes());
    out.extend_from_slice(client_id.as_bytes());
    if flexible {
        out.push(0); // no tagged fields
    }
    out
}

/// Prefixes `payload` with its size, as every Kafka frame is.
fn framed(payload: &[u8]) -> Vec<u8> {
    let mut out = i32::try_from(payload.len()).unwrap().to_be_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

fn with_size(size: i32, rest: &[u8]) -> Vec<u8> {
    let mut out = size.to_be_bytes().to_vec();
    out.extend_from_slice(rest);
    out
}

/// One malformed-input scenario: the bytes a client sends, and whether it then half-closes.
struct BadCase {
    name: &'static str,
    bytes: fn() -> Vec<u8>,
    /// Half-close after sending (the broker then sees end of stream mid-frame).
    half_close: bool,
}

const CASES: &[BadCase] = &[
    BadCase { name: "negative frame size", bytes: || with_size(-1, &[0; 8]), half_close: false },
    BadCase {
        name: "frame size above socket.request.max.bytes",
        bytes: || with_size(SOCKET_REQUEST_MAX_BYTES + 1, &header(API_VERSIONS, 0, 1, "big", false)),
        half_close: false,
    },
    BadCase { name: "frame shorter than a request header", bytes: || framed(&[0, 18, 0]), half_close: false },
    BadCase {
        name: "request header cut inside the client id",
        // ApiVersions v0, header v1: the client id claims 50 bytes and none follow.
        bytes: || framed(&[0, 18, 0, 0, 0, 0, 0, 1, 0, 50]),
        half_close: false,
    },
    BadCase {
        name: "frame body cut short by end of stream",
        bytes: || with_size(100, &header(API_VERSIONS, 0, 1, "cut", false)),
        half_close: true,
    },
    BadCase {
        name: "frame body stalled past request.timeout.ms",
        bytes: || with_size(100, &header(API_VERSIONS, 0, 1, "stall", false)),
        half_close: false,
    },
    BadCase { name: "unknown api key 999", bytes: || framed(&header(999, 0, 1, "who", false)), half_close: false },
    BadCase {
        name: "Produce v2, below the supported range",
        bytes: || framed(&[header(API_PRODUCE, 2, 1, "old", false), vec![0, 1, 0, 0, 0x75, 0x30, 0, 0, 0, 0]].concat()),
        half_close: false,
    },
    BadCase {
        name: "Metadata v12 with a truncated body",
        // The topics array claims four entries; the frame ends there.
        bytes: || framed(&[header(API_METADATA, 12, 1, "trunc", true), vec![5]].concat()),
        half_close: false,
    },
    BadCase {
        name: "Metadata v12 with a junk body",
        bytes: || framed(&[header(API_METADATA, 12, 1, "junk", true), vec![0xff; 16]].concat()),
        half_close: false,
    },
];

fn start_node(dir: &TempDir) -> Node {
    let max = format!("socket.request.max.bytes={SOCKET_REQUEST_MAX_BYTES}");
    let timeout = format!("request.timeout.ms={REQUEST_TIMEOUT_MS}");
    Node::start_with_metrics(dir.path(), &["--set", &max, "--set", &timeout])
}

fn connect(node: &Node) -> TcpStream {
    let stream = TcpStream::connect(node.bootstrap()).expect("connect to the broker");
    stream.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

/// Fails unless the broker closes `stream` within `CLOSE_TIMEOUT` without answering.
fn assert_closed_without_answer(mut stream: TcpStream, case: &str) {
    let deadline = Instant::now() + CLOSE_TIMEOUT;
    let mut buf = [0u8; 256];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => panic!("{case}: the broker answered {n} bytes instead of closing: {:?}", &buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {
                assert!(Instant::now() < deadline, "{case}: connection still open after {CLOSE_TIMEOUT:?}");
            }
            // Reset by the peer: closed too.
            Err(_) => return,
        }
    }
}

/// A fresh rdkafka client can still fetch metadata and sees this broker.
fn assert_serves_kafka_clients(node: &Node, after: &str) {
    let consumer = base_consumer(node.bootstrap());
    let metadata = consumer
        .fetch_metadata(None, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("after {after}: metadata request failed: {e}"));
    assert_eq!(metadata.brokers().len(), 1, "after {after}: brokers in metadata");
}

fn send_bad_case(node: &Node, case: &BadCase) {
    let mut stream = connect(node);
    // The broker may close as soon as it has seen enough, so a failed write is fine.
    let _ = stream.write_all(&(case.bytes)());
    if case.half_close {
        let _ = stream.shutdown(Shutdown::Write);
    }
    assert_closed_without_answer(stream, case.name);
}

fn run_one_case(name: &str) {
    let case = CASES.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no case {name}"));
    let dir = TempDir::new().unwrap();
    let mut node = start_node(&dir);
    send_bad_case(&node, case);
    assert!(node.is_running(), "{name}: the broker process died");
    assert_serves_kafka_clients(&node, name);
    let bad_frames = metric(node.metrics_url(), "runnel_bad_frames_total");
    assert!(bad_frames >= 1, "{name}: runnel_bad_frames_total is {bad_frames}");
}

#[test]
fn negative_frame_size_closes_the_connection() {
    run_one_case("negative frame size");
}

#[test]
fn frame_above_socket_request_max_bytes_closes_the_connection() {
    run_one_case("frame size above socket.request.max.bytes");
}

#[test]
fn frame_shorter_than_a_header_closes_the_connection() {
    run_one_case("frame shorter than a request header");
}

#[test]
fn truncated_request_header_closes_the_connection() {
    run_one_case("request header cut inside the client id");
}

#[test]
fn body_cut_short_by_end_of_stream_closes_the_connection() {
    run_one_case("frame body cut short by end of stream");
}

#[test]
fn stalled_frame_body_times_out_and_closes_the_connection() {
    run_one_case("frame body stalled past request.timeout.ms");
}

#[test]
fn unknown_api_key_closes_the_connection() {
    run_one_case("unknown api key 999");
}

#[test]
fn unsupported_produce_version_closes_the_connection() {
    run_one_case("Produce v2, below the supported range");
}

#[test]
fn metadata_v12_truncated_body_closes_the_connection() {
    run_one_case("Metadata v12 with a truncated body");
}

#[test]
fn metadata_v12_junk_body_closes_the_connection() {
    run_one_case("Metadata v12 with a junk body");
}

#[test]
fn every_bad_case_in_turn_leaves_one_broker_serving() {
    let dir = TempDir::new().unwrap();
    let mut node = start_node(&dir);
    let before = metric(node.metrics_url(), "runnel_bad_frames_total");
    for case in CASES {
        send_bad_case(&node, case);
        assert!(node.is_running(), "{}: the broker process died", case.name);
        assert_serves_kafka_clients(&node, case.name);
    }
    let bad_frames = metric(node.metrics_url(), "runnel_bad_frames_total") - before;
    assert!(bad_frames >= CASES.len() as u64, "{bad_frames} bad frames counted for {} bad cases", CASES.len());
}

const API_CREATE_TOPICS: i16 = 19;

/// Before the fix, the array decoders reserved `min(claimed count, bytes left)` elements up
/// front: an 8 MiB CreateTopics claiming 8 M topics reserved 8 M times the size of a topic
/// (about 2 GB, more in a 100 MiB frame; the allocator aborts the process when it cannot).
/// Virtual memory is what a reservation takes first, so `VmPeak` shows it even where the
/// kernel would grant it lazily.
#[test]
fn an_array_claiming_more_elements_than_fit_reserves_nothing_for_them() {
    const BODY_BYTES: usize = 8 << 20;
    let dir = TempDir::new().unwrap();
    let mut node = Node::start_with_metrics(dir.path(), &[]);
    assert_serves_kafka_clients(&node, "start");
    let peak_before = node.status_kib("VmPeak");
    let mut body = header(API_CREATE_TOPICS, 5, 1, "claims", false);
    body.extend_from_slice(&(BODY_BYTES as i32).to_be_bytes()); // topics: one per byte that follows
    body.extend(std::iter::repeat_n(0xffu8, BODY_BYTES)); // a topic name of length -1: invalid
    let mut stream = connect(&node);
    let _ = stream.write_all(&framed(&body));
    assert_closed_without_answer(stream, "CreateTopics claiming 8 M topics");
    assert!(node.is_running(), "the broker process died");
    assert_serves_kafka_clients(&node, "the oversized claim");
    let grown_mib = node.status_kib("VmPeak").saturating_sub(peak_before) / 1024;
    assert!(grown_mib < 512, "one 8 MiB request grew the broker's peak virtual memory by {grown_mib} MiB");
}

/// A client that sends requests and never reads the answers must not hold its connection
/// (and the request's share of `queued.max.request.bytes`) for ever: the broker closes it
/// once a response has waited `request.timeout.ms` to be taken.
#[test]
fn a_client_that_never_reads_its_responses_is_disconnected() {
    let dir = TempDir::new().unwrap();
    let node = start_node(&dir);
    let stream = connect(&node);
    // Metadata v12 for all topics: each answer is small, so send requests until the
    // answers fill the socket buffers on both sides and the broker's write stalls.
    let request = framed(&[header(API_METADATA, 12, 1, "silent", true), vec![0, 1, 0, 0]].concat());
    let mut writer = stream.try_clone().unwrap();
    writer.set_write_timeout(Some(Duration::from_millis(200))).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut closed = false;
    while Instant::now() < deadline {
        match writer.write_all(&request) {
            Ok(()) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => {
                closed = true; // reset or broken pipe: the broker closed the connection
                break;
            }
        }
    }
    assert!(closed, "the broker kept a connection whose responses nobody read");
    let mut node = node;
    assert!(node.is_running());
    assert_serves_kafka_clients(&node, "a client that never reads");
}

/// `queued.max.request.bytes` bounds the request bytes read and not yet answered over all
/// connections: a frame's size is taken from the budget before its body is read, and given
/// back when it is answered or its connection closes, here when a stalled body times out.
#[test]
fn the_request_budget_is_taken_before_a_body_is_read_and_given_back() {
    const FRAME_BYTES: u64 = 512 * 1024;
    let dir = TempDir::new().unwrap();
    let max = format!("socket.request.max.bytes={SOCKET_REQUEST_MAX_BYTES}");
    let timeout = format!("request.timeout.ms={REQUEST_TIMEOUT_MS}");
    let budget = format!("queued.max.request.bytes={SOCKET_REQUEST_MAX_BYTES}");
    let mut node = Node::start_with_metrics(dir.path(), &["--set", &max, "--set", &timeout, "--set", &budget]);
    assert_eq!(metric(node.metrics_url(), "runnel_request_bytes_in_flight"), 0);
    // A frame that announces 512 KiB and sends only its header: it holds its share.
    let stalled = connect(&node);
    (&stalled).write_all(&with_size(FRAME_BYTES as i32, &header(API_VERSIONS, 0, 1, "stall", false))).unwrap();
    poll_until(CLOSE_TIMEOUT, Duration::from_millis(10), "the stalled frame to take its budget", || {
        (metric(node.metrics_url(), "runnel_request_bytes_in_flight") == FRAME_BYTES).then_some(())
    });
    // Others are still served from the rest of the budget.
    assert_serves_kafka_clients(&node, "a stalled frame holding half the budget");
    // The body never comes: the connection closes at request.timeout.ms and gives it back.
    assert_closed_without_answer(stalled, "a stalled body");
    poll_until(CLOSE_TIMEOUT, Duration::from_millis(10), "the budget to be given back", || {
        (metric(node.metrics_url(), "runnel_request_bytes_in_flight") == 0).then_some(())
    });
    assert!(node.is_running());
}

/// Reads one response frame: its correlation id and the rest of the body.
fn read_response(stream: &mut TcpStream) -> (i32, Vec<u8>) {
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).expect("response size");
    let size = usize::try_from(i32::from_be_bytes(size)).expect("non-negative response size");
    assert!((4..=1_048_576).contains(&size), "response size {size}");
    let mut frame = vec![0u8; size];
    stream.read_exact(&mut frame).expect("response frame");
    let body = frame.split_off(4);
    (i32::from_be_bytes(frame.try_into().unwrap()), body)
}

/// A bounded reader over a response body: panics on truncation, as a test should.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        assert!(self.0.len() >= N, "response truncated: wanted {N} more bytes, {} left", self.0.len());
        let (head, rest) = self.0.split_at(N);
        self.0 = rest;
        head.try_into().unwrap()
    }
    fn i16(&mut self) -> i16 {
        i16::from_be_bytes(self.take())
    }
    fn i32(&mut self) -> i32 {
        i32::from_be_bytes(self.take())
    }
}

/// ApiVersions v0 body: error code, then (key, min, max) per API. v0 has no trailing fields.
fn parse_api_versions_v0(body: &[u8]) -> (i16, Vec<(i16, i16, i16)>) {
    let mut reader = Reader(body);
    let error_code = reader.i16();
    let count = reader.i32();
    assert!((0..=1_000).contains(&count), "api count {count}");
    let apis = (0..count).map(|_| (reader.i16(), reader.i16(), reader.i16())).collect();
    assert!(reader.0.is_empty(), "{} trailing bytes after the ApiVersions v0 body", reader.0.len());
    (error_code, apis)
}

#[test]
fn api_versions_v99_gets_v0_unsupported_version_with_the_api_list() {
    let dir = TempDir::new().unwrap();
    let node = start_node(&dir);
    let mut stream = connect(&node);
    // v99 would be flexible (header v2), with an empty v3+ body: client software name and
    // version as compact strings, then tagged fields.
    let body = [1, 1, 0];
    stream.write_all(&framed(&[header(API_VERSIONS, 99, 7_001, "probe", true), body.to_vec()].concat())).unwrap();
    let (correlation_id, body) = read_response(&mut stream);
    assert_eq!(correlation_id, 7_001);
    let (error_code, apis) = parse_api_versions_v0(&body);
    assert_eq!(error_code, UNSUPPORTED_VERSION);
    assert!(!apis.is_empty(), "the answer must list the supported APIs");
    let api_versions = apis.iter().find(|(key, _, _)| *key == API_VERSIONS).expect("ApiVersions itself is listed");
    assert!(api_versions.1 == 0 && api_versions.2 >= 3, "ApiVersions range {api_versions:?}");
    for (key, min, max) in &apis {
        assert!(min <= max, "api {key}: min {min} > max {max}");
    }

    // The connection stays usable: a v0 request on it now succeeds.
    stream.write_all(&framed(&header(API_VERSIONS, 0, 7_002, "probe", false))).unwrap();
    let (correlation_id, body) = read_response(&mut stream);
    assert_eq!(correlation_id, 7_002);
    let (error_code, apis_v0) = parse_api_versions_v0(&body);
    assert_eq!(error_code, 0);
    assert_eq!(apis_v0, apis, "both answers advertise the same table");
}

const OFFSET_FOR_LEADER_EPOCH: i16 = 23;

/// An OffsetsForLeaderEpoch v0/v1 body: one topic, (partition, leader epoch) pairs.
fn offsets_for_leader_epoch_body(topic: &str, partitions: &[(i32, i32)]) -> Vec<u8> {
    let mut out = 1i32.to_be_bytes().to_vec();
    out.extend_from_slice(&i16::try_from(topic.len()).unwrap().to_be_bytes());
    out.extend_from_slice(topic.as_bytes());
    out.extend_from_slice(&i32::try_from(partitions.len()).unwrap().to_be_bytes());
    for (partition, epoch) in partitions {
        out.extend_from_slice(&partition.to_be_bytes());
        out.extend_from_slice(&epoch.to_be_bytes());
    }
    out
}

/// (error, partition, leader epoch (v1) or None, end offset) per partition of the one topic.
fn parse_offsets_for_leader_epoch(body: &[u8], version: i16) -> Vec<(i16, i32, Option<i32>, i64)> {
    let mut reader = Reader(body);
    assert_eq!(reader.i32(), 1, "one topic");
    let name_len = usize::try_from(reader.i16()).unwrap();
    assert!(reader.0.len() >= name_len);
    reader.0 = &reader.0[name_len..];
    let count = reader.i32();
    let partitions = (0..count)
        .map(|_| {
            let error = reader.i16();
            let partition = reader.i32();
            let epoch = (version >= 1).then(|| reader.i32());
            (error, partition, epoch, i64::from_be_bytes(reader.take()))
        })
        .collect();
    assert!(reader.0.is_empty(), "{} trailing bytes", reader.0.len());
    partitions
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_for_leader_epoch_v0_and_v1_are_answered_and_a_lying_array_closes_the_connection() {
    let dir = TempDir::new().unwrap();
    let node = start_node(&dir);
    create_topic(node.bootstrap(), "epochs", 1, &[]).await;
    let messages: Vec<Msg> = (0..5).map(|i| Msg::new("k", format!("v{i}"))).collect();
    produce_all(&producer(node.bootstrap(), &[]), "epochs", Some(0), &messages, None).await;
    let mut stream = connect(&node);
    for version in [0, 1] {
        let body = offsets_for_leader_epoch_body("epochs", &[(0, 0), (0, 1), (7, 0)]);
        let correlation = 9_000 + i32::from(version);
        stream
            .write_all(&framed(&[header(OFFSET_FOR_LEADER_EPOCH, version, correlation, "probe", false), body].concat()))
            .unwrap();
        let (correlation_id, body) = read_response(&mut stream);
        assert_eq!(correlation_id, correlation);
        let epoch = |e: i32| (version >= 1).then_some(e);
        assert_eq!(
            parse_offsets_for_leader_epoch(&body, version),
            vec![
                (0, 0, epoch(0), 5),   // the current epoch ends at the log end
                (0, 0, epoch(-1), -1), // a newer epoch is unknown here
                (3, 7, epoch(-1), -1), // no such partition
            ],
            "v{version}"
        );
    }
    // An array count that the body cannot hold is refused before anything is reserved.
    let mut lying = 1i32.to_be_bytes().to_vec();
    lying.extend_from_slice(&6i16.to_be_bytes());
    lying.extend_from_slice(b"epochs");
    lying.extend_from_slice(&i32::MAX.to_be_bytes());
    stream.write_all(&framed(&[header(OFFSET_FOR_LEADER_EPOCH, 1, 9_100, "probe", false), lying].concat())).unwrap();
    assert_closed_without_answer(stream, "OffsetsForLeaderEpoch v1 with a lying array count");
    assert_serves_kafka_clients(&node, "the lying OffsetsForLeaderEpoch request");
}

/// Kafka's log validator: a client's Produce may not carry a marker (control batch), nor a
/// transactional batch without the request's transactional id; both get INVALID_RECORD and
/// leave the log as it was, so no client can open a transaction that nobody ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn markers_and_transactional_batches_without_a_transactional_id_are_refused() {
    use bytes::Bytes;
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{ProduceRequest, TopicName};
    use kafka_protocol::protocol::StrBytes;
    use runnel_protocol::batch::{build_batch, BatchMut};
    use runnel_protocol::control::Marker;

    const INVALID_RECORD: i16 = 87;
    let dir = TempDir::new().unwrap();
    let node = Node::start(dir.path(), &[]);
    create_topic(node.bootstrap(), "t", 1, &[]).await;
    let mut transactional = build_batch(0, &[b"x".as_slice()]);
    BatchMut::new(&mut transactional).set_producer(5, 0, 0);
    BatchMut::new(&mut transactional).set_transactional(false);
    let marker = Marker { commit: true, coordinator_epoch: 0 }.batch(5, 0, 0);
    let mut conn = runnel_client::Connection::connect(node.bootstrap()).await.unwrap();
    for batch in [transactional, marker] {
        let request = ProduceRequest::default().with_acks(1).with_timeout_ms(5_000).with_topic_data(vec![
            TopicProduceData::default().with_name(TopicName(StrBytes::from_static_str("t"))).with_partition_data(vec![
                PartitionProduceData::default().with_index(0).with_records(Some(Bytes::from(batch))),
            ]),
        ]);
        let response = conn.send(&request, 9).await.unwrap();
        assert_eq!(response.responses[0].partition_responses[0].error_code, INVALID_RECORD);
    }
    assert_eq!(watermarks(node.bootstrap(), "t", 0), (0, 0), "nothing was appended");
}

/// KIP-890: a transactional batch that names a transactional id but whose partition is in
/// no transaction of that producer (a stray or late batch) is refused with
/// INVALID_TXN_STATE, or INVALID_PRODUCER_EPOCH once the producer is fenced, and never opens
/// a transaction that nobody would end: the last stable offset stays at the log end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transactional_batch_outside_its_transaction_is_refused() {
    use bytes::Bytes;
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{InitProducerIdRequest, ProduceRequest, TopicName, TransactionalId};
    use kafka_protocol::protocol::StrBytes;
    use runnel_protocol::batch::{build_batch, BatchMut};

    const INVALID_TXN_STATE: i16 = 48;
    const INVALID_PRODUCER_EPOCH: i16 = 47;
    let dir = TempDir::new().unwrap();
    let node = Node::start(dir.path(), &["--set", "transaction.state.log.num.partitions=2"]);
    create_topic(node.bootstrap(), "t", 1, &[]).await;
    let mut conn = runnel_client::Connection::connect(node.bootstrap()).await.unwrap();
    let id = TransactionalId(StrBytes::from_static_str("stray"));
    let init =
        InitProducerIdRequest::default().with_transactional_id(Some(id.clone())).with_transaction_timeout_ms(60_000);
    // FindCoordinator is not needed: a single node coordinates every id.
    let first = conn.send(&init, 4).await.unwrap();
    assert_eq!(first.error_code, 0, "InitProducerId");
    let produce = |producer_id: i64, epoch: i16| {
        let mut batch = build_batch(0, &[b"x".as_slice()]);
        BatchMut::new(&mut batch).set_producer(producer_id, epoch, 0);
        BatchMut::new(&mut batch).set_transactional(false);
        ProduceRequest::default()
            .with_transactional_id(Some(id.clone()))
            .with_acks(-1)
            .with_timeout_ms(5_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str("t")))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(Bytes::from(batch)))])])
    };
    // No AddPartitionsToTxn: the partition is not in the transaction.
    let response = conn.send(&produce(first.producer_id.0, first.producer_epoch), 9).await.unwrap();
    assert_eq!(response.responses[0].partition_responses[0].error_code, INVALID_TXN_STATE);
    // A second InitProducerId bumps the epoch: the first epoch is fenced.
    let second = conn.send(&init, 4).await.unwrap();
    assert_eq!((second.producer_id, second.producer_epoch), (first.producer_id, first.producer_epoch + 1));
    let response = conn.send(&produce(first.producer_id.0, first.producer_epoch), 9).await.unwrap();
    assert_eq!(response.responses[0].partition_responses[0].error_code, INVALID_PRODUCER_EPOCH);
    assert_eq!(watermarks(node.bootstrap(), "t", 0), (0, 0), "nothing was appended");
    assert_serves_kafka_clients(&node, "stray transactional batches");
}

/// KIP-890 for offsets: a TxnOffsetCommit whose group's offsets partition is not in the
/// producer's ongoing transaction (no AddOffsetsToTxn, as from a zombie whose transaction
/// was fenced before its AddOffsetsToTxn arrived) is refused with INVALID_TXN_STATE, and
/// one from a fenced epoch with PRODUCER_FENCED; neither is ever committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_txn_offset_commit_outside_its_transaction_is_refused() {
    use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
    use kafka_protocol::messages::txn_offset_commit_request::{
        TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
    };
    use kafka_protocol::messages::{
        GroupId, InitProducerIdRequest, OffsetFetchRequest, TopicName, TransactionalId, TxnOffsetCommitRequest,
    };
    use kafka_protocol::protocol::StrBytes;

    const INVALID_TXN_STATE: i16 = 48;
    const PRODUCER_FENCED: i16 = 90;
    let dir = TempDir::new().unwrap();
    let node = Node::start(dir.path(), &["--set", "transaction.state.log.num.partitions=2"]);
    create_topic(node.bootstrap(), "t", 1, &[]).await;
    let mut conn = runnel_client::Connection::connect(node.bootstrap()).await.unwrap();
    let id = TransactionalId(StrBytes::from_static_str("zombie"));
    let init =
        InitProducerIdRequest::default().with_transactional_id(Some(id.clone())).with_transaction_timeout_ms(60_000);
    let first = conn.send(&init, 4).await.unwrap();
    assert_eq!(first.error_code, 0, "InitProducerId");
    // The group's coordinator (and `__consumer_offsets`) exist, as a client finds them.
    let find = kafka_protocol::messages::FindCoordinatorRequest::default().with_key(StrBytes::from_static_str("g"));
    assert_eq!(conn.send(&find, 3).await.unwrap().error_code, 0, "FindCoordinator");
    let commit = |epoch: i16| {
        TxnOffsetCommitRequest::default()
            .with_transactional_id(id.clone())
            .with_group_id(GroupId(StrBytes::from_static_str("g")))
            .with_producer_id(first.producer_id)
            .with_producer_epoch(epoch)
            .with_generation_id(-1)
            .with_topics(vec![TxnOffsetCommitRequestTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(vec![TxnOffsetCommitRequestPartition::default()
                    .with_partition_index(0)
                    .with_committed_offset(5)])])
    };
    let code =
        |response: kafka_protocol::messages::TxnOffsetCommitResponse| response.topics[0].partitions[0].error_code;
    assert_eq!(code(conn.send(&commit(first.producer_epoch), 3).await.unwrap()), INVALID_TXN_STATE);
    let second = conn.send(&init, 4).await.unwrap();
    assert_eq!(second.producer_epoch, first.producer_epoch + 1);
    assert_eq!(code(conn.send(&commit(first.producer_epoch), 3).await.unwrap()), PRODUCER_FENCED);
    let fetch =
        OffsetFetchRequest::default().with_group_id(GroupId(StrBytes::from_static_str("g"))).with_topics(Some(vec![
            OffsetFetchRequestTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("t")))
                .with_partition_indexes(vec![0]),
        ]));
    let fetched = conn.send(&fetch, 7).await.unwrap();
    assert_eq!(fetched.topics[0].partitions[0].committed_offset, -1, "nothing was committed");
}
