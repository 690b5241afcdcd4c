-- Catalog service schema (PostgreSQL). Keep in step with migrations/sqlite/catalog.

CREATE TABLE categories (
    id          uuid        PRIMARY KEY,
    parent_id   uuid        REFERENCES categories (id),
    name        TEXT        NOT NULL,
    slug        TEXT        NOT NULL,
    description TEXT        NOT NULL DEFAULT '',
    position    BIGINT      NOT NULL DEFAULT 0,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    CONSTRAINT categories_slug_key UNIQUE (slug)
);
CREATE INDEX categories_parent_idx ON categories (parent_id);

CREATE TABLE brands (
    id          uuid        PRIMARY KEY,
    name        TEXT        NOT NULL,
    slug        TEXT        NOT NULL,
    description TEXT        NOT NULL DEFAULT '',
    logo_url    TEXT,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    CONSTRAINT brands_slug_key UNIQUE (slug)
);

CREATE TABLE products (
    id           uuid        PRIMARY KEY,
    name         TEXT        NOT NULL,
    slug         TEXT        NOT NULL,
    description  TEXT        NOT NULL DEFAULT '',
    sku          TEXT        NOT NULL,
    price_amount BIGINT      NOT NULL CHECK (price_amount >= 0),
    currency     TEXT        NOT NULL,
    images       JSONB       NOT NULL DEFAULT '[]',
    attributes   JSONB       NOT NULL DEFAULT '{}',
    brand_id     uuid        REFERENCES brands (id),
    category_id  uuid        NOT NULL REFERENCES categories (id),
    active       BOOLEAN     NOT NULL DEFAULT TRUE,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    deleted_at   TIMESTAMPTZ,
    -- Full-text search document: name and SKU weigh more than the description.
    search       tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('english', coalesce(name, '')), 'A') ||
        setweight(to_tsvector('simple', coalesce(sku, '')), 'A') ||
        setweight(to_tsvector('english', coalesce(description, '')), 'B')
    ) STORED
);

-- Slug and SKU are unique among live (not soft-deleted) products.
CREATE UNIQUE INDEX products_slug_key ON products (slug) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX products_sku_key ON products (sku) WHERE deleted_at IS NULL;
CREATE INDEX products_category_idx ON products (category_id);
CREATE INDEX products_brand_idx ON products (brand_id);
CREATE INDEX products_price_idx ON products (price_amount);
CREATE INDEX products_created_idx ON products (created_at DESC, id DESC);
CREATE INDEX products_search_idx ON products USING GIN (search);
