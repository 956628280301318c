//! The web console end to end: a real headless Chromium loads each page from a running node
//! (and a three-node cluster), the numbers shown are checked against the Kafka API, messages
//! produced by librdkafka are browsed, a topic created through the console is listed by
//! kcat, a group's offsets are reset after a dry run, and screenshots are taken
//! (`RUNNEL_SCREENSHOTS=DIR` keeps them). Sign-in and the request bounds are checked over
//! plain HTTP.

mod support;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;
use support::browser::Browser;
use support::cluster::{create_topic_via, Cluster, Spec, FAST_FAILURE_DETECTION};
use support::*;
use tempfile::TempDir;

const WAIT: Duration = Duration::from_secs(30);

/// Where screenshots go: `RUNNEL_SCREENSHOTS`, else a temporary directory.
fn screenshots() -> (PathBuf, Option<TempDir>) {
    match std::env::var("RUNNEL_SCREENSHOTS") {
        Ok(dir) => {
            std::fs::create_dir_all(&dir).expect("screenshot dir");
            (PathBuf::from(dir), None)
        }
        Err(_) => {
            let dir = TempDir::new().expect("temp dir");
            (dir.path().to_path_buf(), Some(dir))
        }
    }
}

fn kcat_list(bootstrap: &str, topic: &str) -> String {
    let output = Command::new("kcat").args(["-L", "-b", bootstrap, "-t", topic]).output().expect("run kcat");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The data-v of cell `key` in the row matching `row` (a CSS selector).
fn cell(browser: &mut Browser, row: &str, key: &str) -> String {
    let expression = format!(
        "(() => {{ const c = document.querySelector({}); return c ? c.dataset.v : null; }})()",
        serde_json::json!(format!("{row} td[data-k=\"{key}\"]"))
    );
    browser.eval(&expression).as_str().unwrap_or_default().to_string()
}

fn set_field(browser: &mut Browser, selector: &str, value: &str) {
    let expression = format!(
        "(() => {{ const e = document.querySelector({}); e.value = {}; e.dispatchEvent(new Event('change')); return true; }})()",
        serde_json::json!(selector),
        serde_json::json!(value)
    );
    assert_eq!(browser.eval(&expression), Value::Bool(true));
}

fn click(browser: &mut Browser, selector: &str) {
    let expression = format!(
        "(() => {{ const e = document.querySelector({}); if (!e) return false; e.click(); return true; }})()",
        serde_json::json!(selector)
    );
    assert_eq!(browser.eval(&expression), Value::Bool(true), "no element {selector} to click");
}

/// Clicks the modal's Confirm once it is shown.
fn confirm(browser: &mut Browser) {
    browser.wait_for("!document.getElementById('modal').classList.contains('hidden')", WAIT);
    click(browser, "#modal-confirm");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_a_node_browses_messages_and_changes_it_after_confirmation() {
    let data = TempDir::new().unwrap();
    let node = Node::start(data.path(), &["--http-listen", "127.0.0.1:0", "--http-sample-interval-ms", "500"]);
    let bootstrap = node.bootstrap().to_string();
    let url = node.console_url().to_string();
    create_topic(&bootstrap, "orders", 3, &[]).await;
    let producer = producer(&bootstrap, &[]);
    for p in 0..3 {
        for i in 0..10 {
            let key = format!("k{p}-{i}");
            let value = format!("{{\"p\":{p},\"i\":{i}}}");
            let headers = OwnedHeaders::new().insert(Header { key: "source", value: Some("librdkafka") });
            let record = FutureRecord::to("orders").partition(p).key(&key).payload(&value).headers(headers);
            producer.send(record, Duration::from_secs(10)).await.expect("produce");
        }
    }
    // Group "billing" commits 4, 7 and 10 and has no members: lag 6 + 3 + 0.
    let committer: BaseConsumer = assign_only_config(&bootstrap).set("group.id", "billing").create().unwrap();
    let mut offsets = TopicPartitionList::new();
    for (p, o) in [(0, 4), (1, 7), (2, 10)] {
        offsets.add_partition_offset("orders", p, Offset::Offset(o)).unwrap();
    }
    tokio::task::block_in_place(|| committer.commit(&offsets, CommitMode::Sync)).expect("commit");
    drop(committer);

    let (shots, _keep) = screenshots();
    tokio::task::block_in_place(|| {
        let mut browser = Browser::launch();
        // Overview: one broker, which is the active controller; the topic count as Metadata has it.
        browser.open(&format!("{url}/#/"));
        assert_eq!(browser.eval("document.querySelector('#cards [data-k=brokers] .value').textContent"), "1");
        assert_eq!(browser.eval("document.querySelector('#cards [data-k=topics] .value').textContent"), "1");
        assert_eq!(browser.eval("document.querySelectorAll('#nodes tbody tr').length"), 1);
        assert_eq!(cell(&mut browser, "#nodes tr[data-node=\"1\"]", "roles"), "broker,controller");
        assert_eq!(browser.eval("document.querySelector('#nodes .tag').textContent"), "active controller");

        // Topics: partitions and the sum of log end offsets, as librdkafka sees them.
        browser.open(&format!("{url}/#/topics"));
        let ends: i64 = (0..3).map(|p| watermarks(&bootstrap, "orders", p).1).sum();
        assert_eq!(ends, 30);
        assert_eq!(cell(&mut browser, "#topics tr[data-topic=\"orders\"]", "partitions"), "3");
        assert_eq!(cell(&mut browser, "#topics tr[data-topic=\"orders\"]", "log_end_offsets"), ends.to_string());
        assert_ne!(cell(&mut browser, "#topics tr[data-topic=\"orders\"]", "size_bytes"), "0");

        // The topic: each partition's offsets, then the message browser.
        browser.open(&format!("{url}/#/topics/orders"));
        for p in 0..3 {
            let (low, high) = watermarks(&bootstrap, "orders", p);
            let row = format!("#partitions tr[data-partition=\"{p}\"]");
            assert_eq!(cell(&mut browser, &row, "earliest_offset"), low.to_string());
            assert_eq!(cell(&mut browser, &row, "latest_offset"), high.to_string());
            assert_eq!(cell(&mut browser, &row, "leader"), "1");
        }
        set_field(&mut browser, "#browse [name=partition]", "1");
        set_field(&mut browser, "#browse [name=mode]", "offset");
        set_field(&mut browser, "#browse [name=value]", "2");
        set_field(&mut browser, "#browse [name=limit]", "5");
        set_field(&mut browser, "#browse [name=format]", "json");
        click(&mut browser, "#browse-button");
        browser.wait_for("document.querySelectorAll('#messages tbody tr').length === 5", WAIT);
        let shown: Vec<i64> = (0..5)
            .map(|i| {
                let e = format!("Number(document.querySelectorAll('#messages tbody tr')[{i}].dataset.offset)");
                browser.eval(&e).as_i64().unwrap()
            })
            .collect();
        assert_eq!(shown, [2, 3, 4, 5, 6]);
        let value = browser.eval("document.querySelector('#messages tbody tr td.value').innerText");
        assert_eq!(value.as_str().unwrap().trim(), "{\n  \"p\": 1,\n  \"i\": 2\n}", "pretty-printed JSON");
        assert_eq!(browser.eval("document.querySelector('#messages tbody tr td.key pre').innerText.trim()"), "k1-2");
        let headers = browser.eval("document.querySelector('#messages tbody tr td:last-child').innerText");
        assert!(headers.as_str().unwrap().contains("source"), "{headers}");
        assert!(headers.as_str().unwrap().contains("librdkafka"), "{headers}");
        browser.screenshot(&shots.join("topic.png"));
        click(&mut browser, "#newer");
        browser.wait_for("document.querySelector('#messages tbody tr') && document.querySelector('#messages tbody tr').dataset.offset === '7'", WAIT);
        set_field(&mut browser, "#browse [name=format]", "hex");
        click(&mut browser, "#browse-button");
        // From offset 2 again: {"p":1,"i":2} begins 7b 22 70.
        browser.wait_for("document.querySelector('#messages tbody tr td.value') && document.querySelector('#messages tbody tr td.value').innerText.startsWith('7b 22 70')", WAIT);

        // Groups: the lag the sampler measured, then the group's own offsets.
        browser.open(&format!("{url}/#/groups"));
        browser.wait_for("(() => { const c = document.querySelector('#groups tr[data-group=\"billing\"] td[data-k=lag]'); return c && c.dataset.v === '9'; })()", WAIT);
        browser.open(&format!("{url}/#/groups/billing"));
        for (p, committed) in [(0, "4"), (1, "7"), (2, "10")] {
            let row = format!("#offsets tr[data-partition=\"{p}\"]");
            assert_eq!(cell(&mut browser, &row, "current_offset"), committed);
            assert_eq!(cell(&mut browser, &row, "log_end_offset"), "10");
        }
        browser.wait_for("document.querySelectorAll('.chart polyline').length > 0", WAIT);
        browser.screenshot(&shots.join("group.png"));

        // Reset to the earliest offsets: a dry run first changes nothing.
        set_field(&mut browser, "#reset [name=topic]", "orders");
        set_field(&mut browser, "#reset [name=to]", "earliest");
        click(&mut browser, "#reset-preview");
        browser.wait_for("document.querySelectorAll('#reset-rows tbody tr').length === 3", WAIT);
        assert_eq!(cell(&mut browser, "#reset-rows tr[data-partition=\"2\"]", "new_offset"), "0");
        let described = runnel_cli(&bootstrap, &["group", "describe", "billing", "--output", "json"]);
        assert!(
            described.0 && described.1.contains("\"current_offset\":10"),
            "the dry run changed nothing: {}",
            described.1
        );
        click(&mut browser, "#reset-apply");
        confirm(&mut browser);
        browser.wait_for(
            "document.getElementById('flash') && document.getElementById('flash').className === 'notice'",
            WAIT,
        );
        let (ok, described) = runnel_cli(&bootstrap, &["group", "describe", "billing", "--output", "json"]);
        let described: Value = serde_json::from_str(&described).unwrap_or_else(|_| panic!("{ok} {described}"));
        let committed: Vec<i64> =
            described["offsets"].as_array().unwrap().iter().map(|o| o["current_offset"].as_i64().unwrap()).collect();
        assert_eq!(committed, [0, 0, 0]);

        // Create a topic through the console; kcat lists it.
        browser.open(&format!("{url}/#/topics"));
        set_field(&mut browser, "#create-topic [name=name]", "from-console");
        set_field(&mut browser, "#create-topic [name=partitions]", "2");
        set_field(&mut browser, "#create-topic [name=configs]", "retention.ms=3600000");
        click(&mut browser, "#create-topic-button");
        confirm(&mut browser);
        browser.wait_for("!!document.querySelector('#topics tr[data-topic=\"from-console\"]')", WAIT);
        let listed = kcat_list(&bootstrap, "from-console");
        assert!(listed.contains("topic \"from-console\" with 2 partitions"), "{listed}");
        let (_, settings) = runnel_cli(&bootstrap, &["config", "describe", "--topic", "from-console"]);
        assert!(settings.contains("retention.ms=3600000"), "{settings}");

        // Deleting it asks for its name to be typed.
        browser.open(&format!("{url}/#/topics/from-console"));
        click(&mut browser, "#delete-topic");
        browser.wait_for("!!document.getElementById('modal-text')", WAIT);
        click(&mut browser, "#modal-confirm");
        assert!(kcat_list(&bootstrap, "from-console").contains("from-console"), "not deleted without the name typed");
        set_field(&mut browser, "#modal-text", "from-console");
        click(&mut browser, "#modal-confirm");
        browser.wait_for("document.body.dataset.loaded === '/topics'", WAIT);
        poll_until(WAIT, Duration::from_millis(200), "kcat no longer lists the topic", || {
            (!kcat_list(&bootstrap, "from-console").contains("with 2 partitions")).then_some(())
        });

        // The overview charts this node's traffic.
        browser.open(&format!("{url}/#/"));
        browser.wait_for("document.querySelectorAll('.chart polyline').length >= 3", WAIT);
        browser.screenshot(&shots.join("overview.png"));
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_a_three_node_cluster_and_an_under_replicated_partition() {
    let console = ["--http-listen", "127.0.0.1:0"];
    let mut args: Vec<&str> = FAST_FAILURE_DETECTION.to_vec();
    args.extend(console);
    let mut cluster = Cluster::start(&[
        Spec::combined(1).with_args(&args),
        Spec::combined(2).with_args(FAST_FAILURE_DETECTION),
        Spec::combined(3).with_args(FAST_FAILURE_DETECTION),
    ]);
    cluster.await_brokers_listed(WAIT).await;
    let bootstrap = cluster.kafka_addr(1).to_string();
    create_topic_via(&bootstrap, "replicated", 2, 3).await.expect("create topic");
    let url = cluster.node(1).console_url().to_string();
    let (ok, info) = runnel_cli(&bootstrap, &["cluster", "info", "--output", "json"]);
    let info: Value = serde_json::from_str(&info).unwrap_or_else(|_| panic!("{ok} {info}"));
    tokio::task::block_in_place(|| {
        let mut browser = Browser::launch();
        browser.open(&format!("{url}/#/"));
        assert_eq!(browser.eval("document.querySelector('#cards [data-k=brokers] .value').textContent"), "3");
        assert_eq!(browser.eval("document.querySelectorAll('#nodes tbody tr').length"), 3);
        let active = browser.eval("document.querySelector('#cards [data-k=active_controller] .value').textContent");
        assert_eq!(active.as_str().unwrap(), info["active_controller"].to_string());
        for id in 1..=3 {
            assert_eq!(cell(&mut browser, &format!("#nodes tr[data-node=\"{id}\"]"), "quorum"), "voter");
        }
        browser.open(&format!("{url}/#/topics/replicated"));
        for p in 0..2 {
            let row = format!("#partitions tr[data-partition=\"{p}\"]");
            let mut replicas: Vec<String> =
                cell(&mut browser, &row, "replicas").split(',').map(str::to_string).collect();
            replicas.sort();
            assert_eq!(replicas, ["1", "2", "3"]);
        }
    });
    cluster.kill9(3);
    tokio::task::block_in_place(|| {
        let mut browser = Browser::launch();
        browser.open(&format!("{url}/#/"));
        // The overview refreshes itself every 5 s; the leaders shrink their ISR after 3 s,
        // and the node is fenced (its replicas offline) when its session times out, which
        // may come a refresh later: wait for both.
        browser.wait_for(
            "Number(document.querySelector('#cards [data-k=under_replicated] .value').textContent) === 2 \
             && Number(document.querySelector('#cards [data-k=with_offline_replicas] .value').textContent) === 2",
            Duration::from_secs(45),
        );
        assert_eq!(browser.eval("document.querySelector('#cards [data-k=under_replicated] .value').textContent"), "2");
        assert_eq!(
            browser.eval("document.querySelector('#cards [data-k=with_offline_replicas] .value').textContent"),
            "2"
        );
    });
}

/// One HTTP/1.1 request: (status, head, body).
fn http(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String, String) {
    let mut stream = std::net::TcpStream::connect(addr).expect("connect to the console");
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nconnection: close\r\ncontent-length: {}\r\n", body.len());
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        request.push_str(&format!("host: {addr}\r\n"));
    }
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    // A refused body may close the connection before it is all written.
    let _ = stream.write_all(body);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, head.to_ascii_lowercase(), body.to_string())
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_users_sign_in_as_kafka_users_and_acls_and_bounds_apply() {
    let data = TempDir::new().unwrap();
    let node = Node::start(
        data.path(),
        &[
            "--set",
            "listeners=SASL_PLAINTEXT://127.0.0.1:0",
            "--set",
            "sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512",
            "--set",
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "--set",
            "super.users=User:admin",
            "--add-scram",
            "SCRAM-SHA-512=[name=admin,password=admin-secret]",
            "--add-scram",
            "SCRAM-SHA-256=[name=alice,password=alice-secret]",
            "--http-listen",
            "127.0.0.1:0",
        ],
    );
    let addr = node.console_url().trim_start_matches("http://").to_string();
    let admin = basic("admin", "admin-secret");
    let alice = basic("alice", "alice-secret");
    let confirmed = ("x-runnel-console", "confirm");
    tokio::task::block_in_place(|| {
        // The page and its assets need no sign-in; the API does.
        let (status, _, page) = http(&addr, "GET", "/", &[], b"");
        assert_eq!(status, 200);
        assert!(page.contains("/app.js"), "{page}");
        let (status, head, _) = http(&addr, "GET", "/api/overview", &[], b"");
        assert_eq!(status, 401);
        assert!(head.contains("www-authenticate: basic"), "{head}");
        let (status, _, _) = http(&addr, "GET", "/api/overview", &[("authorization", &basic("admin", "wrong"))], b"");
        assert_eq!(status, 401);
        let (status, _, body) = http(&addr, "GET", "/api/overview", &[("authorization", &admin)], b"");
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("cluster_id"), "{body}");
        // Alice signs in (SCRAM-SHA-256) but has no ACLs: the Kafka API refuses her change.
        let create = br#"{"name":"guarded","partitions":1}"#;
        let (status, _, body) = http(
            &addr,
            "POST",
            "/api/topics",
            &[("authorization", &alice), confirmed, ("content-type", "application/json")],
            create,
        );
        assert_eq!(status, 403, "{body}");
        // A change without the confirmation header is refused before any Kafka call.
        let (status, _, _) = http(&addr, "POST", "/api/topics", &[("authorization", &admin)], create);
        assert_eq!(status, 400);
        // A body over the bound is refused.
        let big = vec![b' '; 128 * 1024];
        let (status, _, _) = http(&addr, "POST", "/api/topics", &[("authorization", &admin), confirmed], &big);
        assert!(status == 400 || status == 0, "status {status}");
        let (status, _, body) = http(&addr, "POST", "/api/topics", &[("authorization", &admin), confirmed], create);
        assert_eq!(status, 200, "{body}");
        let (status, _, body) = http(&addr, "GET", "/api/topics", &[("authorization", &admin)], b"");
        assert_eq!(status, 200);
        assert!(body.contains("\"name\":\"guarded\""), "{body}");
        // Alice cannot describe it either: the topic list she gets leaves it out.
        let (_, _, body) = http(&addr, "GET", "/api/topics", &[("authorization", &alice)], b"");
        assert!(!body.contains("\"name\":\"guarded\""), "{body}");
        let (status, _, _) = http(&addr, "GET", "/api/nothing-here", &[("authorization", &admin)], b"");
        assert_eq!(status, 404);
        // A page of a partition that does not exist is an answer, not a crash.
        let (status, _, body) =
            http(&addr, "GET", "/api/topics/guarded/messages?partition=99", &[("authorization", &admin)], b"");
        assert_eq!(status, 404, "{body}");
        // DNS rebinding: a request naming another host is refused, even with credentials;
        // a change from another origin is refused too.
        let (status, _, _) =
            http(&addr, "GET", "/api/overview", &[("authorization", &admin), ("host", "evil.example:9644")], b"");
        assert_eq!(status, 421);
        let (status, _, _) = http(
            &addr,
            "DELETE",
            "/api/topics/guarded",
            &[("authorization", &admin), confirmed, ("origin", "http://evil.example")],
            b"",
        );
        assert_eq!(status, 400);
        let (status, _, body) = http(&addr, "GET", "/api/topics", &[("authorization", &admin)], b"");
        assert!(status == 200 && body.contains("\"name\":\"guarded\""), "the refused delete deleted nothing");

        // In the browser: the page asks for a Kafka user, refuses a wrong password, and shows
        // the cluster once signed in.
        let mut browser = Browser::launch();
        browser.call_navigate(&format!("http://{addr}/#/"));
        browser.wait_for("!!document.getElementById('signin')", WAIT);
        set_field(&mut browser, "#signin [name=user]", "admin");
        set_field(&mut browser, "#signin [name=password]", "wrong");
        click(&mut browser, "#signin button");
        browser.wait_for("!!document.getElementById('signin') && document.querySelector('main p.muted').textContent.includes('refused')", WAIT);
        set_field(&mut browser, "#signin [name=user]", "admin");
        set_field(&mut browser, "#signin [name=password]", "admin-secret");
        click(&mut browser, "#signin button");
        browser.wait_for("document.body.dataset.loaded === '/'", WAIT);
        assert_eq!(browser.eval("document.querySelector('#cards [data-k=brokers] .value').textContent"), "1");
        browser.wait_for("document.getElementById('who').textContent === 'signed in as admin'", WAIT);
    });
}
