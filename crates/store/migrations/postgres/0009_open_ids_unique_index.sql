-- SQLite's step only: there the rule was a constraint of the table, which a fresh load cannot
-- drop. PostgreSQL's fresh load drops and adds constraints and indexes alike.
SELECT 1;
