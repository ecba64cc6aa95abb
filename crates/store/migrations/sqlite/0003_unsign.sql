-- Agreement history gets its writer (unsign, import, operator changes): keyed by
-- (agreement_no, seq) in one B-tree. It never had rows before this version, so it is recreated.
DROP TABLE agreement_events;
CREATE TABLE agreement_events (
    agreement_no TEXT NOT NULL REFERENCES agreements (agreement_no),
    seq          INTEGER NOT NULL,
    kind         TEXT NOT NULL,
    old_status   TEXT,
    new_status   TEXT NOT NULL,
    actor        TEXT NOT NULL,
    reason       TEXT,
    at           INTEGER NOT NULL,
    PRIMARY KEY (agreement_no, seq)
) WITHOUT ROWID;

-- The notification outbox (agreements.md §7): written in the transaction of the change it
-- announces, delivered (and retried) by the delivery worker. `params` is the JSON object of the
-- unsigned form parameters; `notify_time`, `sign_type` and `sign` are added at each send.
CREATE TABLE notifications (
    notify_id       TEXT PRIMARY KEY,
    agreement_no    TEXT NOT NULL REFERENCES agreements (agreement_no),
    notify_type     TEXT NOT NULL,
    url             TEXT NOT NULL,
    sign_type       TEXT NOT NULL CHECK (sign_type IN ('RSA2', 'RSA')),
    params          TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('PENDING', 'DELIVERED', 'FAILED')),
    attempts        INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    last_attempt_at INTEGER,
    last_error      TEXT,
    delivered_at    INTEGER
) WITHOUT ROWID;
-- The worker's claim: the due pending ones, oldest due first (a range scan that stops at LIMIT).
CREATE INDEX notifications_due ON notifications (state, next_attempt_at, notify_id);
-- Operators' lists by state, oldest first.
CREATE INDEX notifications_by_state ON notifications (state, created_at, notify_id);
CREATE INDEX notifications_by_agreement ON notifications (agreement_no);

-- A logon id of an account, for the masked `alipay_logon_id` of query answers and notifications
-- (`logon_id_of`): without it every such lookup scanned the whole table.
CREATE INDEX logon_ids_by_user ON logon_ids (user_id, logon_id);
