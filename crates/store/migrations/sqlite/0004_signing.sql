-- Signing by consumers (sign-flow.md): the signing sessions a page.sign link opens, the period
-- rules of periodic agreements, consumers' passwords and their web sessions.

-- One per page.sign link (`link_hash`: SHA-256 of the request's signature, so that the same
-- link re-opened finds the same session). `biz_content` is the request's, validated when the
-- session was made and read again at confirmation; `timestamp` is the request's.
CREATE TABLE signing_sessions (
    session_id   TEXT PRIMARY KEY,
    link_hash    TEXT NOT NULL UNIQUE,
    app_id       TEXT NOT NULL REFERENCES apps (app_id),
    auth_app_id  TEXT NOT NULL,
    partner_id   TEXT NOT NULL REFERENCES merchants (partner_id),
    sign_type    TEXT NOT NULL CHECK (sign_type IN ('RSA2', 'RSA')),
    biz_content  TEXT NOT NULL,
    timestamp    TEXT NOT NULL,
    notify_url   TEXT,
    return_url   TEXT,
    state        TEXT NOT NULL CHECK (state IN ('OPEN', 'SIGNED', 'DECLINED')),
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    agreement_no TEXT,
    user_id      TEXT,
    finished_at  INTEGER
) WITHOUT ROWID;

-- The period rule of a periodic agreement (period_rule_params); amounts in fen, dates
-- yyyy-MM-dd (Beijing).
CREATE TABLE period_rules (
    agreement_no     TEXT PRIMARY KEY REFERENCES agreements (agreement_no),
    period_type      TEXT NOT NULL CHECK (period_type IN ('DAY', 'MONTH')),
    period           INTEGER NOT NULL,
    execute_time     TEXT NOT NULL,
    single_amount    INTEGER NOT NULL,
    total_amount     INTEGER,
    total_payments   INTEGER,
    next_deduct_time TEXT NOT NULL
) WITHOUT ROWID;

-- A consumer's password (Argon2id, PHC string), per account.
CREATE TABLE consumer_credentials (
    user_id       TEXT PRIMARY KEY REFERENCES accounts (user_id),
    password_hash TEXT NOT NULL,
    updated_at    INTEGER NOT NULL
) WITHOUT ROWID;

-- A consumer signed in on the web pages: the SHA-256 of the cookie's secret (never the secret),
-- the account, the token its forms carry, and when it ends.
CREATE TABLE consumer_sessions (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES accounts (user_id),
    csrf_token TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX consumer_sessions_by_expiry ON consumer_sessions (expires_at);
