//! Shared harness for the integration tests: a [`Node`] runs the real `runnel` binary on an
//! ephemeral port, and small helpers drive it with real Kafka clients (rdkafka) or raw
//! sockets. Every wait is bounded: helpers poll a condition until a deadline and fail with
//! a message saying what did not happen, never sleep to synchronise.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

pub mod browser;
pub mod cluster;
pub mod proxy;
pub mod s3;
pub mod secure;
pub mod tiered;

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, Timestamp, TopicPartitionList};
use tempfile::TempDir;

/// How long a node may take to print its listening line.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a SIGTERM'd node may take to exit (its drain timeout is 10 s).
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(20);
/// Default bound for one produce or consume helper call.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// Lines of the node's stderr shown when a test fails.
const LOG_TAIL_LINES: usize = 60;

/// One running (or stopped) `runnel server` process over a data directory the test owns.
pub struct Node {
    data_dir: PathBuf,
    extra_args: Vec<String>,
    metrics: bool,
    /// Holds the stderr logs of every incarnation, appended.
    log_dir: TempDir,
    child: Option<Child>,
    bootstrap: String,
    metrics_url: Option<String>,
    /// The web console's URL, when the node was started with `--http-listen`.
    console_url: Option<String>,
    /// Each listener's bound address by name, from the node's listener lines.
    listeners: std::collections::BTreeMap<String, String>,
    starts: u32,
    /// Stdout lines of the current incarnation, until its listening line has been seen.
    lines: Option<mpsc::Receiver<String>>,
    /// Names the node in failure output when a test runs several.
    label: String,
}

impl Node {
    /// Starts a node over `data_dir` with extra `server` arguments (e.g. `--set k=v`).
    pub fn start(data_dir: &Path, extra_args: &[&str]) -> Node {
        Self::start_with(data_dir, extra_args, false)
    }

    /// Like [`Node::start`], also serving metrics on an ephemeral port.
    pub fn start_with_metrics(data_dir: &Path, extra_args: &[&str]) -> Node {
        Self::start_with(data_dir, extra_args, true)
    }

    fn start_with(data_dir: &Path, extra_args: &[&str], metrics: bool) -> Node {
        let mut node = Self::stopped(data_dir, extra_args, metrics);
        node.spawn();
        node
    }

    /// Starts the process without waiting for its listening line: cluster nodes print it
    /// only once the quorum has a leader, so all of them must be launched before any is
    /// waited for with [`Node::wait_listening_within`]. An `extra_args` `--listen` replaces
    /// the ephemeral port, so that restarts keep the node's address.
    pub fn launch(data_dir: &Path, extra_args: &[&str]) -> Node {
        Self::launch_with(data_dir, extra_args, false)
    }

    /// Like [`Node::launch`], serving metrics on an ephemeral port when `metrics` is set.
    pub fn launch_with(data_dir: &Path, extra_args: &[&str], metrics: bool) -> Node {
        let mut node = Self::stopped(data_dir, extra_args, metrics);
        node.launch_process();
        node
    }

    fn stopped(data_dir: &Path, extra_args: &[&str], metrics: bool) -> Node {
        Node {
            data_dir: data_dir.to_path_buf(),
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            metrics,
            log_dir: TempDir::new().expect("temp dir for node logs"),
            child: None,
            bootstrap: String::new(),
            metrics_url: None,
            console_url: None,
            listeners: Default::default(),
            starts: 0,
            lines: None,
            label: String::new(),
        }
    }

    fn log_path(&self) -> PathBuf {
        self.log_dir.path().join("stderr.log")
    }

    /// Whether the node has logged a line containing `needle` (any start).
    pub fn logged(&self, needle: &str) -> bool {
        std::fs::read_to_string(self.log_path()).is_ok_and(|text| text.contains(needle))
    }

    fn spawn(&mut self) {
        self.launch_process();
        self.wait_listening_within(STARTUP_TIMEOUT);
    }

    fn launch_process(&mut self) {
        assert!(self.child.is_none(), "a node process is still running; stop it before starting another");
        self.starts += 1;
        let log = File::options().create(true).append(true).open(self.log_path()).expect("open node log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_runnel"));
        command.arg("server").arg("--data-dir").arg(&self.data_dir);
        if !self.extra_args.iter().any(|arg| arg == "--listen" || arg.starts_with("listeners=")) {
            command.args(["--listen", "127.0.0.1:0"]);
        }
        command
            .args(&self.extra_args)
            // Failure output shows the log tail: keep a panic to its message, and plain text.
            .env("RUST_BACKTRACE", "0")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        if self.metrics {
            command.args(["--metrics-listen", "127.0.0.1:0"]);
        }
        // A single node serves the console on 127.0.0.1:9644 by default: tests ask for it.
        if !self.extra_args.iter().any(|arg| arg == "--http-listen") {
            command.args(["--http-listen", "off"]);
        }
        let mut child = command.spawn().expect("spawn runnel");
        let stdout = child.stdout.take().expect("piped stdout");
        // A reader thread forwards stdout lines and keeps draining the pipe afterwards so
        // the node can never block on a full pipe.
        let (lines_tx, lines_rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if lines_tx.send(line).is_err() {
                    // Nobody listens any more; keep draining.
                }
            }
        });
        self.child = Some(child);
        self.lines = Some(lines_rx);
    }

    /// Waits for the listening line of a process started by [`Node::launch`] or
    /// [`Node::relaunch`]; panics with the node's log if it does not come within `timeout`.
    pub fn wait_listening_within(&mut self, timeout: Duration) {
        let lines_rx = self.lines.take().expect("no launched process is waiting for its listening line");
        let deadline = Instant::now() + timeout;
        let mut bootstrap = None;
        let mut metrics_url = None;
        let mut listeners = std::collections::BTreeMap::new();
        let mut console_url = None;
        let console = self.extra_args.windows(2).any(|w| w[0] == "--http-listen" && w[1] != "off");
        while bootstrap.is_none() || (self.metrics && metrics_url.is_none()) || (console && console_url.is_none()) {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines_rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(addr) = line.strip_prefix("runnel listening on ") {
                        bootstrap = Some(addr.trim().to_string());
                    } else if let Some(listener) = line.strip_prefix("runnel listener ") {
                        // "NAME PROTOCOL on ADDR"
                        let mut words = listener.split_whitespace();
                        if let (Some(name), Some(addr)) = (words.next(), words.last()) {
                            listeners.insert(name.to_string(), addr.to_string());
                        }
                    } else if let Some(url) = line.strip_prefix("runnel metrics on ") {
                        metrics_url = Some(url.trim().to_string());
                    } else if let Some(url) = line.strip_prefix("runnel console on ") {
                        console_url = Some(url.trim().trim_end_matches('/').to_string());
                    }
                }
                Err(e) => {
                    let status = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
                    panic!(
                        "node did not report its listener within {timeout:?} ({e}); exit status {status:?}\n{}",
                        self.log_tail()
                    );
                }
            }
        }
        self.bootstrap = bootstrap.expect("loop exits only with an address");
        self.metrics_url = metrics_url;
        self.console_url = console_url;
        self.listeners = listeners;
    }

    /// The bound `host:port` of listener `name` (e.g. "SSL").
    pub fn listener(&self, name: &str) -> &str {
        self.listeners.get(name).unwrap_or_else(|| panic!("the node has no listener {name}: {:?}", self.listeners))
    }

    /// `host:port` for `bootstrap.servers`.
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// `http://host:port/metrics`; the node must have been started with metrics.
    /// The web console's base URL (`http://host:port`, no trailing slash).
    pub fn console_url(&self) -> &str {
        self.console_url.as_deref().expect("the node was started without --http-listen")
    }

    pub fn metrics_url(&self) -> &str {
        self.metrics_url.as_deref().expect("node started without --metrics-listen")
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    fn pid(&self) -> libc::pid_t {
        let child = self.child.as_ref().expect("node is not running");
        libc::pid_t::try_from(child.id()).expect("pid fits pid_t")
    }

    #[allow(unsafe_code)]
    fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill(2) with the pid of a child we spawned and have not reaped yet, so the
        // pid cannot have been reused by another process.
        let rc = unsafe { libc::kill(self.pid(), signal) };
        assert_eq!(rc, 0, "kill({}, {signal}) failed: {}", self.pid(), std::io::Error::last_os_error());
    }

    /// Crashes the node: SIGKILL, then reaps it.
    pub fn kill9(&mut self) {
        self.signal(libc::SIGKILL);
        let status = self.wait_exit(SHUTDOWN_TIMEOUT);
        assert!(!status.success(), "a SIGKILL'd node cannot exit successfully: {status:?}");
    }

    /// Freezes the process (SIGSTOP): it holds its sockets but answers nothing, like a
    /// hung machine. [`Node::resume`] thaws it.
    /// Returns once every thread has stopped, so nothing the node does afterwards can race
    /// the caller's next step.
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
        let tasks = format!("/proc/{}/task", self.pid());
        let all_stopped = || {
            std::fs::read_dir(&tasks).is_ok_and(|entries| {
                entries.filter_map(Result::ok).all(|task| {
                    let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
                    // The state follows the command name, which is in parentheses.
                    stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('T'))
                })
            })
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while !all_stopped() {
            assert!(Instant::now() < deadline, "node did not stop within 5 s of SIGSTOP");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    /// Clean shutdown: SIGTERM, then waits for the process to exit with success.
    pub fn terminate(&mut self) {
        self.begin_terminate();
        self.wait_terminated();
    }

    /// Starts the node again over the same data directory (on a new port, unless its
    /// arguments fixed one with `--listen`). The previous
    /// process must have been stopped with [`Node::kill9`] or [`Node::terminate`].
    pub fn restart(&mut self) {
        self.spawn();
    }

    /// Like [`Node::restart`] without waiting: follow with [`Node::wait_listening_within`].
    pub fn relaunch(&mut self) {
        self.launch_process();
    }

    /// Names this node in its failure output (e.g. "node 2 (kafka 127.0.0.1:20001)").
    pub fn set_label(&mut self, label: impl Into<String>) {
        self.label = label.into();
    }

    /// Sends SIGTERM without waiting, so that several nodes can stop at once; follow
    /// with [`Node::wait_terminated`].
    pub fn begin_terminate(&self) {
        self.signal(libc::SIGTERM);
    }

    /// Waits for a node sent SIGTERM by [`Node::begin_terminate`] to exit with success.
    pub fn wait_terminated(&mut self) {
        let status = self.wait_exit(SHUTDOWN_TIMEOUT);
        assert!(status.success(), "node exited with {status:?} after SIGTERM\n{}", self.log_tail());
    }

    /// A field of the process's `/proc/<pid>/status` in KiB (`VmPeak`, `VmHWM`, ...).
    pub fn status_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("read /proc status");
        status
            .lines()
            .find_map(|line| {
                line.strip_prefix(field)?.strip_prefix(':')?.trim().strip_suffix("kB")?.trim().parse().ok()
            })
            .unwrap_or_else(|| panic!("{field} missing from /proc status"))
    }

    /// Whether the process is still alive (not yet exited).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            None => false,
            Some(child) => child.try_wait().expect("try_wait").is_none(),
        }
    }

    fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut().expect("node is not running");
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                return status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                self.child = None;
                panic!("node did not exit within {timeout:?}\n{}", self.log_tail());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every line the node logged (all starts) that contains `needle`.
    pub fn logged_lines(&self, needle: &str) -> Vec<String> {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        text.lines().filter(|line| line.contains(needle)).map(str::to_string).collect()
    }

    /// The last lines the node logged, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(LOG_TAIL_LINES);
        format!(
            "--- {}stderr (last {} lines, {} starts) ---\n{}",
            if self.label.is_empty() { "node ".to_string() } else { format!("{} ", self.label) },
            lines.len() - from,
            self.starts,
            lines[from..].join("\n")
        )
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.log_tail());
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                eprintln!("--- the node process had already exited ({status}) without this test stopping it ---");
            }
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            self.keep_for_inspection();
        }
    }
}

impl Node {
    /// With `RUNNEL_TEST_KEEP=<dir>`, a failing test leaves each node's log and data
    /// directory in `<dir>/<node>-<pid>/` for inspection (they are temporary otherwise).
    fn keep_for_inspection(&self) {
        let Some(keep) = std::env::var_os(KEEP_ENV) else { return };
        let label = self.label.split(" (").next().unwrap_or_default();
        let name = if label.is_empty() { "node".to_string() } else { label.replace(' ', "-") };
        let target = PathBuf::from(keep).join(format!("{name}-{}", std::process::id()));
        let copied = std::fs::create_dir_all(&target)
            .and_then(|()| std::fs::copy(self.log_path(), target.join("stderr.log")))
            .and_then(|_| copy_dir(&self.data_dir, &target.join("data")));
        match copied {
            Ok(()) => eprintln!("--- kept {name}'s log and data in {} ---", target.display()),
            Err(e) => eprintln!("--- could not keep {name}'s log and data in {}: {e} ---", target.display()),
        }
    }
}

/// Where a failing test leaves its nodes' logs and data (see [`Node::keep_for_inspection`]).
const KEEP_ENV: &str = "RUNNEL_TEST_KEEP";

/// Leaves `text` in `<RUNNEL_TEST_KEEP>/<name>-<pid>.log` when that variable is set (a
/// client's log beside the nodes' kept data); says where on standard error.
pub fn keep_text(name: &str, text: &str) {
    let Some(keep) = std::env::var_os(KEEP_ENV) else { return };
    let target = PathBuf::from(keep).join(format!("{name}-{}.log", std::process::id()));
    let written = std::fs::create_dir_all(target.parent().expect("a file in the keep directory"))
        .and_then(|()| std::fs::write(&target, text));
    match written {
        Ok(()) => eprintln!("--- kept {name} in {} ---", target.display()),
        Err(e) => eprintln!("--- could not keep {name} in {}: {e} ---", target.display()),
    }
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// Runs `runnel topic --bootstrap ADDR ARGS...` (the CLI under test) and returns its
/// standard output; fails the test if it fails.
pub fn runnel_topic(addr: &str, args: &[&str]) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_runnel"))
        .args(["topic", "--bootstrap", addr])
        .args(args)
        .output()
        .expect("run runnel topic");
    assert!(output.status.success(), "runnel topic {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("utf-8 output")
}

/// Reads one counter or gauge from a Prometheus text endpoint with a raw HTTP/1.1 GET.
pub fn metric(metrics_url: &str, name: &str) -> u64 {
    let rest = metrics_url.strip_prefix("http://").expect("http url");
    let (addr, path) = rest.split_once('/').map(|(a, p)| (a, format!("/{p}"))).unwrap_or((rest, "/".to_string()));
    let mut stream = TcpStream::connect(addr).expect("connect to metrics endpoint");
    stream.set_read_timeout(Some(Duration::from_secs(5))).expect("set read timeout");
    // One write: the endpoint answers after its first read.
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).expect("send metrics request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read metrics response");
    let (head, body) = response.split_once("\r\n\r\n").expect("HTTP response has a header/body separator");
    assert!(head.starts_with("HTTP/1.1 200"), "metrics endpoint answered: {head}");
    body.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (key, value) = line.split_once(' ')?;
            (key == name).then(|| value.trim().parse::<u64>().expect("metric value is an integer"))
        })
        .unwrap_or_else(|| panic!("metric {name} missing from:\n{body}"))
}

/// `runnel ARGS --bootstrap BOOTSTRAP`: whether it succeeded, and its stdout (or stderr
/// when it failed).
pub fn runnel_cli(bootstrap: &str, args: &[&str]) -> (bool, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_runnel"))
        .args(args)
        .args(["--bootstrap", bootstrap])
        .output()
        .unwrap();
    let text = if output.status.success() { output.stdout } else { output.stderr };
    (output.status.success(), String::from_utf8_lossy(&text).into_owned())
}

/// Polls `condition` every `interval` until it returns `Some` or `timeout` passes.
pub fn poll_until<T>(timeout: Duration, interval: Duration, what: &str, mut condition: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = condition() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(interval);
    }
}

// ----- rdkafka clients -----

fn base_config(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap).set("broker.address.family", "v4").set("socket.timeout.ms", "20000");
    config
}

pub fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    base_config(bootstrap).create().expect("admin client")
}

/// Creates one topic and asserts the broker accepted it.
pub async fn create_topic(bootstrap: &str, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let admin = admin(bootstrap);
    let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for (key, value) in configs {
        topic = topic.set(key, value);
    }
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = tokio::time::timeout(IO_TIMEOUT, admin.create_topics([&topic], &options))
        .await
        .expect("create_topics timed out")
        .expect("create_topics request failed");
    assert_eq!(results.len(), 1);
    assert_eq!(results[0], Ok(name.to_string()), "creating topic {name}");
}

/// A producer with idempotence off (InitProducerId is not implemented) plus `extra`.
pub fn producer(bootstrap: &str, extra: &[(&str, &str)]) -> FutureProducer {
    let mut config = base_config(bootstrap);
    config.set("enable.idempotence", "false").set("linger.ms", "5").set("message.timeout.ms", "30000");
    for (key, value) in extra {
        config.set(*key, *value);
    }
    config.create().expect("producer")
}

/// One message to produce or one that was consumed, in comparable form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Msg {
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl Msg {
    pub fn new(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Msg {
        Msg { key: Some(key.into()), value: value.into(), headers: Vec::new() }
    }
}

/// Where a message landed, from its delivery report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Placed {
    pub partition: i32,
    pub offset: i64,
}

/// Produces every message (to `partition`, or by key when `None`), optionally with
/// explicit timestamps, and awaits every delivery report. Panics on any failed delivery.
pub async fn produce_all(
    producer: &FutureProducer,
    topic: &str,
    partition: Option<i32>,
    messages: &[Msg],
    timestamps: Option<&[i64]>,
) -> Vec<Placed> {
    if let Some(ts) = timestamps {
        assert_eq!(ts.len(), messages.len(), "one timestamp per message");
    }
    let mut pending = Vec::with_capacity(messages.len());
    for (i, msg) in messages.iter().enumerate() {
        let headers = msg.headers.iter().fold(OwnedHeaders::new(), |headers, (key, value)| {
            headers.insert(Header { key: key.as_str(), value: value.as_deref() })
        });
        let mut record = FutureRecord::<[u8], [u8]>::to(topic).payload(&msg.value[..]).headers(headers);
        if let Some(key) = &msg.key {
            record = record.key(&key[..]);
        }
        if let Some(partition) = partition {
            record = record.partition(partition);
        }
        if let Some(ts) = timestamps {
            record = record.timestamp(ts[i]);
        }
        match producer.send_result(record) {
            Ok(future) => pending.push(future),
            Err((e, _)) => panic!("enqueueing message {i} failed: {e}"),
        }
    }
    let mut placed = Vec::with_capacity(pending.len());
    let deadline = tokio::time::Instant::now() + IO_TIMEOUT;
    for (i, future) in pending.into_iter().enumerate() {
        let delivery = tokio::time::timeout_at(deadline, future)
            .await
            .unwrap_or_else(|_| panic!("no delivery report for message {i} within {IO_TIMEOUT:?}"))
            .expect("delivery future cancelled");
        match delivery {
            Ok(delivery) => placed.push(Placed { partition: delivery.partition, offset: delivery.offset }),
            Err((e, _)) => panic!("delivery of message {i} failed: {e}"),
        }
    }
    placed
}

/// A consumed message with everything the tests compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub placed: Placed,
    pub msg: Msg,
    pub timestamp: Timestamp,
}

/// Settings of a consumer for `assign()` only: no group membership, no commits, no
/// silent offset reset, CRCs checked.
pub fn assign_only_config(bootstrap: &str) -> ClientConfig {
    let mut config = base_config(bootstrap);
    config
        .set("group.id", "runnel-tests-unused")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "error")
        .set("check.crcs", "true");
    config
}

/// A consumer for `assign()` only (see [`assign_only_config`]).
pub fn consumer(bootstrap: &str, extra: &[(&str, &str)]) -> StreamConsumer {
    let mut config = assign_only_config(bootstrap);
    for (key, value) in extra {
        config.set(*key, *value);
    }
    config.create().expect("consumer")
}

/// A librdkafka client destroyed on a thread of its own that nobody waits for.
///
/// librdkafka 2.12 can deadlock inside a consumer when a broker leaves the metadata (it is
/// fenced) while an OffsetForLeaderEpoch request to it is in flight: the main thread holds
/// a partition lock and wants the handle lock, the decommissioned broker's thread holds the
/// handle lock and wants the partition lock (confluentinc/librdkafka#5476, open). Such a
/// consumer delivers nothing more, and destroying it blocks forever: on a runtime worker
/// that also blocks the runtime's shutdown, so a test that failed would hang instead of
/// reporting. Dropping through this wrapper never blocks the caller; a thread stuck in the
/// destruction ends with the test process.
pub struct DetachedDrop<T: Send + 'static>(Option<T>);

impl<T: Send + 'static> DetachedDrop<T> {
    pub fn new(client: T) -> DetachedDrop<T> {
        DetachedDrop(Some(client))
    }
}

impl<T: Send + 'static> std::ops::Deref for DetachedDrop<T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.0.as_ref().expect("present until dropped")
    }
}

impl<T: Send + 'static> Drop for DetachedDrop<T> {
    fn drop(&mut self) {
        if let Some(client) = self.0.take() {
            // If no thread can be started, the client is destroyed here, as without the wrapper.
            let _ = std::thread::Builder::new().name("client-drop".into()).spawn(move || drop(client));
        }
    }
}

/// A blocking consumer for metadata-style calls (watermarks, offsets for times).
pub fn base_consumer(bootstrap: &str) -> BaseConsumer {
    base_consumer_with(bootstrap, &[])
}

/// Like [`base_consumer`], plus `extra` (e.g. a secured listener's client properties).
pub fn base_consumer_with(bootstrap: &str, extra: &[(&str, &str)]) -> BaseConsumer {
    let mut config = base_config(bootstrap);
    config.set("group.id", "runnel-tests-unused").set("enable.auto.commit", "false");
    for (key, value) in extra {
        config.set(*key, *value);
    }
    config.create().expect("base consumer")
}

pub fn assign(consumer: &StreamConsumer, topic: &str, starts: &[(i32, Offset)]) {
    let mut list = TopicPartitionList::new();
    for (partition, offset) in starts {
        list.add_partition_offset(topic, *partition, *offset).expect("add partition offset");
    }
    consumer.assign(&list).expect("assign");
}

/// Receives one message within `timeout`; `None` if none arrived. Consumer errors panic.
pub async fn recv_within(consumer: &StreamConsumer, timeout: Duration) -> Option<Received> {
    match tokio::time::timeout(timeout, consumer.recv()).await {
        Err(_) => None,
        Ok(Err(e)) => panic!("consumer error: {e}"),
        Ok(Ok(message)) => Some(received(&message)),
    }
}

fn received<M: Message>(message: &M) -> Received {
    let headers = message
        .headers()
        .map(|headers| headers.iter().map(|h| (h.key.to_string(), h.value.map(|v| v.to_vec()))).collect())
        .unwrap_or_default();
    Received {
        placed: Placed { partition: message.partition(), offset: message.offset() },
        msg: Msg {
            key: message.key().map(|k| k.to_vec()),
            value: message.payload().unwrap_or_default().to_vec(),
            headers,
        },
        timestamp: message.timestamp(),
    }
}

/// Consumes from the given partitions and start offsets until `expected` messages arrived
/// or `IO_TIMEOUT` passed (which fails the test).
pub async fn consume(bootstrap: &str, topic: &str, starts: &[(i32, Offset)], expected: usize) -> Vec<Received> {
    let consumer = consumer(bootstrap, &[]);
    assign(&consumer, topic, starts);
    let deadline = tokio::time::Instant::now() + IO_TIMEOUT;
    let mut out = Vec::with_capacity(expected);
    while out.len() < expected {
        let message = match tokio::time::timeout_at(deadline, consumer.recv()).await {
            Err(_) => panic!("consumed only {} of {expected} messages from {topic} within {IO_TIMEOUT:?}", out.len()),
            Ok(Err(e)) => panic!("consumer error after {} messages: {e}", out.len()),
            Ok(Ok(message)) => received(&message),
        };
        out.push(message);
    }
    out
}

/// (low, high) watermarks of one partition.
pub fn watermarks(bootstrap: &str, topic: &str, partition: i32) -> (i64, i64) {
    let consumer = base_consumer(bootstrap);
    tokio::task::block_in_place(|| consumer.fetch_watermarks(topic, partition, Duration::from_secs(10)))
        .unwrap_or_else(|e: KafkaError| panic!("fetch_watermarks({topic}, {partition}): {e}"))
}

/// The active (highest base offset) segment file of a partition.
pub fn active_segment(data_dir: &Path, topic: &str, partition: i32) -> PathBuf {
    let dir = data_dir.join(format!("{topic}-{partition}"));
    let mut logs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("dir entry").path())
        .filter(|path| {
            path.extension().is_some_and(|ext| ext == "log")
                && path
                    .file_stem()
                    .is_some_and(|stem| stem.len() == 20 && stem.to_string_lossy().bytes().all(|b| b.is_ascii_digit()))
        })
        .collect();
    logs.sort();
    logs.pop().unwrap_or_else(|| panic!("no segment file in {}", dir.display()))
}

/// A partition's `.log` segment files concatenated in file name (base offset) order: its
/// log bytes whatever the segment boundaries. Empty if the directory does not exist; a file
/// removed between listing and reading (a truncation, retention) is skipped.
pub fn partition_log_bytes(data_dir: &Path, topic: &str, partition: i32) -> Vec<u8> {
    let dir = data_dir.join(format!("{topic}-{partition}"));
    let entries = std::fs::read_dir(&dir).into_iter().flatten().filter_map(Result::ok);
    let mut logs: Vec<PathBuf> =
        entries.map(|entry| entry.path()).filter(|path| path.extension().is_some_and(|ext| ext == "log")).collect();
    logs.sort();
    let mut bytes = Vec::new();
    for path in logs {
        match std::fs::read(&path) {
            Ok(segment) => bytes.extend(segment),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => panic!("reading {}: {e}", path.display()),
        }
    }
    bytes
}

/// A `u64` from the environment variable `name`, decimal or 0x-hex; `None` when unset.
pub fn u64_from_env(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    let text = text.trim();
    let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse::<u64>(),
    };
    Some(parsed.unwrap_or_else(|e| panic!("{name}={text}: not a decimal or 0x-hex u64 ({e})")))
}

/// Deterministic pseudo-random bytes (xorshift64*) so failures reproduce from the seed.
pub fn pseudo_random_bytes(seed: u64, len: usize) -> Vec<u8> {
    assert_ne!(seed, 0, "xorshift needs a non-zero seed");
    let mut state = seed;
    (0..len)
        .map(|_| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock after 1970");
    i64::try_from(since.as_millis()).expect("ms fit i64")
}

/// Lines of a panic message that [`FailureLast`] repeats.
const FAILURE_ECHO_LINES: usize = 6;
/// Characters of each repeated line.
const FAILURE_ECHO_LINE_CHARS: usize = 600;

static LAST_PANIC: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// Repeats the test's panic message once everything its unwinding prints (every node's log
/// tail) is out, so that the last lines of a failing test's output name the failure: CI
/// reports show the start and the end of a long output, not its middle. Create it before
/// the nodes, so that it is dropped after them.
pub struct FailureLast;

impl FailureLast {
    pub fn install() -> FailureLast {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let message = info
                .payload()
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| info.payload().downcast_ref::<&str>().copied())
                .unwrap_or("(a panic without a message)");
            let at = info.location().map(|l| format!("at {}:{}: ", l.file(), l.line())).unwrap_or_default();
            let mut last = LAST_PANIC.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            // The first panic is the failure; later ones are its consequences.
            last.get_or_insert_with(|| format!("{at}{}", message.trim_end()));
            drop(last);
            previous(info);
        }));
        FailureLast
    }
}

impl Drop for FailureLast {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let last = LAST_PANIC.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(message) = last.as_deref() else { return };
        let lines = message.lines().take(FAILURE_ECHO_LINES).map(|line| {
            match line.char_indices().nth(FAILURE_ECHO_LINE_CHARS) {
                Some((cut, _)) => format!("{}…", &line[..cut]),
                None => line.to_string(),
            }
        });
        eprintln!("=== the test failed (repeated after the logs above):");
        for line in lines {
            eprintln!("=== {line}");
        }
    }
}
