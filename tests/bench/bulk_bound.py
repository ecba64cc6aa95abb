#!/usr/bin/env python3
"""The database's own bulk rate for the rows a load wrote: the bound `agreements import` is
measured against (BENCHMARKS.md).

It copies every loaded table of a database that `agreements import` filled into an empty one of
the same schema, the way a bulk loader at the database's own speed would fill it, and times it:

- SQLite (`--sqlite SOURCE.db`): a new file with the same tables (primary keys and UNIQUE
  constraints are part of a SQLite table), foreign keys off, one transaction of
  `INSERT INTO t SELECT * FROM source.t ORDER BY <primary key>` per table (rows arrive in key
  order: the key's B-tree is only appended to), then every secondary index built;
- PostgreSQL (`--postgres URL --schema S`): a new schema with each table as bare columns
  (`LIKE ... INCLUDING DEFAULTS`: no keys, no indexes, no foreign keys), `COPY ... FROM STDIN`
  of each table's rows in key order, then the primary keys, unique constraints, indexes and
  foreign keys of S added (each built or checked in one pass).

It prints the rows, the seconds of each phase, and rows/s; the agreements alone are given too.
Timing only the destination's work: the source is read first (SQLite: a first pass warms the
file in the OS cache; PostgreSQL: each table's rows are copied out to a file before the clock).
"""

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time

# What `agreements import` fills (an agreement brings its import event), in load order (a
# table's references come before it).
LOADED = [
    "merchant_groups", "merchants", "products", "product_pairs", "merchant_contracts", "apps",
    "app_keys", "app_methods", "customers", "accounts", "logon_ids", "open_ids", "agreements",
    "agreement_events",
]


def sqlite_bound(source):
    src = sqlite3.connect(source)
    tables = dict(src.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'"))
    indexes = [sql for (sql,) in src.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
        "AND tbl_name IN (%s)" % ",".join("?" * len(LOADED)), LOADED)]
    counts = {t: src.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in LOADED}
    src.close()
    with open(source, "rb") as f:  # warm the OS cache: the clock measures the writes
        while f.read(1 << 24):
            pass
    out_dir = tempfile.mkdtemp(prefix="bulk-bound-")
    dest_path = os.path.join(out_dir, "bound.db")
    dest = sqlite3.connect(dest_path, isolation_level=None)
    dest.execute("PRAGMA journal_mode = WAL")
    dest.execute("PRAGMA synchronous = NORMAL")
    dest.execute("PRAGMA foreign_keys = OFF")
    dest.execute("PRAGMA cache_size = -262144")
    for t in LOADED:
        dest.execute(tables[t])
    dest.execute("ATTACH DATABASE ? AS source", (source,))
    started = time.monotonic()
    dest.execute("BEGIN")
    for t in LOADED:
        key = primary_key(dest, t)
        dest.execute(f'INSERT INTO main."{t}" SELECT * FROM source."{t}" ORDER BY {key}')
    dest.execute("COMMIT")
    inserted = time.monotonic()
    dest.execute("BEGIN")
    for sql in indexes:
        dest.execute(sql)
    dest.execute("COMMIT")
    done = time.monotonic()
    dest.close()
    report("sqlite", counts, inserted - started, done - inserted)
    os.remove(dest_path)


def primary_key(conn, table):
    cols = [(pk, name) for (_, name, _, _, _, pk) in conn.execute(f'PRAGMA table_info("{table}")') if pk]
    return ", ".join(f'"{name}"' for _, name in sorted(cols)) or "rowid"


def psql(url, sql, stdin=None, stdout=None):
    env = dict(os.environ, PGOPTIONS="-c client_min_messages=warning")
    return subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", url, "-c", sql],
                          stdin=stdin, stdout=stdout or subprocess.PIPE, check=True,
                          text=stdin is None, env=env)


def postgres_bound(url, schema):
    bound = schema + "_bound"
    q = lambda sql: psql(url, sql).stdout.strip()
    counts = {t: int(q(f'SELECT count(*) FROM "{schema}"."{t}"')) for t in LOADED}
    names = "'" + "','".join(LOADED) + "'"
    constraints = f"""FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid
        JOIN pg_namespace n ON n.oid = t.relnamespace
        WHERE n.nspname = '{schema}' AND t.relname IN ({names})"""
    keys = q(f"""SELECT string_agg(format('ALTER TABLE %I.%I ADD CONSTRAINT %I %s', '{bound}',
        t.relname, c.conname, pg_get_constraintdef(c.oid)), E';\n'
        ORDER BY c.contype DESC, t.relname) {constraints} AND c.contype IN ('p', 'u')""")
    fks = q(f"""SELECT string_agg(format('ALTER TABLE %I.%I ADD CONSTRAINT %I %s', '{bound}',
        t.relname, c.conname, pg_get_constraintdef(c.oid)), E';\n') {constraints}
        AND c.contype = 'f'""")
    indexes = q(f"""SELECT string_agg(replace(indexdef, ' ON {schema}.', ' ON {bound}.'), E';\n')
        FROM pg_indexes WHERE schemaname = '{schema}' AND tablename IN ({names})
        AND indexname NOT IN (SELECT c.conname {constraints})""")
    # Foreign keys name their referenced tables unqualified when the search path finds them:
    # run them with the bound schema first on the path.
    fks = f'SET search_path = "{bound}"; {fks}' if fks else fks
    psql(url, f'DROP SCHEMA IF EXISTS "{bound}" CASCADE; CREATE SCHEMA "{bound}"')
    for t in LOADED:
        psql(url, f'CREATE TABLE "{bound}"."{t}" (LIKE "{schema}"."{t}" INCLUDING DEFAULTS)')
    files = {}
    tmp = tempfile.mkdtemp(prefix="bulk-bound-")
    for t in LOADED:
        files[t] = os.path.join(tmp, t)
        with open(files[t], "wb") as f:
            key = q(f"""SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY array_position(i.indkey, a.attnum))
                FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
                WHERE i.indrelid = '"{schema}"."{t}"'::regclass AND i.indisprimary""") or "1"
            psql(url, f'COPY (SELECT * FROM "{schema}"."{t}" ORDER BY {key}) TO STDOUT', stdout=f)
    started = time.monotonic()
    for t in LOADED:
        with open(files[t], "rb") as f:
            psql(url, f'COPY "{bound}"."{t}" FROM STDIN', stdin=f)
    copied = time.monotonic()
    psql(url, ";\n".join(s for s in [keys, indexes] if s))
    built = time.monotonic()
    if fks:
        psql(url, fks)
    done = time.monotonic()
    report("postgres", counts, copied - started, done - copied,
           f" (keys and indexes {built - copied:.1f} s, {fks.count('FOREIGN KEY')} foreign keys "
           f"{done - built:.1f} s)")
    psql(url, f'DROP SCHEMA "{bound}" CASCADE')
    for f in files.values():
        os.remove(f)


def report(backend, counts, load_s, index_s, detail=""):
    rows = sum(counts.values())
    total = load_s + index_s
    print(f"{backend}: {rows} rows ({counts['agreements']} agreements): rows {load_s:.1f} s, "
          f"indexes {index_s:.1f} s{detail}; {total:.1f} s in all: {rows / total:.0f} rows/s, "
          f"{counts['agreements'] / total:.0f} agreements/s")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sqlite", help="a SQLite database `agreements import` filled")
    parser.add_argument("--postgres", help="a PostgreSQL URL (psql's form)")
    parser.add_argument("--schema", default="public", help="the schema the import filled")
    args = parser.parse_args()
    if args.sqlite:
        sqlite_bound(args.sqlite)
    elif args.postgres:
        postgres_bound(args.postgres, args.schema)
    else:
        parser.error("give --sqlite FILE or --postgres URL")


if __name__ == "__main__":
    sys.exit(main())
