#!/usr/bin/env bash
# Fuzzes Runnel's decoders and file readers with libFuzzer (cargo-fuzz, nightly).
#
#   scripts/fuzz.sh [seconds-per-target] [target...]
#
# Builds the targets of fuzz/ (its own workspace and target directory), then runs each
# given target (default: all) for the given time (default 60 s), niced, with its seed
# corpus (fuzz/corpus/<target>) and its regression inputs (fuzz/regressions/<target>).
# New inputs libFuzzer finds go to fuzz/work/<target>/, its log to fuzz/work/<target>.log,
# crash inputs to fuzz/artifacts/<target>/ (all ignored by git). Prints the executions per
# target and exits non-zero if any target crashed (a panic, an allocation above
# -malloc_limit_mb, RSS above -rss_limit_mb, or a timeout).
#
# A crash input becomes a regression test once it is copied (minimized: `cargo +nightly
# fuzz tmin <target> <file>` in fuzz/) into fuzz/regressions/<target>/; the stable test
# suite replays every corpus and regression file (crates/*/tests/fuzz_corpus.rs).
#
# The regression inputs are part of the run's corpus, so a crash that is recorded there but
# not fixed yet fails its target at once. To explore past known crashes, let libFuzzer go on
# after them: FUZZ_FLAGS="-fork=1 -ignore_crashes=1" scripts/fuzz.sh 600 group_records
#
# Needs: rustup's nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
# Extra libFuzzer flags go in FUZZ_FLAGS.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

ALL_TARGETS=(request_frame record_batch group_records metadata_records quorum_messages storage_files sasl_messages)
seconds=60
if [[ $# -gt 0 && $1 =~ ^[0-9]+$ ]]; then
  seconds=$1
  shift
fi
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  targets=("${ALL_TARGETS[@]}")
fi
for target in "${targets[@]}"; do
  if [[ ! " ${ALL_TARGETS[*]} " =~ " ${target} " ]]; then
    echo "unknown target '$target'; targets: ${ALL_TARGETS[*]}" >&2
    exit 2
  fi
done

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "needs the nightly toolchain and cargo-fuzz: rustup toolchain install nightly; cargo install cargo-fuzz" >&2
  exit 2
fi

for target in "${targets[@]}"; do
  nice -n 10 cargo +nightly fuzz build "$target"
done

declare -A executions
declare -A outcome
failed=0
for target in "${targets[@]}"; do
  work="work/$target"
  mkdir -p "$work" "artifacts/$target" "regressions/$target"
  log="work/$target.log"
  echo "== $target: ${seconds}s"
  artifacts_before=$(find "artifacts/$target" -type f | wc -l)
  status=0
  # The first corpus directory is the one libFuzzer writes new inputs to.
  nice -n 10 cargo +nightly fuzz run "$target" "$work" "corpus/$target" "regressions/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=512 -timeout=60 \
    -print_final_stats=1 ${FUZZ_FLAGS:-} >"$log" 2>&1 || status=$?
  runs=$(grep -oE '^Done [0-9]+ runs' "$log" | tail -1 | grep -oE '[0-9]+' || true)
  if [[ -z $runs ]]; then
    runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | tail -1 | grep -oE '[0-9]+$' || true)
  fi
  if [[ -z $runs ]]; then # fork mode
    runs=$(grep -oE '^#[0-9]+: cov' "$log" | tail -1 | grep -oE '[0-9]+' || true)
  fi
  executions[$target]=${runs:-?}
  # Fork mode with -ignore_crashes can exit 0 after crashes; new artifacts tell.
  if [[ $status -eq 0 && $(find "artifacts/$target" -type f | wc -l) -gt $artifacts_before ]]; then
    status=1
  fi
  if [[ $status -ne 0 ]]; then
    failed=1
    outcome[$target]="CRASH (exit $status)"
    echo "-- $target crashed; from its log (fuzz/$log):"
    pattern='panicked at|ERROR: libFuzzer|ERROR: AddressSanitizer|SUMMARY|out-of-memory|malloc\(|Test unit written'
    grep -E -m 8 -A 1 "$pattern" "$log" | cut -c 1-300 || tail -n 20 "$log" | cut -c 1-300
  else
    outcome[$target]=ok
  fi
done

echo
printf '%-18s %14s  %s\n' target executions result
for target in "${targets[@]}"; do
  printf '%-18s %14s  %s\n' "$target" "${executions[$target]}" "${outcome[$target]}"
done
exit $failed
