-- The read-access audit trail: one row per answered read or change of a person's agreements
-- (who asked, for whom, what was returned, the outcome). Written in batches by the server's
-- audit writer; pruned by age (`agreements audit prune`). `id` is time-ordered: the answer's
-- time in milliseconds (13 digits), then the writing process's tag and sequence number; pruning
-- deletes a range of it (no index of its own on the time: each index costs every insert).
CREATE TABLE audit_entries (
    id            TEXT PRIMARY KEY,
    at_ms         INTEGER NOT NULL,
    channel       TEXT NOT NULL,
    method        TEXT NOT NULL,
    app_id        TEXT,
    partner_id    TEXT,
    isv_app_id    TEXT,
    token_suffix  TEXT,
    user_id       TEXT,
    asked         TEXT,
    returned      INTEGER NOT NULL,
    agreement_nos TEXT NOT NULL,
    code          TEXT NOT NULL,
    sub_code      TEXT
) WITHOUT ROWID;
-- `agreements audit --person` (each account of the person), newest last.
CREATE INDEX audit_by_user ON audit_entries (user_id, at_ms);
-- `agreements audit --app`.
CREATE INDEX audit_by_app ON audit_entries (app_id, at_ms);
