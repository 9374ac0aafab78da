-- An idempotency key names one press of a buy button for as long as its
-- record lives in Redis (`orders.idempotency_ttl_secs`); after that the same
-- key is a new press and a new order. A unique index over (sku, key) would
-- refuse that order for ever, so the index only serves lookups.
ALTER TABLE orders DROP INDEX IF EXISTS uniq_sku_idempotency_key;
CREATE INDEX IF NOT EXISTS idx_sku_idempotency_key ON orders (sku, idempotency_key);
