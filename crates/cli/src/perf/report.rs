//! Throughput and latency figures, printed for people or as one JSON line.

use std::time::Duration;

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};

/// Latency histogram in microseconds, 1 µs to 60 s, three significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

pub struct Report<'a> {
    pub name: &'a str,
    pub messages: u64,
    pub bytes: u64,
    pub elapsed: Duration,
    pub latency_us: &'a Histogram<u64>,
    pub latency_label: &'a str,
    pub errors: u64,
}

impl Report<'_> {
    pub fn print(&self, json: bool) {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        let msgs_per_s = self.messages as f64 / secs;
        let mb_per_s = self.bytes as f64 / secs / 1e6;
        let h = self.latency_us;
        let ms = |q: f64| if h.is_empty() { 0.0 } else { h.value_at_quantile(q) as f64 / 1000.0 };
        let max = if h.is_empty() { 0.0 } else { h.max() as f64 / 1000.0 };
        if json {
            let line = serde_json::json!({
                "test": self.name,
                "messages": self.messages,
                "bytes": self.bytes,
                "elapsed_s": secs,
                "msgs_per_s": msgs_per_s,
                "mb_per_s": mb_per_s,
                "latency": self.latency_label,
                "p50_ms": ms(0.5),
                "p99_ms": ms(0.99),
                "p999_ms": ms(0.999),
                "max_ms": max,
                "errors": self.errors,
            });
            println!("{line}");
        } else {
            println!(
                "{}: {} msgs, {:.1} MB in {:.2} s: {:.0} msgs/s, {:.1} MB/s; {} latency p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms; {} errors",
                self.name, self.messages, self.bytes as f64 / 1e6, secs, msgs_per_s, mb_per_s, self.latency_label,
                ms(0.5), ms(0.99), ms(0.999), max, self.errors
            );
        }
    }
}

/// A progress bar on stderr; invisible when stderr is not a terminal or with --json.
pub fn progress(total: u64, json: bool) -> ProgressBar {
    if json {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{bar:40}] {human_pos}/{human_len} msgs ({percent}%, eta {eta})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar
}
