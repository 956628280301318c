//! For tests only (the `test-support` feature): a real S3-compatible server, moto's
//! (`python3 -m moto.server`, a Python package `.ci/run` installs), on a free port of
//! 127.0.0.1 with one bucket made by boto3; stopped on drop. The tiered crate's backend
//! tests and the broker's end-to-end tests share it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct S3Server {
    child: Child,
    /// `127.0.0.1:port`.
    pub address: String,
}

impl S3Server {
    /// Starts the server and creates `bucket` (credentials `test`/`test`, `us-east-1`).
    pub fn start(bucket: &str) -> S3Server {
        let mut child = Command::new("python3")
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3 -m moto.server (pip install 'moto[s3]' flask flask-cors; .ci/run does)");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(address) = line.split("Running on http://").nth(1) {
                    let _ = tx.send(address.trim().to_string());
                }
            }
        });
        let address = rx.recv_timeout(Duration::from_secs(30)).expect("moto printed its address");
        let create = format!(
            "import boto3; boto3.client('s3', endpoint_url='http://{address}', aws_access_key_id='test', \
             aws_secret_access_key='test', region_name='us-east-1').create_bucket(Bucket='{bucket}')"
        );
        // The server may still be starting: the bucket is asked for until it is made.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let created = Command::new("python3").args(["-c", &create]).output().expect("python3");
            if created.status.success() {
                break;
            }
            assert!(Instant::now() < deadline, "bucket: {}", String::from_utf8_lossy(&created.stderr));
            std::thread::sleep(Duration::from_millis(100));
        }
        S3Server { child, address }
    }

    /// `http://127.0.0.1:port`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
