-- pdx-products: products, orders, revenue lines, settlements, remittances, downloads.
-- The PostgreSQL migration of the same number has the same tables and columns.
-- Money is BIGINT minor units (fen); times are BIGINT ms since the Unix epoch (UTC);
-- periods are 'YYYY-MM' text (UTC calendar months); flags are BIGINT 0/1.

CREATE TABLE products (
    id                TEXT   PRIMARY KEY,
    developer_org     TEXT   NOT NULL,
    title             TEXT   NOT NULL,
    description       TEXT   NOT NULL,
    licence_kind      TEXT   NOT NULL,     -- research_only | commercial_internal | commercial_redistribution
    licence_term_days BIGINT NOT NULL,
    permitted_use     TEXT   NOT NULL,
    price_minor       BIGINT NOT NULL CHECK (price_minor > 0),
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
CREATE INDEX products_by_status ON products (status, created_ms);
CREATE INDEX products_by_developer ON products (developer_org, created_ms);

-- The released outputs a product ships (the manifest holds the full provenance).
CREATE TABLE product_sources (
    product_id  TEXT   NOT NULL REFERENCES products (id),
    position    BIGINT NOT NULL,
    release_id  TEXT   NOT NULL,
    output_hash TEXT   NOT NULL,
    output_path TEXT   NOT NULL,
    PRIMARY KEY (product_id, position),
    UNIQUE (product_id, release_id)
);

-- Provider regions whose public finance shares in the product: weight = number of
-- distinct source datasets from that region.
CREATE TABLE product_regions (
    product_id TEXT   NOT NULL REFERENCES products (id),
    region     TEXT   NOT NULL,
    weight     BIGINT NOT NULL CHECK (weight > 0),
    PRIMARY KEY (product_id, region)
);

-- Registration-number serials, one counter per year.
CREATE TABLE product_registration_counters (
    year        BIGINT PRIMARY KEY,
    last_serial BIGINT NOT NULL
);

CREATE TABLE orders (
    id                 TEXT   PRIMARY KEY,
    buyer_org          TEXT   NOT NULL,
    idempotency_key    TEXT   NOT NULL,
    request_hash       TEXT   NOT NULL,    -- BLAKE3 of the request body, hex
    product_id         TEXT   NOT NULL REFERENCES products (id),
    developer_org      TEXT   NOT NULL,
    price_minor        BIGINT NOT NULL CHECK (price_minor > 0),  -- snapshot at order time
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
CREATE INDEX orders_by_buyer ON orders (buyer_org, created_ms);
CREATE INDEX orders_by_product ON orders (product_id);

-- Every fen of every paid order, split by payee and provider region; a refund adds the
-- negated lines. settled_period is set once, by the settlement that remits the line.
CREATE TABLE revenue_lines (
    order_id         TEXT   NOT NULL REFERENCES orders (id),
    kind             TEXT   NOT NULL,      -- sale | refund
    region           TEXT   NOT NULL,
    payee_kind       TEXT   NOT NULL,      -- public_finance | developer | platform
    payee            TEXT   NOT NULL,
    developer_org    TEXT   NOT NULL,
    amount_minor     BIGINT NOT NULL,
    currency         TEXT   NOT NULL,
    effective_ms     BIGINT NOT NULL,
    effective_period TEXT   NOT NULL,
    settled_period   TEXT,
    PRIMARY KEY (order_id, kind, region, payee_kind)
);
CREATE INDEX revenue_lines_by_settlement ON revenue_lines (settled_period, effective_ms);

CREATE TABLE settlements (
    period     TEXT   PRIMARY KEY,
    from_ms    BIGINT NOT NULL,
    to_ms      BIGINT NOT NULL,
    settled_ms BIGINT NOT NULL,
    actor_org  TEXT   NOT NULL,
    actor_key  TEXT   NOT NULL
);

-- One row per Remittance ledger entry: the unique key is period + payee.
CREATE TABLE remittances (
    period       TEXT   NOT NULL REFERENCES settlements (period),
    payee_kind   TEXT   NOT NULL,
    payee        TEXT   NOT NULL,
    currency     TEXT   NOT NULL,
    amount_minor BIGINT NOT NULL,
    order_count  BIGINT NOT NULL,
    ledger_seq   BIGINT NOT NULL UNIQUE,
    PRIMARY KEY (period, payee_kind, payee, currency)
);

-- Every download (XT Art.34(4): exports are recorded).
CREATE TABLE downloads (
    id            TEXT   PRIMARY KEY,
    order_id      TEXT   NOT NULL REFERENCES orders (id),
    buyer_org     TEXT   NOT NULL,
    actor_key     TEXT   NOT NULL,
    downloaded_ms BIGINT NOT NULL,
    archive_bytes BIGINT NOT NULL,
    archive_hash  TEXT   NOT NULL          -- BLAKE3 of the archive, hex
);
CREATE INDEX downloads_by_order ON downloads (order_id, downloaded_ms);
