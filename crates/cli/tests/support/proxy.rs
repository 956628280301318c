//! A fault-injecting TCP proxy between a Kafka client and a node, for named fault scenarios.
//!
//! The proxy listens on `127.0.0.1:0` and forwards each accepted connection to a target
//! address that can change while it runs (a restarted node listens on a new port, while
//! clients keep the proxy's address, which the node advertises with `--advertise`). It
//! connects to the target lazily, when a client connects.
//!
//! Kafka frames are size-prefixed, so the proxy forwards whole frames and decides per frame:
//! - **drop**: when a response frame comes back from the node, with probability
//!   `drop_response_probability` close both sockets instead of forwarding it. The request was
//!   then fully read by the node (it answered), but the client never learns the outcome:
//!   the case a retrying producer turns into a duplicate.
//! - **delay**: with probability `delay_probability` hold a frame (either direction) for
//!   `delay_ms` before forwarding it, so that more requests pile up in flight.
//! - **outage** ([`Proxy::cut_for`]): close every live connection and refuse new ones until
//!   the outage ends.
//! - **blocked source** ([`Proxy::block_source`]): close the live connections from one
//!   source address and refuse new ones from it, until unblocked. Nodes that make their
//!   outgoing connections from distinct loopback addresses can so be cut off in both
//!   directions.
//!
//! A **transparent** proxy ([`Proxy::start_transparent`]) forwards bytes as they come,
//! for listeners whose traffic is not Kafka frames on the wire (TLS): the connection faults
//! (outage, blocked source) apply, the per-frame ones (drop, delay) do not, and faults set
//! on it are refused.
//!
//! Determinism: connection `n` draws from its own splitmix64 streams derived from the seed
//! and `n` (one per direction), and every frame draws the same number of values whatever the
//! faults are, so the k-th frame of the n-th connection gets the same decision for the same
//! seed, whatever the thread timing. Which request is the k-th depends on the client's
//! schedule, so a run reproduces its fault decisions, not the client's behaviour.
//!
//! Bounds: at most [`CONNECTIONS_MAX`] live connections (two threads each); frames are
//! streamed through one [`COPY_CHUNK_BYTES`] buffer per direction, never held whole; a frame
//! over [`FRAME_BYTES_MAX`] closes its connection; at most [`INFLIGHT_TRACKED_MAX`] requests
//! are tracked per connection; a delay is at most [`DELAY_MS_MAX`]. Dropping the proxy shuts
//! every socket down and joins every thread.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Live connections beyond this are closed on accept (and counted as refused).
pub const CONNECTIONS_MAX: usize = 64;
/// Forwarding buffer per direction of a connection.
pub const COPY_CHUNK_BYTES: usize = 64 * 1024;
/// A frame claiming more than this closes its connection (Kafka's default
/// `socket.request.max.bytes` is 100 MiB; fetch responses stay below `fetch.max.bytes`).
pub const FRAME_BYTES_MAX: usize = 128 * 1024 * 1024;
/// Requests remembered per connection for the lost-request counts; older ones are forgotten.
pub const INFLIGHT_TRACKED_MAX: usize = 1024;
/// Upper bound of the delay fault, so that dropping the proxy stays prompt.
pub const DELAY_MS_MAX: u64 = 2_000;
/// How long the proxy waits for the target to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const API_KEY_PRODUCE: i16 = 0;

/// Requests of one connection forwarded and not answered yet: (correlation id, API key).
type Inflight = Arc<Mutex<VecDeque<(i32, i16)>>>;

/// splitmix64: a tiny, well-mixed deterministic generator (Steele, Lea, Flood 2014).
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64 { state: seed }
    }

    /// The independent stream number `stream` of `seed`.
    pub fn stream(seed: u64, stream: u64) -> SplitMix64 {
        let mut mixer = SplitMix64::new(seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03));
        SplitMix64::new(mixer.next_u64())
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// True with probability `probability` (0.0 never, 1.0 always). Always draws one value.
    pub fn chance(&mut self, probability: f64) -> bool {
        let unit = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        unit < probability
    }
}

/// Which faults the proxy injects; changeable while it runs ([`Proxy::set_faults`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Faults {
    /// Per response frame: close both sockets instead of forwarding it.
    pub drop_response_probability: f64,
    /// Per frame, either direction: hold it for `delay_ms` first.
    pub delay_probability: f64,
    pub delay_ms: u64,
}

impl Faults {
    pub const NONE: Faults = Faults { drop_response_probability: 0.0, delay_probability: 0.0, delay_ms: 0 };

    fn check(&self) {
        assert!((0.0..=1.0).contains(&self.drop_response_probability), "drop probability out of [0, 1]: {self:?}");
        assert!((0.0..=1.0).contains(&self.delay_probability), "delay probability out of [0, 1]: {self:?}");
        assert!(self.delay_ms <= DELAY_MS_MAX, "delay over {DELAY_MS_MAX} ms: {self:?}");
    }
}

/// What the proxy did so far, for reports and for asserting that faults really happened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Client connections accepted and forwarded (or attempted: see `target_connect_failures`).
    pub connections_accepted: u64,
    /// Client connections closed on accept: outage, no target yet, or too many connections.
    pub connections_refused: u64,
    /// Outages started ([`Proxy::cut_for`] or the dropped-Produce trigger).
    pub outages: u64,
    /// Live connections closed by an outage.
    pub connections_cut: u64,
    /// Accepted connections the target refused (e.g. the node was down).
    pub target_connect_failures: u64,
    /// Connections closed by the drop fault, each instead of forwarding one response.
    pub responses_dropped: u64,
    /// Of `responses_dropped`, responses to Produce requests: each is a request the node
    /// executed whose client never heard back, so an idempotent producer resends its batches
    /// and the node must answer them as duplicates.
    pub produce_responses_dropped: u64,
    /// Requests whose responses never reached the client, whatever closed the connection (a
    /// fault, an outage, the node): a retrying client resends those, and the node must
    /// recognise the ones it executed.
    pub requests_lost: u64,
    /// Of `requests_lost`, the Produce requests.
    pub produce_requests_lost: u64,
    pub requests_forwarded: u64,
    pub responses_forwarded: u64,
    pub frames_delayed: u64,
    /// Frames with a negative or oversized length prefix (their connection was closed).
    pub bad_frames: u64,
}

#[derive(Default)]
struct Counters {
    connections_accepted: AtomicU64,
    connections_refused: AtomicU64,
    outages: AtomicU64,
    connections_cut: AtomicU64,
    target_connect_failures: AtomicU64,
    responses_dropped: AtomicU64,
    produce_responses_dropped: AtomicU64,
    requests_lost: AtomicU64,
    produce_requests_lost: AtomicU64,
    requests_forwarded: AtomicU64,
    responses_forwarded: AtomicU64,
    frames_delayed: AtomicU64,
    bad_frames: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// The sockets of one live connection, so an outage or the proxy's drop can shut them down.
struct LiveConnection {
    client: TcpStream,
    /// Where the client connected from.
    source: Option<IpAddr>,
    /// Set once the target accepted; `None` while connecting.
    target: Option<TcpStream>,
    inflight: Inflight,
}

impl LiveConnection {
    fn shut_down(&self) {
        let _ = self.client.shutdown(Shutdown::Both);
        if let Some(target) = &self.target {
            let _ = target.shutdown(Shutdown::Both);
        }
    }
}

struct State {
    target: Option<SocketAddr>,
    faults: Faults,
    outage_until: Option<Instant>,
    /// Armed by [`Proxy::cut_at_next_dropped_produce_response`].
    cut_on_produce_drop: Option<Duration>,
    next_connection_id: u64,
    live: HashMap<u64, LiveConnection>,
    blocked_sources: HashSet<IpAddr>,
}

struct Shared {
    seed: u64,
    /// Forward bytes, not frames (see [`Proxy::start_transparent`]).
    transparent: bool,
    stopping: AtomicBool,
    state: Mutex<State>,
    counters: Counters,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panicking proxy thread must not hide the test's own failure behind a poison error.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn faults(&self) -> Faults {
        self.state().faults
    }

    /// Starts an outage: closes every live connection now and refuses new ones for `outage`.
    fn cut(&self, state: &mut State, outage: Duration) {
        bump(&self.counters.outages);
        state.outage_until = Some(Instant::now() + outage);
        for live in state.live.values() {
            // Counted first: whoever sees the connection close may read the counters.
            count_lost(&self.counters, &live.inflight);
            bump(&self.counters.connections_cut);
            live.shut_down();
        }
    }

    /// Fires the armed trigger of [`Proxy::cut_at_next_dropped_produce_response`], if any.
    fn produce_response_dropped(&self) {
        let mut state = self.state();
        if let Some(outage) = state.cut_on_produce_drop.take() {
            self.cut(&mut state, outage);
        }
    }

    /// Registers an accepted client, or refuses it (closing it) during an outage, before a
    /// target is known, at the connection bound, or while stopping.
    fn admit(&self, client: &TcpStream) -> Option<(u64, SocketAddr, Inflight)> {
        let mut state = self.state();
        let source = client.peer_addr().ok().map(|a| a.ip());
        let in_outage = state.outage_until.is_some_and(|until| Instant::now() < until)
            || source.is_some_and(|ip| state.blocked_sources.contains(&ip));
        let full = state.live.len() >= CONNECTIONS_MAX;
        let (Some(target), false, false, false) = (state.target, in_outage, full, self.stopping.load(Ordering::SeqCst))
        else {
            bump(&self.counters.connections_refused);
            let _ = client.shutdown(Shutdown::Both);
            return None;
        };
        let Ok(client_clone) = client.try_clone() else {
            bump(&self.counters.connections_refused);
            return None;
        };
        let id = state.next_connection_id;
        state.next_connection_id += 1;
        let inflight = Arc::new(Mutex::new(VecDeque::new()));
        state
            .live
            .insert(id, LiveConnection { client: client_clone, source, target: None, inflight: Arc::clone(&inflight) });
        bump(&self.counters.connections_accepted);
        Some((id, target, inflight))
    }

    /// Records the target socket of a connection; false if the connection was cut (or the
    /// proxy stopped) while it was connecting, in which case the socket is shut down.
    fn attach_target(&self, id: u64, target: &TcpStream) -> bool {
        let mut state = self.state();
        match state.live.get_mut(&id) {
            Some(live) if !self.stopping.load(Ordering::SeqCst) => match target.try_clone() {
                Ok(clone) => {
                    live.target = Some(clone);
                    true
                }
                Err(_) => false,
            },
            _ => {
                let _ = target.shutdown(Shutdown::Both);
                false
            }
        }
    }

    /// Closes connection `id` and counts its unanswered requests as lost (once: counting
    /// drains them).
    fn close_losing_requests(&self, id: u64) {
        let state = self.state();
        if let Some(live) = state.live.get(&id) {
            // Counted first: whoever sees the connection close may read the counters.
            count_lost(&self.counters, &live.inflight);
            live.shut_down();
        }
    }

    fn forget(&self, id: u64) {
        if let Some(live) = self.state().live.remove(&id) {
            live.shut_down();
        }
    }
}

fn count_lost(counters: &Counters, inflight: &Mutex<VecDeque<(i32, i16)>>) {
    let mut inflight = inflight.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    for (_, api_key) in inflight.drain(..) {
        bump(&counters.requests_lost);
        if api_key == API_KEY_PRODUCE {
            bump(&counters.produce_requests_lost);
        }
    }
}

/// A running proxy; dropping it closes every connection and joins its threads.
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Listens on `127.0.0.1:0` with no target and no faults; connections are refused until
    /// [`Proxy::set_target`].
    pub fn start(seed: u64) -> Proxy {
        Proxy::launch(seed, false)
    }

    /// Like [`Proxy::start`], forwarding bytes instead of frames (TLS listeners): only
    /// outages and blocked sources apply.
    pub fn start_transparent(seed: u64) -> Proxy {
        Proxy::launch(seed, true)
    }

    fn launch(seed: u64, transparent: bool) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy listener");
        let addr = listener.local_addr().expect("proxy listener address");
        let shared = Arc::new(Shared {
            seed,
            transparent,
            stopping: AtomicBool::new(false),
            state: Mutex::new(State {
                target: None,
                faults: Faults::NONE,
                outage_until: None,
                cut_on_produce_drop: None,
                next_connection_id: 0,
                live: HashMap::new(),
                blocked_sources: HashSet::new(),
            }),
            counters: Counters::default(),
        });
        let acceptor = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("proxy-accept".into())
                .spawn(move || accept_loop(listener, shared))
                .expect("spawn proxy acceptor")
        };
        Proxy { addr, shared, acceptor: Some(acceptor) }
    }

    /// The address clients connect to (and the node advertises).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where new connections go; existing ones keep their target.
    pub fn set_target(&self, target: SocketAddr) {
        self.shared.state().target = Some(target);
    }

    pub fn set_faults(&self, faults: Faults) {
        faults.check();
        assert!(
            !self.shared.transparent || (faults.drop_response_probability == 0.0 && faults.delay_probability == 0.0),
            "a transparent proxy sees no frames to drop or delay"
        );
        self.shared.state().faults = faults;
    }

    /// Starts an outage: closes every live connection now and refuses new ones for `outage`.
    pub fn cut_for(&self, outage: Duration) {
        self.shared.cut(&mut self.shared.state(), outage);
    }

    /// Closes the live connections from `source` and refuses new ones from it until
    /// [`Proxy::unblock_source`]; counted as an outage.
    pub fn block_source(&self, source: IpAddr) {
        let mut state = self.shared.state();
        bump(&self.shared.counters.outages);
        state.blocked_sources.insert(source);
        for live in state.live.values().filter(|live| live.source == Some(source)) {
            count_lost(&self.shared.counters, &live.inflight);
            bump(&self.shared.counters.connections_cut);
            live.shut_down();
        }
    }

    pub fn unblock_source(&self, source: IpAddr) {
        self.shared.state().blocked_sources.remove(&source);
    }

    /// Ends the current outage now (if any).
    pub fn end_outage(&self) {
        self.shared.state().outage_until = None;
    }

    /// Arms a one-shot trigger: the next dropped Produce response starts an outage of
    /// `outage` at that instant. The node then executed that request, and the client cannot
    /// resend it before the outage ends: a crash during the outage makes the node answer the
    /// resend from its recovered state. [`ProxyStats::outages`] counts when it fired.
    pub fn cut_at_next_dropped_produce_response(&self, outage: Duration) {
        self.shared.state().cut_on_produce_drop = Some(outage);
    }

    pub fn stats(&self) -> ProxyStats {
        let c = &self.shared.counters;
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        ProxyStats {
            connections_accepted: get(&c.connections_accepted),
            connections_refused: get(&c.connections_refused),
            outages: get(&c.outages),
            connections_cut: get(&c.connections_cut),
            target_connect_failures: get(&c.target_connect_failures),
            responses_dropped: get(&c.responses_dropped),
            produce_responses_dropped: get(&c.produce_responses_dropped),
            requests_lost: get(&c.requests_lost),
            produce_requests_lost: get(&c.produce_requests_lost),
            requests_forwarded: get(&c.requests_forwarded),
            responses_forwarded: get(&c.responses_forwarded),
            frames_delayed: get(&c.frames_delayed),
            bad_frames: get(&c.bad_frames),
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        for live in self.shared.state().live.values() {
            live.shut_down();
        }
        // The acceptor blocks in accept(): one connection wakes it to see `stopping`.
        let _ = TcpStream::connect_timeout(&self.addr, CONNECT_TIMEOUT);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut workers: Vec<JoinHandle<()>> = Vec::new();
    for incoming in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            break;
        }
        let (finished, running): (Vec<_>, Vec<_>) = workers.into_iter().partition(|w| w.is_finished());
        workers = running;
        for worker in finished {
            let _ = worker.join();
        }
        let Ok(client) = incoming else { continue };
        let Some((id, target, inflight)) = shared.admit(&client) else { continue };
        let worker_shared = Arc::clone(&shared);
        let spawned = std::thread::Builder::new()
            .name(format!("proxy-conn-{id}"))
            .spawn(move || serve(id, client, target, inflight, worker_shared));
        match spawned {
            Ok(worker) => workers.push(worker),
            Err(_) => shared.forget(id),
        }
        // Threads finish shortly after their connection leaves `live`; the join above
        // reaps them, so this only fails if reaping stopped working.
        assert!(workers.len() <= 2 * CONNECTIONS_MAX, "proxy workers are not being reaped");
    }
    // Stopping: every live socket was shut down, so each worker ends promptly.
    for worker in workers {
        let _ = worker.join();
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Direction {
    /// Client to node.
    Request,
    /// Node to client.
    Response,
}

/// One direction of one connection.
struct Pump {
    id: u64,
    direction: Direction,
    rng: SplitMix64,
    shared: Arc<Shared>,
    inflight: Inflight,
}

fn serve(id: u64, client: TcpStream, target: SocketAddr, inflight: Inflight, shared: Arc<Shared>) {
    let node = match TcpStream::connect_timeout(&target, CONNECT_TIMEOUT) {
        Ok(node) => node,
        Err(_) => {
            bump(&shared.counters.target_connect_failures);
            shared.forget(id);
            return;
        }
    };
    if !shared.attach_target(id, &node) {
        shared.forget(id);
        return;
    }
    let _ = client.set_nodelay(true);
    let _ = node.set_nodelay(true);
    let pump = |direction: Direction| Pump {
        id,
        direction,
        rng: SplitMix64::stream(shared.seed, id * 2 + u64::from(direction == Direction::Response)),
        shared: Arc::clone(&shared),
        inflight: Arc::clone(&inflight),
    };
    let (Ok(client_reader), Ok(node_reader)) = (client.try_clone(), node.try_clone()) else {
        shared.forget(id);
        return;
    };
    let requests = pump(Direction::Request);
    let request_thread = std::thread::Builder::new()
        .name(format!("proxy-conn-{id}-requests"))
        .spawn(move || requests.run(client_reader, node));
    match request_thread {
        Ok(request_thread) => {
            pump(Direction::Response).run(node_reader, client);
            let _ = request_thread.join();
        }
        Err(_) => shared.forget(id),
    }
    shared.forget(id);
}

/// The connection is over: end of stream or an I/O error on either side, or a fault or a
/// bad frame closing it on purpose.
struct Closed;

impl From<std::io::Error> for Closed {
    fn from(_: std::io::Error) -> Closed {
        Closed
    }
}

impl Pump {
    /// Forwards frames until either side closes; then shuts both down so the other pump ends.
    fn run(mut self, mut from: TcpStream, mut to: TcpStream) {
        let mut buffer = vec![0u8; COPY_CHUNK_BYTES];
        if self.shared.transparent {
            while forward_bytes(&mut from, &mut to, &mut buffer).is_ok() {}
        } else {
            while self.forward_frame(&mut from, &mut to, &mut buffer).is_ok() {}
        }
        // Whatever closed the connection (a fault, an outage, the node or the client), the
        // requests still unanswered are lost; the first pump to get here counts them.
        self.shared.close_losing_requests(self.id);
        let _ = from.shutdown(Shutdown::Both);
        let _ = to.shutdown(Shutdown::Both);
    }

    fn forward_frame(&mut self, from: &mut TcpStream, to: &mut TcpStream, buffer: &mut [u8]) -> Result<(), Closed> {
        let mut size_bytes = [0u8; 4];
        read_exact_or_closed(from, &mut size_bytes)?;
        let Some(size) = usize::try_from(i32::from_be_bytes(size_bytes)).ok().filter(|&s| s <= FRAME_BYTES_MAX) else {
            bump(&self.shared.counters.bad_frames);
            return Err(Closed);
        };
        // Request header: api key i16, version i16, correlation id i32. Response header:
        // correlation id i32.
        let mut head = [0u8; 8];
        let head_len = size.min(head.len());
        read_exact_or_closed(from, &mut head[..head_len])?;
        let faults = self.shared.faults();
        let drop = self.rng.chance(faults.drop_response_probability);
        let delay = self.rng.chance(faults.delay_probability);
        match self.direction {
            Direction::Request => self.track_request(&head[..head_len]),
            Direction::Response if drop => {
                bump(&self.shared.counters.responses_dropped);
                if self.request_of(&head[..head_len]) == Some(API_KEY_PRODUCE) {
                    bump(&self.shared.counters.produce_responses_dropped);
                    self.shared.produce_response_dropped();
                }
                return Err(Closed);
            }
            Direction::Response => {
                self.untrack_response(&head[..head_len]);
            }
        }
        if delay && faults.delay_ms > 0 {
            bump(&self.shared.counters.frames_delayed);
            std::thread::sleep(Duration::from_millis(faults.delay_ms));
        }
        to.write_all(&size_bytes)?;
        to.write_all(&head[..head_len])?;
        let mut left = size - head_len;
        while left > 0 {
            let chunk = left.min(buffer.len());
            read_exact_or_closed(from, &mut buffer[..chunk])?;
            to.write_all(&buffer[..chunk])?;
            left -= chunk;
        }
        let counter = match self.direction {
            Direction::Request => &self.shared.counters.requests_forwarded,
            Direction::Response => &self.shared.counters.responses_forwarded,
        };
        bump(counter);
        Ok(())
    }

    fn track_request(&self, head: &[u8]) {
        let Ok(head) = <[u8; 8]>::try_from(head) else { return };
        let api_key = i16::from_be_bytes([head[0], head[1]]);
        let correlation_id = i32::from_be_bytes([head[4], head[5], head[6], head[7]]);
        let mut inflight = self.inflight.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if inflight.len() >= INFLIGHT_TRACKED_MAX {
            inflight.pop_front();
        }
        inflight.push_back((correlation_id, api_key));
    }

    /// Forgets the request a response answers; returns its API key if it was tracked.
    fn untrack_response(&self, head: &[u8]) -> Option<i16> {
        let correlation_id = head.get(..4).map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))?;
        let mut inflight = self.inflight.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let position = inflight.iter().position(|&(id, _)| id == correlation_id)?;
        inflight.remove(position).map(|(_, api_key)| api_key)
    }

    /// The API key of the request a response answers, if tracked (it stays tracked: it is lost).
    fn request_of(&self, head: &[u8]) -> Option<i16> {
        let correlation_id = head.get(..4).map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))?;
        let inflight = self.inflight.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        inflight.iter().find(|&&(id, _)| id == correlation_id).map(|&(_, api_key)| api_key)
    }
}

/// Forwards what one read returns; the end of the stream or an error closes.
fn forward_bytes(from: &mut TcpStream, to: &mut TcpStream, buffer: &mut [u8]) -> Result<(), Closed> {
    match from.read(buffer)? {
        0 => Err(Closed),
        read => Ok(to.write_all(&buffer[..read])?),
    }
}

/// `read_exact` retries interruptions itself; any other error or an early end is a close.
fn read_exact_or_closed(from: &mut TcpStream, buffer: &mut [u8]) -> Result<(), Closed> {
    from.read_exact(buffer).map_err(|_| Closed)
}
