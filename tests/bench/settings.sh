#!/usr/bin/env bash
# Server settings (or builds) against each other, alternately in one window: ROUNDS rounds of a
# closed-loop `distinct` run of `agreements bench` against each SETTING in turn, the order reversed
# in even rounds. Each run prints its answers/s ÷ signs/s and the server's work beside the sign and
# the verify (µs per answer, the bench's "each answer's core time" split); then the medians. The
# machine moves each figure by ±10 % from one run to the next, so only runs next to each other
# compare (BENCHMARKS.md, "Tenth window").
#
#   tests/bench/settings.sh ROUNDS SETTING...
#
# A SETTING is `LABEL=BINARY` or `LABEL=BINARY:VAR=VALUE,VAR=VALUE`: the `agreements` binary to
# serve with and the environment it gets (configuration variables, e.g. `AGREEMENTS_AUDIT=false`);
# `-` as BINARY is this checkout's release build. For example:
#
#   tests/bench/settings.sh 4 on=-:AGREEMENTS_AUDIT=true off=-:AGREEMENTS_AUDIT=false
#
# Run it from a directory holding the bench's keys (`agreements keygen --name app`, `--name
# platform`), a world (`W`, default w5) and the server's configuration (`s.toml`) serving that
# world's database. The signature cache is off in every run; the server listens on port 8080.
# `POOL` and `DURATION` size each run (default 50000 requests, 10 s).
set -euo pipefail

rounds=${1:?usage: settings.sh ROUNDS SETTING...}
shift
[ $# -gt 0 ] || { echo "usage: settings.sh ROUNDS SETTING..." >&2; exit 2; }
here=$(cd "$(dirname "$0")/../.." && pwd)
build=$here/target/release/agreements
W=${W:-w5}
POOL=${POOL:-50000}
DURATION=${DURATION:-10}

# One closed-loop run of one setting; appends "LABEL ratio work" to settings.results.
run() {
    local label=$1 binary=$2 vars=$3 env_args=() server out ratio work
    [ "$binary" = - ] && binary=$build
    [ -n "$vars" ] && IFS=, read -ra env_args <<< "$vars"
    env AGREEMENTS_SIGNATURE_CACHE=false "${env_args[@]}" "$binary" serve --config s.toml \
        > settings.serve.log 2>&1 &
    server=$!
    for _ in $(seq 100); do
        curl -s -o /dev/null http://127.0.0.1:8080/ && break
        kill -0 "$server" 2> /dev/null || { echo "$label: the server did not start (settings.serve.log)" >&2; exit 1; }
        sleep 0.1
    done
    out=$("$build" bench --app-id 2021000000000001 --app-key app_private_key_pkcs1.pem \
        --platform-key platform_public_key_spki.pem --world "$W" --mix distinct --pool "$POOL" \
        --duration "$DURATION" --concurrency 16 --server-pid "$server" 2>&1) || true
    kill "$server"
    wait "$server" 2> /dev/null || true
    echo "$out" >> settings.all.log
    ratio=$(grep -o 'answers/s ÷ signs/s = [0-9.]*' <<< "$out" | grep -o '[0-9.]*$' || true)
    work=$(grep -o "the server's other work [0-9-]*" <<< "$out" | grep -o '[0-9-]*$' || true)
    if [ -z "$ratio" ] || [ -z "$work" ]; then
        echo "$label: the run gave no figures (settings.all.log has its output)" >&2
        exit 1
    fi
    echo "$label $ratio $work" >> settings.results
    echo "$label: answers/s ÷ signs/s $ratio, the server's other work $work µs per answer"
}

rm -f settings.results settings.all.log
for round in $(seq "$rounds"); do
    order=("$@")
    if [ $((round % 2)) = 0 ]; then
        order=()
        for ((i = $#; i >= 1; i--)); do order+=("${!i}"); done
    fi
    for setting in "${order[@]}"; do
        label=${setting%%=*}
        rest=${setting#*=}
        binary=${rest%%:*}
        vars=""
        [ "$rest" != "$binary" ] && vars=${rest#*:}
        run "$label" "$binary" "$vars"
    done
done
python3 - << 'EOF'
import statistics
rows = {}
for line in open("settings.results"):
    label, ratio, work = line.split()
    rows.setdefault(label, []).append((float(ratio), int(work)))
print("medians (answers/s ÷ signs/s; the server's other work, µs per answer):")
for label, runs in rows.items():
    print(f"  {label}: {statistics.median(r for r, _ in runs):.2f}; "
          f"{statistics.median(w for _, w in runs):.0f} "
          f"({', '.join(str(w) for _, w in runs)})")
EOF
