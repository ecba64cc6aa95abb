#!/usr/bin/env python3
"""The batch query's reads on SQLite under different layouts of the agreements (BENCHMARKS.md,
"Twelfth window"): CPU per ask of the account lookup and the agreements query, each ask in its own
read transaction as the server runs them, through the system `sqlite3` module.

    tests/bench/person_reads.py DATABASE LAYOUT [--group] [--asks N]

DATABASE is a world's SQLite file (`agreements import`); it is copied, the copy changed to LAYOUT
and vacuumed, then timed:
- `key`: `agreements_by_principal` on its key alone (migrations 2 to 10);
- `partner`: the index with `partner_id` after its four leading columns;
- `clustered`: the table keyed by person (the index's columns plus `partner_id`), `agreement_no`
  kept unique by an index;
- `covering`: the index with every other column after its key (migration 11).
The asks are N (default 30,000) of the world's live agreements, shuffled with a fixed seed: the
agreement's account and product, asked by its merchant, or with `--group` by its merchant's group
(third_party_type as stored). Python's own cost is in every figure; compare layouts, not the
figures with the server's.
"""
import argparse
import os
import random
import shutil
import sqlite3
import tempfile
import time

COLUMNS = ("agreement_no, partner_id, sign_app_id, principal_type, principal_id, alipay_user_id, "
           "personal_product_code, product_code, sign_scene, third_party_type, "
           "external_agreement_no, external_logon_id, status, sign_time, valid_time, "
           "invalid_time, unsign_time")
KEY = "principal_id, personal_product_code, principal_type, third_party_type"

LAYOUTS = {
    "key": f"""DROP INDEX agreements_by_principal;
        CREATE INDEX agreements_by_principal
            ON agreements ({KEY}, sign_time, agreement_no);""",
    "partner": f"""DROP INDEX agreements_by_principal;
        CREATE INDEX agreements_by_principal
            ON agreements ({KEY}, partner_id, sign_time, agreement_no);""",
    "clustered": f"""CREATE TABLE by_person ({COLUMNS}, PRIMARY KEY ({KEY}, partner_id, sign_time,
            agreement_no)) WITHOUT ROWID;
        INSERT INTO by_person SELECT {COLUMNS} FROM agreements;
        DROP TABLE agreements;
        ALTER TABLE by_person RENAME TO agreements;
        CREATE UNIQUE INDEX agreements_by_no ON agreements (agreement_no);""",
    "covering": f"""DROP INDEX agreements_by_principal;
        CREATE INDEX agreements_by_principal ON agreements ({KEY}, sign_time, agreement_no,
            partner_id, sign_app_id, alipay_user_id, product_code, sign_scene,
            external_agreement_no, external_logon_id, status, valid_time, invalid_time,
            unsign_time);""",
}


def query(group):
    """The store's agreements query for one scope (crates/store/src/ops/agreements.rs)."""
    columns = ", ".join("a." + c for c in COLUMNS.split(", "))
    select = (f"SELECT {columns}, m.group_id, o.open_id FROM agreements a "
              "JOIN merchants m ON m.partner_id = a.partner_id "
              "LEFT JOIN open_ids o ON o.app_id = ?1 AND o.user_id = a.principal_id")
    owner = "m.group_id = ?7" if group else "a.partner_id = ?7"
    where = ("AND a.personal_product_code = ?4 AND a.third_party_type = ?5 "
             f"AND a.invalid_time > ?6 AND {owner} AND a.status <> 'UNSIGN'")
    return (f"{select} WHERE a.principal_id = ?2 AND a.principal_type = 'CARD' {where} "
            f"UNION ALL {select} WHERE a.principal_id = ?3 AND a.principal_type = 'CUSTOMER' "
            f"{where} ORDER BY sign_time, agreement_no")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("database")
    parser.add_argument("layout", choices=LAYOUTS)
    parser.add_argument("--group", action="store_true")
    parser.add_argument("--asks", type=int, default=30000)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="person-reads-")
    path = os.path.join(work, "copy.db")
    shutil.copyfile(args.database, path)
    try:
        db = sqlite3.connect(path, isolation_level=None)
        db.executescript(LAYOUTS[args.layout])
        db.execute("VACUUM")
        now = int(time.time())
        owner = "m.group_id" if args.group else "a.partner_id"
        in_group = "m.group_id IS NOT NULL AND" if args.group else ""
        asks = db.execute(
            f"SELECT a.alipay_user_id, a.personal_product_code, a.third_party_type, {owner} "
            f"FROM agreements a JOIN merchants m USING (partner_id) WHERE {in_group} "
            f"a.status <> 'UNSIGN' AND a.invalid_time > {now} ORDER BY a.agreement_no").fetchall()
        random.Random(1).shuffle(asks)
        asks = asks[:args.asks]
        sql = query(args.group)
        rows = 0
        started = time.process_time()
        for user_id, product, third_party_type, owner_id in asks:
            db.execute("BEGIN")
            account = db.execute("SELECT user_id, customer_id FROM accounts WHERE user_id = ?1",
                                 (user_id,)).fetchone()
            rows += len(db.execute(sql, ("2021000000000001", account[0], account[1], product,
                                         third_party_type, now, owner_id)).fetchall())
            db.execute("COMMIT")
        spent = time.process_time() - started
        scope = "group" if args.group else "merchant"
        print(f"{args.layout}, {scope}: {len(asks)} asks, {rows} rows, "
              f"{1e6 * spent / max(len(asks), 1):.1f} µs per ask")
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
