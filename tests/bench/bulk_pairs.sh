#!/usr/bin/env bash
# A fresh load against the database's own bulk rate for the same rows (tests/bench/bulk_bound.py),
# alternately in one window: PAIRS pairs of an `agreements import` of WORLD into an empty database
# and the yardstick run on the rows a load wrote, the load first in odd pairs and the yardstick
# first (on the previous pair's database) in even ones. It prints each pair's seconds and the
# load's rate over the yardstick's (the yardstick's seconds ÷ the load's), then the medians: the
# machine moves each figure by ±10 % from one run to the next, so a ratio is only worth the runs
# next to each other (BENCHMARKS.md, item 5 of issue 18).
#
#   tests/bench/bulk_pairs.sh WORLD [PAIRS]        (default 3)
#
# SQLite always: each load into a new file, the yardstick with `--journal DELETE` (a fresh load
# alone with its file writes through a rollback journal), giving the engine's copy and the
# `sqlite3` shell's `.import`. PostgreSQL too when `PG` holds a URL (psql's form, e.g.
# postgresql://postgres@127.0.0.1:5432/test): each load into a new schema `bulk_pairs`. `A`
# names the `agreements` binary (default: this checkout's release build). Files go to the
# current directory (`bulk_pairs.*`); a 10^6-agreement world needs about 2 GB free, 10^7 about 20.
set -euo pipefail

world=${1:?usage: bulk_pairs.sh WORLD [PAIRS]}
pairs=${2:-3}
here=$(cd "$(dirname "$0")/../.." && pwd)
A=${A:-$here/target/release/agreements}
bound="$here/tests/bench/bulk_bound.py"
PG=${PG:-}

# The seconds of `agreements import`'s summary line ("N rows in S s (R rows/s)").
import_seconds() {
    sed -n 's/^[0-9]* rows in \([0-9.]*\) s .*/\1/p' "$1" | tail -1
}

# The seconds of a bulk_bound.py line starting with "$2" ("...; S s in all: ...").
bound_seconds() {
    grep "^$2" "$1" | sed -n 's/.*; \([0-9.]*\) s in all.*/\1/p' | tail -1
}

sqlite_load() {
    rm -f "$1" "$1"-journal "$1"-wal "$1"-shm
    "$A" import "$world" --database "$1" -q > bulk_pairs.load.log 2>&1 \
        || { echo "the load failed: see bulk_pairs.load.log" >&2; exit 1; }
    import_seconds bulk_pairs.load.log
}

sqlite_bound() {
    python3 "$bound" --sqlite "$1" --journal DELETE > bulk_pairs.bound.log 2>&1 \
        || { echo "the yardstick failed: see bulk_pairs.bound.log" >&2; exit 1; }
    echo "$(bound_seconds bulk_pairs.bound.log "sqlite, the engine's copy") \
$(bound_seconds bulk_pairs.bound.log "sqlite, the sqlite3 shell's .import")"
}

pg_url() {
    echo "${PG%%\?*}?options=-c%20search_path%3D$1"
}

pg_load() {
    psql -X -q "$PG" -c "DROP SCHEMA IF EXISTS $1 CASCADE" -c "CREATE SCHEMA $1" > /dev/null 2>&1
    "$A" import "$world" --database "$(pg_url "$1" | sed 's/^postgresql:/postgres:/')" -q \
        > bulk_pairs.pgload.log 2>&1 \
        || { echo "the PostgreSQL load failed: see bulk_pairs.pgload.log" >&2; exit 1; }
    import_seconds bulk_pairs.pgload.log
}

pg_bound() {
    python3 "$bound" --postgres "$PG" --schema "$1" > bulk_pairs.pgbound.log 2>&1 \
        || { echo "the PostgreSQL yardstick failed: see bulk_pairs.pgbound.log" >&2; exit 1; }
    bound_seconds bulk_pairs.pgbound.log "postgres"
}

ratio() {
    awk -v b="$1" -v l="$2" 'BEGIN { printf "%.2f", b / l }'
}

median() {
    sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

: > bulk_pairs.sqlite.tsv
: > bulk_pairs.pg.tsv
echo "pair  SQLite: load s  copy s  .import s  load÷copy  load÷.import$([ -n "$PG" ] && echo "  |  PostgreSQL: load s  COPY s  load÷COPY")"
for pair in $(seq "$pairs"); do
    db=bulk_pairs.$((pair % 2)).db
    previous=bulk_pairs.$(((pair + 1) % 2)).db
    if ((pair % 2)) || [ ! -f "$previous" ]; then
        load=$(sqlite_load "$db")
        yardstick=$(sqlite_bound "$db")
    else
        yardstick=$(sqlite_bound "$previous")
        load=$(sqlite_load "$db")
    fi
    read -r copy import <<< "$yardstick"
    line=$(printf '%4d  %14s  %6s  %9s  %9s  %12s' "$pair" "$load" "$copy" "$import" \
        "$(ratio "$copy" "$load")" "$(ratio "$import" "$load")")
    printf '%s\t%s\t%s\n' "$load" "$(ratio "$copy" "$load")" "$(ratio "$import" "$load")" \
        >> bulk_pairs.sqlite.tsv
    if [ -n "$PG" ]; then
        if ((pair % 2)); then
            pg=$(pg_load bulk_pairs)
            copy_pg=$(pg_bound bulk_pairs)
        else
            copy_pg=$(pg_bound bulk_pairs)
            pg=$(pg_load bulk_pairs)
        fi
        line="$line  |  $(printf '%18s  %6s  %9s' "$pg" "$copy_pg" "$(ratio "$copy_pg" "$pg")")"
        printf '%s\t%s\n' "$pg" "$(ratio "$copy_pg" "$pg")" >> bulk_pairs.pg.tsv
    fi
    echo "$line"
done
echo "medians: SQLite load $(cut -f1 bulk_pairs.sqlite.tsv | median) s," \
    "load÷copy $(cut -f2 bulk_pairs.sqlite.tsv | median)," \
    "load÷.import $(cut -f3 bulk_pairs.sqlite.tsv | median) (target ≥ 0.8)"
if [ -n "$PG" ]; then
    echo "medians: PostgreSQL load $(cut -f1 bulk_pairs.pg.tsv | median) s," \
        "load÷COPY $(cut -f2 bulk_pairs.pg.tsv | median) (target ≥ 0.8)"
    psql -X -q "$PG" -c "DROP SCHEMA IF EXISTS bulk_pairs CASCADE" > /dev/null 2>&1
fi
rm -f bulk_pairs.[01].db bulk_pairs.[01].db-journal bulk_pairs.[01].db-wal
