-- The sale an order belongs to: the sale's `loaded_ms` in Redis when the
-- order was placed (0 for orders from before it was recorded), so one
-- sale's orders are told from an earlier sale's of the same SKU.
ALTER TABLE orders ADD COLUMN IF NOT EXISTS sale_generation BIGINT NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS idx_sku_generation ON orders (sku, sale_generation);
