-- Certificate mode (openapi-gateway.md §5): the platform's certificates and the apps'.

-- The platform's roots (what merchants put in their root bundle) and its signing certificates
-- (leaf first, then the chain to a root, as `alipay.open.app.alipaycert.download` answers them).
-- The newest signing certificate signs answers; older ones stay downloadable.
CREATE TABLE platform_certs (
    cert_sn    TEXT PRIMARY KEY,
    role       TEXT NOT NULL CHECK (role IN ('ROOT', 'SIGNING')),
    chain_pem  TEXT NOT NULL,
    not_before INTEGER NOT NULL,
    not_after  INTEGER NOT NULL,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;

-- An app's certificates. A replaced one stays valid until `retired_at` (the overlap), then is
-- refused.
CREATE TABLE app_certs (
    app_id     TEXT NOT NULL REFERENCES apps (app_id),
    cert_sn    TEXT NOT NULL,
    cert_pem   TEXT NOT NULL,
    not_before INTEGER NOT NULL,
    not_after  INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    retired_at INTEGER,
    PRIMARY KEY (app_id, cert_sn)
) WITHOUT ROWID;

-- When an app that switched to certificate mode stops being served in public-key mode.
CREATE TABLE app_key_sunsets (
    app_id    TEXT PRIMARY KEY REFERENCES apps (app_id),
    sunset_at INTEGER NOT NULL
) WITHOUT ROWID;
