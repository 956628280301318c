#!/usr/bin/env bash
# Runs every test: lints, unit and property tests, the integration suite (real runnel
# processes driven by librdkafka), and the cross-client smoke suite (kcat, confluent-kafka,
# kafka-python) and the web console in headless Chromium. Needs kcat, Chromium, the two
# Python clients and moto (S3): .ci/run installs them.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi
cargo build --quiet -p runnel
python3 scripts/smoke/smoke.py
