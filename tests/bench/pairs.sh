#!/usr/bin/env bash
# The server against the floor (crates/server/examples/floor.rs), alternately in one window: PAIRS
# pairs of the same `distinct` runs of `agreements bench`, each with the machine's bound measured
# right before and after it, the server first in odd pairs and the floor first in even ones. Each
# gateway gets a closed-loop run (answers/s ÷ signs/s, server CPU per answer ÷ (one sign + one
# verify)) and an open-loop run at half of the server's saturation (the first pair's closed-loop
# answers/s ÷ 2, or `RATE`: p99 and p99.9 ÷ one sign). It prints each pair, the medians, and the
# server's ratios over the floor's pair by pair: the machine's noise moves each ratio by ±10 % from
# one run to the next, the server's share of it much less (BENCHMARKS.md, "The floor").
#
#   tests/bench/pairs.sh [PAIRS]        (default 4)
#
# Run it from a directory holding the bench's keys (`agreements keygen --name app`, `--name
# platform`), a world (`W`, default w5) and the server's configuration (`s.toml`) serving that
# world's database. `A` names the `agreements` binary and `F` the floor (defaults: this checkout's
# release builds: `cargo build --release --bin agreements --example floor -p agreements-server`);
# `POOL` and `DURATION` size each run (default 70000 requests, 10 s: a pool larger than a run
# sends no request twice). The server runs with the signature cache off, on port 8080; the floor on
# 8081, with `node.json` as its answer node when the directory has one.
set -euo pipefail

pairs=${1:-4}
here=$(cd "$(dirname "$0")/../.." && pwd)
A=${A:-$here/target/release/agreements}
F=${F:-$here/target/release/examples/floor}
W=${W:-w5}
POOL=${POOL:-70000}
DURATION=${DURATION:-10}
node=()
[ -f node.json ] && node=(node.json)

# Runs one gateway (`server` or `floor`) under the bench, closed loop then open loop at `rate`;
# prints "answers/s answers/s-ratio cpu-ratio p99-ratio p99.9-ratio".
measure() {
    local port log=pairs.$1.log
    case $1 in
    server)
        port=8080
        AGREEMENTS_SIGNATURE_CACHE=false "$A" serve --config s.toml > pairs.serve.log 2>&1 &
        ;;
    floor)
        port=8081
        "$F" 127.0.0.1:$port app_public_key_spki.pem platform_private_key_pkcs1.pem "${node[@]}" \
            > pairs.floor-serve.log 2>&1 &
        ;;
    esac
    running=$!
    # Each measure runs in a subshell of its own: the gateway goes with it, whatever happens.
    trap 'kill $running 2> /dev/null || true' EXIT
    for _ in $(seq 100); do
        curl -s -o /dev/null "http://127.0.0.1:$port/" && break
        kill -0 "$running" 2> /dev/null || { echo "the $1 did not start" >&2; exit 1; }
        sleep 0.1
    done
    local bench=("$A" bench --app-id 2021000000000001 --app-key app_private_key_pkcs1.pem
        --platform-key platform_public_key_spki.pem --gateway "http://127.0.0.1:$port/gateway.do"
        --server-pid "$running" --world "$W" --mix distinct --pool "$POOL" --duration "$DURATION")
    "${bench[@]}" --concurrency 16 > "$log" 2>&1 \
        || { echo "the bench against the $1 failed: see $log" >&2; exit 1; }
    local answered
    answered=$(sed -n 's/^closed loop.*: \([0-9]*\) answers\/s.*/\1/p' "$log")
    [ -n "$rate" ] || rate=$((answered / 2))
    "${bench[@]}" --concurrency 256 --rate "$rate" >> "$log" 2>&1 \
        || { echo "the bench against the $1 failed: see $log" >&2; exit 1; }
    kill "$running"
    wait "$running" 2> /dev/null || true
    cat "$log" >> pairs.all.log
    local throughput cpu tail
    throughput=$(sed -n 's/^ratio: answers\/s ÷ signs\/s = \([0-9.]*\).*/\1/p' "$log" | head -1)
    cpu=$(sed -n 's/^ratio: server CPU per answer ÷ (one sign + one verify) = \([0-9.]*\).*/\1/p' \
        "$log" | head -1)
    tail=$(sed -n 's/^ratio: p99 ÷ one sign = \([0-9.]*\).*p99.9 ÷ one sign = \([0-9.]*\).*/\1 \2/p' "$log")
    [ -n "$throughput" ] && [ -n "$cpu" ] && [ -n "$tail" ] || { echo "no ratios in $log" >&2; exit 1; }
    echo "$answered $throughput $cpu $tail"
}

: > pairs.all.log
rate=${RATE:-}
results=()
for pair in $(seq "$pairs"); do
    order=(server floor)
    [ $((pair % 2)) -eq 0 ] && order=(floor server)
    declare -A got=()
    for gateway in "${order[@]}"; do
        got[$gateway]=$(measure "$gateway")
        # The open-loop rate, fixed by the window's first closed-loop run of the server.
        [ -n "$rate" ] || rate=$(($(echo "${got[server]}" | cut -d' ' -f1) / 2))
    done
    echo "pair $pair (${order[0]} first; answers/s, ÷ signs/s, CPU ÷ (sign + verify), p99 and" \
        "p99.9 ÷ one sign at $rate/s): server ${got[server]}, floor ${got[floor]}"
    results+=("${got[server]} ${got[floor]}")
    unset got
done

printf '%s\n' "${results[@]}" | python3 -c '
import statistics, sys
rows = [list(map(float, line.split())) for line in sys.stdin]
names = ["answers/s ÷ signs/s", "server CPU per answer ÷ (one sign + one verify)",
         "open loop p99 ÷ one sign", "open loop p99.9 ÷ one sign"]
print(f"medians of {len(rows)} pairs (server, floor; then the server over the floor, pair by pair):")
for i, name in enumerate(names, start=1):
    server, floor = [r[i] for r in rows], [r[5 + i] for r in rows]
    over = [s / f for s, f in zip(server, floor)]
    print(f"  {name}: {statistics.median(server):.2f}, {statistics.median(floor):.2f}; "
          f"{statistics.median(over):.3f} (" + ", ".join(f"{o:.2f}" for o in over) + ")")
'
