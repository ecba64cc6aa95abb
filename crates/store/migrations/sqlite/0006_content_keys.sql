-- Content encryption (openapi-gateway.md §6): an app's AES key, set by the operator and handed
-- to the merchant. Kept apart from `apps` so that nothing that reads or exports apps reads it.
CREATE TABLE app_content_keys (
    app_id      TEXT PRIMARY KEY REFERENCES apps (app_id),
    content_key TEXT NOT NULL,
    updated_at  INTEGER NOT NULL
) WITHOUT ROWID;
