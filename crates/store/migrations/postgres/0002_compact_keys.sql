-- Identifiers compare byte by byte (COLLATE "C"): they are ASCII codes, never words, and under a
-- linguistic collation (the server default, e.g. C.UTF-8 or en_US.UTF-8) every index comparison
-- goes through the C library's strcoll. Measured on a 10^6-agreement world (default server settings):
-- accounts and logon ids load 17-18 % faster, agreements 4 %; key order (export, pagination) is now
-- the same as on SQLite.

ALTER TABLE merchant_groups ALTER COLUMN group_id TYPE text COLLATE "C";
ALTER TABLE merchants ALTER COLUMN partner_id TYPE text COLLATE "C",
    ALTER COLUMN group_id TYPE text COLLATE "C";
ALTER TABLE accounts ALTER COLUMN user_id TYPE text COLLATE "C",
    ALTER COLUMN customer_id TYPE text COLLATE "C";
ALTER TABLE customers ALTER COLUMN customer_id TYPE text COLLATE "C";
ALTER TABLE logon_ids ALTER COLUMN logon_id TYPE text COLLATE "C",
    ALTER COLUMN user_id TYPE text COLLATE "C";
ALTER TABLE open_ids ALTER COLUMN app_id TYPE text COLLATE "C",
    ALTER COLUMN open_id TYPE text COLLATE "C",
    ALTER COLUMN user_id TYPE text COLLATE "C";
ALTER TABLE agreements ALTER COLUMN agreement_no TYPE text COLLATE "C",
    ALTER COLUMN partner_id TYPE text COLLATE "C",
    ALTER COLUMN principal_type TYPE text COLLATE "C",
    ALTER COLUMN principal_id TYPE text COLLATE "C",
    ALTER COLUMN alipay_user_id TYPE text COLLATE "C",
    ALTER COLUMN personal_product_code TYPE text COLLATE "C",
    ALTER COLUMN product_code TYPE text COLLATE "C",
    ALTER COLUMN sign_scene TYPE text COLLATE "C",
    ALTER COLUMN third_party_type TYPE text COLLATE "C",
    ALTER COLUMN external_agreement_no TYPE text COLLATE "C";
ALTER TABLE agreement_events ALTER COLUMN agreement_no TYPE text COLLATE "C";
