#!/usr/bin/env python3
"""The database's own bulk rate for the rows a load wrote: the bound `agreements import` is
measured against (BENCHMARKS.md).

It copies every loaded table of a database that `agreements import` filled into an empty one of
the same schema, the way a bulk loader at the database's own speed would fill it, and times it:

- SQLite (`--sqlite SOURCE.db`), two ways, each into a new file with the same tables (primary
  keys and UNIQUE constraints are part of a SQLite table), foreign keys off, then every secondary
  index built, the clock stopping when the database is closed (its WAL checkpointed into the
  file, as `agreements import` leaves it). The file is in WAL mode, or with `--journal DELETE`
  in rollback-journal mode, as a fresh load alone with its file writes it:
  - the engine's copy: one transaction of `INSERT INTO t SELECT * FROM source.t ORDER BY <primary
    key>` per table (rows arrive in key order: the key's B-tree is only appended to; no row is
    parsed or bound);
  - the database's own file loader: the `sqlite3` shell's `.import` of each table's rows as CSV
    files in key order, in one transaction (rows parsed and bound one by one, as any loader from
    files does). The shell's CSV cannot spell NULL: empty cells of nullable columns are set back
    to NULL before the indexes are built, off the clock;
- PostgreSQL (`--postgres URL --schema S`): a new schema with each table as bare columns
  (`LIKE ... INCLUDING DEFAULTS`: no keys, no indexes, no foreign keys), `COPY ... FROM STDIN`
  of each table's rows in key order, then the primary keys, unique constraints, indexes and
  foreign keys of S added (each built or checked in one pass).

It prints the rows, the seconds of each phase, and rows/s; the agreements alone are given too.
Timing only the destination's work: the source is read first (SQLite: a first pass warms the
file in the OS cache, and the CSV files are written before the clock; PostgreSQL: each table's
rows are copied out to a file before the clock).
"""

import argparse
import csv
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


def sqlite_bound(source, journal):
    src = sqlite3.connect(source)
    tables = dict(src.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'"))
    indexes = [sql for (sql,) in src.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
        "AND tbl_name IN (%s)" % ",".join("?" * len(LOADED)), LOADED)]
    counts = {t: src.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in LOADED}
    nullable = {t: [name for (_, name, _, notnull, _, pk) in src.execute(f'PRAGMA table_info("{t}")')
                    if not notnull and not pk] for t in LOADED}
    out_dir = tempfile.mkdtemp(prefix="bulk-bound-")
    csvs = {}
    for t in LOADED:
        csvs[t] = os.path.join(out_dir, t + ".csv")
        with open(csvs[t], "w", newline="") as f:
            writer = csv.writer(f)
            for row in src.execute(f'SELECT * FROM "{t}" ORDER BY {primary_key(src, t)}'):
                writer.writerow(["" if v is None else v for v in row])
    src.close()
    with open(source, "rb") as f:  # warm the OS cache: the clock measures the writes
        while f.read(1 << 24):
            pass

    def fresh(name):
        path = os.path.join(out_dir, name)
        dest = sqlite3.connect(path, isolation_level=None)
        for pragma in [f"journal_mode = {journal}", "synchronous = NORMAL", "foreign_keys = OFF",
                       "cache_size = -262144"]:
            dest.execute("PRAGMA " + pragma)
        for t in LOADED:
            dest.execute(tables[t])
        return path, dest

    def build(dest):
        """Builds the indexes and closes the file; returns the seconds that took. The sorts run
        as the fresh load runs them: in runs of a 4 MiB page cache, sorted on SQLite's helper
        thread while the table is read on (one run on the calling thread with a larger cache)."""
        dest.execute("PRAGMA threads = 2")
        dest.execute("PRAGMA cache_size = -4096")
        started = time.monotonic()
        dest.execute("BEGIN")
        for sql in indexes:
            dest.execute(sql)
        dest.execute("COMMIT")
        dest.close()
        return time.monotonic() - started

    path, dest = fresh("copy.db")
    dest.execute("ATTACH DATABASE ? AS source", (source,))
    started = time.monotonic()
    dest.execute("BEGIN")
    for t in LOADED:
        key = primary_key(dest, t)
        dest.execute(f'INSERT INTO main."{t}" SELECT * FROM source."{t}" ORDER BY {key}')
    dest.execute("COMMIT")
    dest.execute("DETACH DATABASE source")
    inserted = time.monotonic()
    report("sqlite, the engine's copy", counts, inserted - started, build(dest))
    os.remove(path)

    path, dest = fresh("import.db")
    dest.close()
    script = ".mode csv\nBEGIN;\n" + "".join(
        f".import '{csvs[t]}' \"{t}\"\n" for t in LOADED) + "COMMIT;\n"
    started = time.monotonic()
    subprocess.run(["sqlite3", "-bail", "-cmd", "PRAGMA synchronous = NORMAL",
                    "-cmd", "PRAGMA cache_size = -262144", path],
                   input=script, text=True, check=True)
    inserted = time.monotonic()
    dest = sqlite3.connect(path, isolation_level=None)
    dest.execute("PRAGMA cache_size = -262144")
    for t, columns in nullable.items():  # off the clock: the shell's CSV has no NULL
        for c in columns:
            dest.execute(f'UPDATE "{t}" SET "{c}" = NULL WHERE "{c}" = \'\'')
    for t in LOADED:  # the same rows, or the figure means nothing
        got = dest.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]
        if got != counts[t]:
            sys.exit(f"{t}: .import loaded {got} rows of {counts[t]}")
    report("sqlite, the sqlite3 shell's .import", counts, inserted - started, build(dest))
    os.remove(path)
    for f in csvs.values():
        os.remove(f)
    os.rmdir(out_dir)


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
    parser.add_argument("--journal", default="WAL", choices=["WAL", "DELETE"],
                        help="SQLite: the destination's journal mode (a fresh load alone with "
                             "its file writes through a rollback journal, DELETE; one that "
                             "shares it, through the WAL)")
    args = parser.parse_args()
    if args.sqlite:
        sqlite_bound(args.sqlite, args.journal)
    elif args.postgres:
        postgres_bound(args.postgres, args.schema)
    else:
        parser.error("give --sqlite FILE or --postgres URL")


if __name__ == "__main__":
    sys.exit(main())
