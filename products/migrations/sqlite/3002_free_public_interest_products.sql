-- Free public-interest products (GY ch.6): a product and an order may be priced 0 fen.
-- The rules (only the `public_interest` licence may be free; a paid product remits at
-- least the configured public-finance share) are the products crate's; this migration
-- only relaxes `price_minor > 0` to `price_minor >= 0` on `products` and `orders`.
--
-- SQLite cannot alter a CHECK constraint, so both tables are rebuilt inside the
-- migration's transaction. Foreign keys are on and cannot be switched off inside a
-- transaction, so they are deferred to the commit instead: dropping a parent table
-- leaves its children's rows orphaned for a moment (counted as deferred violations),
-- and re-inserting every parent row under the same table name resolves each of them
-- before the commit checks. Rows, column order and indexes are kept as they were.
PRAGMA defer_foreign_keys = ON;

CREATE TABLE products_3002_copy AS SELECT * FROM products;
CREATE TABLE orders_3002_copy AS SELECT * FROM orders;
DROP TABLE orders;
DROP TABLE products;

CREATE TABLE products (
    id                TEXT   PRIMARY KEY,
    developer_org     TEXT   NOT NULL,
    title             TEXT   NOT NULL,
    description       TEXT   NOT NULL,
    licence_kind      TEXT   NOT NULL,     -- research_only | public_interest | commercial_internal | commercial_redistribution
    licence_term_days BIGINT NOT NULL,
    permitted_use     TEXT   NOT NULL,
    price_minor       BIGINT NOT NULL CHECK (price_minor >= 0),  -- 0: a free public-interest product
    currency          TEXT   NOT NULL,
    public_finance_bp BIGINT NOT NULL CHECK (public_finance_bp >= 0),
    developer_bp      BIGINT NOT NULL CHECK (developer_bp >= 0),
    platform_bp       BIGINT NOT NULL CHECK (platform_bp >= 0),
    research_only     BIGINT NOT NULL,     -- 1 if any source is research-only
    manifest          TEXT   NOT NULL,     -- RFC 8785 JSON, the bytes shipped and hashed
    manifest_hash     TEXT   NOT NULL,     -- BLAKE3 of `manifest`, hex
    status            TEXT   NOT NULL,     -- pending_review | listed | rejected | delisted
    status_reason     TEXT,
    registration_no   TEXT   UNIQUE,
    listing_seq       BIGINT,
    delisting_seq     BIGINT,
    created_ms        BIGINT NOT NULL,
    listed_ms         BIGINT,
    closed_ms         BIGINT,              -- rejected or delisted
    CHECK (public_finance_bp + developer_bp + platform_bp = 10000)
);
INSERT INTO products SELECT * FROM products_3002_copy;
DROP TABLE products_3002_copy;
CREATE INDEX products_by_status ON products (status, created_ms);
CREATE INDEX products_by_developer ON products (developer_org, created_ms);

CREATE TABLE orders (
    id                 TEXT   PRIMARY KEY,
    buyer_org          TEXT   NOT NULL,
    idempotency_key    TEXT   NOT NULL,
    request_hash       TEXT   NOT NULL,    -- BLAKE3 of the request body, hex
    product_id         TEXT   NOT NULL REFERENCES products (id),
    developer_org      TEXT   NOT NULL,
    price_minor        BIGINT NOT NULL CHECK (price_minor >= 0),  -- snapshot at order time; 0 for a free product
    currency           TEXT   NOT NULL,
    licence_kind       TEXT   NOT NULL,
    licence_term_days  BIGINT NOT NULL,
    status             TEXT   NOT NULL,    -- pending | paid | delivered | refunded
    created_ms         BIGINT NOT NULL,
    payment_ref        TEXT,
    paid_ms            BIGINT,
    paid_period        TEXT,
    licence_expires_ms BIGINT,
    transaction_seq    BIGINT UNIQUE,
    delivered_ms       BIGINT,
    refunded_ms        BIGINT,
    refunded_period    TEXT,
    refund_reason      TEXT,
    refund_seq         BIGINT UNIQUE,
    UNIQUE (buyer_org, idempotency_key)
);
INSERT INTO orders SELECT * FROM orders_3002_copy;
DROP TABLE orders_3002_copy;
CREATE INDEX orders_by_buyer ON orders (buyer_org, created_ms);
CREATE INDEX orders_by_product ON orders (product_id);
