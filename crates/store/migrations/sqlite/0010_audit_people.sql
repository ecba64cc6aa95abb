-- The audit trail's lookup by person, without an index entry per audit entry. The B-tree index
-- on (user_id, at_ms) put each new entry on a random leaf page: with 10⁶ entries, every entry
-- cost a page read, a page written to the WAL and a page written back at the checkpoint, 20–30
-- µs of the writer's time (BENCHMARKS.md). Instead, each batch the audit writer commits is one
-- row of `audit_batches` (the range of entry ids it wrote) and one document of the full-text
-- index `audit_people` (the hex of each person's account id it concerns): FTS5 gathers a
-- transaction's terms in memory and merges its segments in the background, so a batch costs a
-- few pages however large the trail grows. `agreements audit --person` finds the batches that
-- name the person, then reads their entries by id range and keeps the person's.
DROP INDEX audit_by_user;

CREATE TABLE audit_batches (
    n        INTEGER PRIMARY KEY,
    first_id TEXT NOT NULL,
    last_id  TEXT NOT NULL
);

-- Contentless: the index keeps only which documents hold a term (detail=none), and a row goes
-- with its batch when the trail is pruned (contentless_delete).
CREATE VIRTUAL TABLE audit_people USING fts5 (
    people,
    content = '',
    contentless_delete = 1,
    detail = none
);

-- The entries written before this step, as batches of 1,024 entries.
INSERT INTO audit_batches (n, first_id, last_id)
SELECT batch + 1, MIN(id), MAX(id)
FROM (SELECT id, (ROW_NUMBER() OVER (ORDER BY id) - 1) / 1024 AS batch FROM audit_entries)
GROUP BY batch;

INSERT INTO audit_people (rowid, people)
SELECT b.n, people
FROM audit_batches b
JOIN (
    SELECT b2.n AS n, GROUP_CONCAT(DISTINCT HEX(e.user_id)) AS people
    FROM audit_batches b2
    JOIN audit_entries e ON e.id BETWEEN b2.first_id AND b2.last_id
    WHERE e.user_id IS NOT NULL
    GROUP BY b2.n
) p ON p.n = b.n;
