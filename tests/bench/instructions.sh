#!/usr/bin/env bash
# Instructions per answer of a gateway under callgrind, split into the RSA sign, the RSA verify
# and everything else: the machine-independent count of what a server does beside the two RSA
# operations (BENCHMARKS.md, "The floor"). Wall-clock ratios on the project machine move by 10 %
# from one run to the next; these counts do not.
#
#   tests/bench/instructions.sh NAME PORT -- SERVER COMMAND...
#
# Run it from a directory holding the bench's keys (`agreements keygen --name app`, `--name
# platform`) and a world (`W`, default w5) whose database the server serves; `A` names the
# `agreements` binary (default: target/release/agreements of this checkout). The server runs
# under callgrind, answers 300 `member-center` requests to warm up (not counted), then 1,000
# `distinct` ones at 20/s (counted). Examples, from such a directory:
#
#   AGREEMENTS_SIGNATURE_CACHE=false $W/tests/bench/instructions.sh server 8080 -- \
#       $A serve --config s.toml
#   $W/tests/bench/instructions.sh floor 8081 -- $W/target/release/examples/floor \
#       127.0.0.1:8081 app_public_key_spki.pem platform_private_key_pkcs1.pem
#
# Under valgrind OpenSSL takes its generic big-number code (valgrind does not offer every CPU
# extension), so the RSA counts are higher than a native run would execute: compare the "rest"
# column between servers, not the RSA columns with wall-clock figures.
set -euo pipefail

name=$1 port=$2
shift 3
here=$(cd "$(dirname "$0")/../.." && pwd)
A=${A:-$here/target/release/agreements}
W=${W:-w5}
bench=("$A" bench --app-id 2021000000000001 --app-key app_private_key_pkcs1.pem
    --platform-key platform_public_key_spki.pem --gateway "http://127.0.0.1:$port/gateway.do"
    --world "$W" --no-bound --pool 3000 --rate 20 --warmup 0 --concurrency 4)

out=callgrind.$name
rm -f "$out".*
valgrind --tool=callgrind --callgrind-out-file="$out.out" "$@" > "$out.log" 2>&1 &
server=$!
trap 'kill $server 2> /dev/null || true' EXIT
for _ in $(seq 120); do
    sleep 1
    curl -s -o /dev/null "http://127.0.0.1:$port/" && break
done
kill -0 $server 2> /dev/null || { echo "the server did not start: see $out.log" >&2; exit 1; }
"${bench[@]}" --mix member-center --duration 15 > "$out.warm" 2>&1
callgrind_control -z $server > /dev/null 2>&1
"${bench[@]}" --mix distinct --duration 50 --verify-every 0 > "$out.run" 2>&1
callgrind_control -d $server > /dev/null 2>&1
# The dump is written when one of the server's threads next runs: poke it until the file is there.
for _ in $(seq 60); do
    ls "$out".out.* > /dev/null 2>&1 && break
    curl -s -o /dev/null "http://127.0.0.1:$port/" || true
    sleep 1
done
sleep 1
kill $server
wait $server 2> /dev/null || true

answered=$(grep -o '[0-9]* answered' "$out.run" | grep -o '[0-9]*')
dump=$(ls -t "$out".out.* | head -1)
callgrind_annotate --inclusive=yes --threshold=100 "$dump" > "$out.txt" 2> /dev/null
count() { grep -m1 -E "$1" "$out.txt" | awk '{gsub(",", "", $1); print $1}' || true; }
total=$(count 'PROGRAM TOTALS')
sign=$(count 'PrivateKey::sign_digest \[')
verify=$(count 'PublicKey::verify \[')
# The audit trail's batch writes (the server only): at 20 answers/s each transaction carries
# about two entries, so its share per answer is larger here than at full rate.
audit=$(count 'AuditWriter::write::\{\{closure\}\} \[')
python3 - "$name" "$answered" "$total" "$sign" "$verify" "${audit:-0}" << 'EOF'
import sys
name, n, total, sign, verify, audit = sys.argv[1], *map(int, sys.argv[2:])
rest = total - sign - verify
print(f"{name}: {n} answers; instructions per answer: {total // n:,} "
      f"(the sign {sign // n:,}, the verify {verify // n:,}, the rest {rest // n:,}, "
      f"of which the audit trail's writes {audit // n:,})")
EOF
