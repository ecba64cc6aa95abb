-- The notification outbox (agreements.md §7): written in the transaction of the change it
-- announces, delivered (and retried) by the delivery worker. `params` is the JSON object of the
-- unsigned form parameters; `notify_time`, `sign_type` and `sign` are added at each send.
-- (SQLite's agreement_events is rebuilt WITHOUT ROWID in this version; here it stays.)

CREATE TABLE notifications (
    notify_id       TEXT COLLATE "C" PRIMARY KEY,
    agreement_no    TEXT COLLATE "C" NOT NULL REFERENCES agreements (agreement_no),
    notify_type     TEXT NOT NULL,
    url             TEXT NOT NULL,
    sign_type       TEXT NOT NULL CHECK (sign_type IN ('RSA2', 'RSA')),
    params          TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('PENDING', 'DELIVERED', 'FAILED')),
    attempts        BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    last_attempt_at BIGINT,
    last_error      TEXT,
    delivered_at    BIGINT
);
-- The worker's claim: the due pending ones, oldest due first (a range scan that stops at LIMIT).
CREATE INDEX notifications_due ON notifications (state, next_attempt_at, notify_id);
-- Operators' lists by state, oldest first.
CREATE INDEX notifications_by_state ON notifications (state, created_at, notify_id);
CREATE INDEX notifications_by_agreement ON notifications (agreement_no);

-- A logon id of an account, for the masked `alipay_logon_id` of query answers and notifications
-- (`logon_id_of`): without it every such lookup scanned the whole table.
CREATE INDEX logon_ids_by_user ON logon_ids (user_id, logon_id);
