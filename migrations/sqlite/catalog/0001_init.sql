-- Catalog service schema (SQLite). Keep in step with migrations/postgres/catalog.
-- uuid columns hold sqlx's 16-byte BLOB encoding; timestamps are RFC 3339-like UTC TEXT;
-- images/attributes are JSON TEXT.

CREATE TABLE categories (
    id          BLOB    PRIMARY KEY NOT NULL,
    parent_id   BLOB    REFERENCES categories (id),
    name        TEXT    NOT NULL,
    slug        TEXT    NOT NULL,
    description TEXT    NOT NULL DEFAULT '',
    position    BIGINT  NOT NULL DEFAULT 0,
    created_at  TEXT    NOT NULL,
    updated_at  TEXT    NOT NULL,
    CONSTRAINT categories_slug_key UNIQUE (slug)
);
CREATE INDEX categories_parent_idx ON categories (parent_id);

CREATE TABLE brands (
    id          BLOB    PRIMARY KEY NOT NULL,
    name        TEXT    NOT NULL,
    slug        TEXT    NOT NULL,
    description TEXT    NOT NULL DEFAULT '',
    logo_url    TEXT,
    created_at  TEXT    NOT NULL,
    updated_at  TEXT    NOT NULL,
    CONSTRAINT brands_slug_key UNIQUE (slug)
);

CREATE TABLE products (
    id           BLOB    PRIMARY KEY NOT NULL,
    name         TEXT    NOT NULL,
    slug         TEXT    NOT NULL,
    description  TEXT    NOT NULL DEFAULT '',
    sku          TEXT    NOT NULL,
    price_amount BIGINT  NOT NULL CHECK (price_amount >= 0),
    currency     TEXT    NOT NULL,
    images       TEXT    NOT NULL DEFAULT '[]',
    attributes   TEXT    NOT NULL DEFAULT '{}',
    brand_id     BLOB    REFERENCES brands (id),
    category_id  BLOB    NOT NULL REFERENCES categories (id),
    active       BOOLEAN NOT NULL DEFAULT TRUE,
    created_at   TEXT    NOT NULL,
    updated_at   TEXT    NOT NULL,
    deleted_at   TEXT
);

-- Slug and SKU are unique among live (not soft-deleted) products.
CREATE UNIQUE INDEX products_slug_key ON products (slug) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX products_sku_key ON products (sku) WHERE deleted_at IS NULL;
CREATE INDEX products_category_idx ON products (category_id);
CREATE INDEX products_brand_idx ON products (brand_id);
CREATE INDEX products_price_idx ON products (price_amount);
CREATE INDEX products_created_idx ON products (created_at DESC, id DESC);
