-- The agreement world of agreements.md §2–§3 (PostgreSQL; kept in step with migrations/sqlite).
-- Plain types, no sequences, no triggers: what PostgreSQL-wire distributed databases accept.
-- Times are Unix seconds (UTC); the wire shows them in Beijing time. Status columns hold the wire spellings.

CREATE TABLE merchant_groups (
    group_id    TEXT PRIMARY KEY,
    name        TEXT NOT NULL
);

CREATE TABLE merchants (
    partner_id  TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('NORMAL', 'DISABLED')),
    group_id    TEXT REFERENCES merchant_groups (group_id)
);
CREATE INDEX merchants_by_group ON merchants (group_id) WHERE group_id IS NOT NULL;

CREATE TABLE products (
    personal_product_code TEXT PRIMARY KEY,
    name                  TEXT NOT NULL
);

CREATE TABLE product_pairs (
    personal_product_code TEXT NOT NULL REFERENCES products (personal_product_code),
    product_code          TEXT NOT NULL,
    PRIMARY KEY (personal_product_code, product_code)
);

CREATE TABLE merchant_contracts (
    partner_id   TEXT NOT NULL REFERENCES merchants (partner_id),
    product_code TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('NORMAL', 'DISABLED')),
    valid_from   BIGINT NOT NULL,
    valid_to     BIGINT NOT NULL,
    PRIMARY KEY (partner_id, product_code)
);

CREATE TABLE apps (
    app_id      TEXT PRIMARY KEY,
    partner_id  TEXT NOT NULL REFERENCES merchants (partner_id),
    name        TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('ONLINE', 'OFFLINE')),
    notify_url  TEXT
);

-- One request-verification key per sign type (bare base64 SPKI DER).
CREATE TABLE app_keys (
    app_id      TEXT NOT NULL REFERENCES apps (app_id),
    sign_type   TEXT NOT NULL CHECK (sign_type IN ('RSA2', 'RSA')),
    public_key  TEXT NOT NULL,
    PRIMARY KEY (app_id, sign_type)
);

CREATE TABLE app_methods (
    app_id      TEXT NOT NULL REFERENCES apps (app_id),
    method      TEXT NOT NULL,
    PRIMARY KEY (app_id, method)
);

-- An ISV app acting for a merchant (served from a later migration's behaviour on).
CREATE TABLE app_auth_tokens (
    token        TEXT PRIMARY KEY,
    isv_app_id   TEXT NOT NULL REFERENCES apps (app_id),
    partner_id   TEXT NOT NULL REFERENCES merchants (partner_id),
    auth_app_id  TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('VALID', 'REVOKED')),
    expires_at   BIGINT NOT NULL
);

CREATE TABLE app_auth_token_methods (
    token       TEXT NOT NULL REFERENCES app_auth_tokens (token),
    method      TEXT NOT NULL,
    PRIMARY KEY (token, method)
);

CREATE TABLE customers (
    customer_id TEXT PRIMARY KEY
);

CREATE TABLE accounts (
    user_id     TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL REFERENCES customers (customer_id),
    status      TEXT NOT NULL CHECK (status IN ('NORMAL', 'DISABLED'))
);
CREATE INDEX accounts_by_customer ON accounts (customer_id);

CREATE TABLE logon_ids (
    logon_id    TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES accounts (user_id)
);

CREATE TABLE open_ids (
    app_id      TEXT NOT NULL,
    open_id     TEXT NOT NULL,
    user_id     TEXT NOT NULL REFERENCES accounts (user_id),
    PRIMARY KEY (app_id, open_id),
    UNIQUE (app_id, user_id)
);

CREATE TABLE agreements (
    agreement_no          TEXT PRIMARY KEY,
    partner_id            TEXT NOT NULL REFERENCES merchants (partner_id),
    sign_app_id           TEXT NOT NULL,
    principal_type        TEXT NOT NULL CHECK (principal_type IN ('CARD', 'CUSTOMER')),
    principal_id          TEXT NOT NULL,
    alipay_user_id        TEXT NOT NULL REFERENCES accounts (user_id),
    personal_product_code TEXT NOT NULL,
    product_code          TEXT NOT NULL,
    sign_scene            TEXT NOT NULL,
    third_party_type      TEXT NOT NULL CHECK (third_party_type IN ('PARTNER', 'MERCHANT')),
    external_agreement_no TEXT,
    external_logon_id     TEXT,
    status                TEXT NOT NULL CHECK (status IN ('TEMP', 'NORMAL', 'STOP', 'UNSIGN')),
    sign_time             BIGINT NOT NULL,
    valid_time            BIGINT NOT NULL,
    invalid_time          BIGINT NOT NULL,
    unsign_time           BIGINT
);
-- "All agreements of one person for one product": the batch query is one range scan of this
-- index, already in the answer's order.
CREATE INDEX agreements_by_principal
    ON agreements (principal_id, personal_product_code, principal_type, third_party_type, sign_time, agreement_no);
CREATE UNIQUE INDEX agreements_by_external_no
    ON agreements (partner_id, personal_product_code, sign_scene, external_agreement_no)
    WHERE external_agreement_no IS NOT NULL;

CREATE TABLE agreement_events (
    agreement_no TEXT NOT NULL REFERENCES agreements (agreement_no),
    seq          BIGINT NOT NULL,
    kind         TEXT NOT NULL,
    old_status   TEXT,
    new_status   TEXT NOT NULL,
    actor        TEXT NOT NULL,
    reason       TEXT,
    at           BIGINT NOT NULL,
    PRIMARY KEY (agreement_no, seq)
);
