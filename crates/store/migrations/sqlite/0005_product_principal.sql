-- Whom an agreement product's agreements are with (agreements.md §3): the signing account (CARD)
-- or the person (CUSTOMER). A signing on the hosted page takes it from the product.
ALTER TABLE products ADD COLUMN principal_type TEXT NOT NULL DEFAULT 'CARD'
    CHECK (principal_type IN ('CARD', 'CUSTOMER'));
