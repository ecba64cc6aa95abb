#!/usr/bin/env bash
# Runs fuzz targets for SECONDS each (default 30): `fuzz/run.sh [SECONDS] [TARGET…]`, all four
# targets when none is named. Seeds the corpus from the vectors first (fuzz/seed.py; set
# AGREEMENTS_BIN to a built `agreements` for the import-file seeds). Uses the nightly toolchain
# when rustup has one, else the stable compiler with RUSTC_BOOTSTRAP=1 (cargo fuzz needs -Z
# flags). Builds go to $CARGO_TARGET_DIR/fuzz (default target/fuzz). A crash stops the run
# with the input under fuzz/artifacts/TARGET/.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-30}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(gateway_request biz_content keys_and_signatures import_lines)
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --version 0.13.2 --locked
fi
toolchain=()
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    toolchain=(+nightly)
else
    export RUSTC_BOOTSTRAP=1
fi
target_dir=${CARGO_TARGET_DIR:-$PWD/../target}/fuzz
python3 seed.py ${AGREEMENTS_BIN:+"$AGREEMENTS_BIN"}
cargo "${toolchain[@]}" fuzz build --target-dir "$target_dir" 2>&1 | tail -n 3
for t in "${targets[@]}"; do
    log=$(mktemp)
    if ! cargo "${toolchain[@]}" fuzz run --target-dir "$target_dir" "$t" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
        >"$log" 2>&1; then
        tail -n 60 "$log"
        echo "fuzz target $t failed; the input is under fuzz/artifacts/$t/" >&2
        exit 1
    fi
    runs=$(awk '/^stat::number_of_executed_units/ {print $2}' "$log")
    cov=$(awk '/DONE/ {for (i = 1; i < NF; i++) if ($i == "cov:") c = $(i + 1)} END {print c}' "$log")
    corpus=$(find "corpus/$t" -type f | wc -l)
    echo "$t: ${runs:-?} executions in ${seconds} s, ${cov:-?} coverage points, corpus ${corpus}, no crash"
    rm -f "$log"
done
