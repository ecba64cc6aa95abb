-- An app's one open id per account, as an index of its own instead of a constraint of the
-- table: SQLite cannot drop a constraint's index, so a fresh load kept it and inserted into it
-- in random order (the rows arrive in key order, (app, open id)); an index of its own is dropped
-- for the load and built at the end by one sort, as agreements_by_external_no is. The rule is
-- the same.
CREATE TABLE open_ids_by_key (
    app_id      TEXT NOT NULL,
    open_id     TEXT NOT NULL,
    user_id     TEXT NOT NULL REFERENCES accounts (user_id),
    PRIMARY KEY (app_id, open_id)
);
INSERT INTO open_ids_by_key (app_id, open_id, user_id)
    SELECT app_id, open_id, user_id FROM open_ids ORDER BY app_id, open_id;
DROP TABLE open_ids;
ALTER TABLE open_ids_by_key RENAME TO open_ids;
CREATE UNIQUE INDEX open_ids_by_user ON open_ids (app_id, user_id);
