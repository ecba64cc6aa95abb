-- SQLite's step only: there the audit trail's index by person became a full-text index of its
-- batches. PostgreSQL keeps `audit_by_user`.
SELECT 1;
