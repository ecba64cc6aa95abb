-- The batch and user queries read a person's agreements through agreements_by_principal. With
-- only its key columns, every entry the range scan visits cost a second descent, into the table
-- by agreement_no, to read the row and test the status, the end date and the merchant: a random
-- page for each. With every column of the table in the index (SQLite has no INCLUDE; the extra
-- columns follow the key, so the order and the range scans are the same), the scan reads the
-- rows where it finds them. The index grows by the width of a row.
DROP INDEX agreements_by_principal;
CREATE INDEX agreements_by_principal
    ON agreements (principal_id, personal_product_code, principal_type, third_party_type,
                   sign_time, agreement_no,
                   partner_id, sign_app_id, alipay_user_id, product_code, sign_scene,
                   external_agreement_no, external_logon_id, status, valid_time, invalid_time,
                   unsign_time);
