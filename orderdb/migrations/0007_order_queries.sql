-- Buyer and merchant queries, each one range scan newest first. InnoDB
-- appends the primary key (order_id) to every secondary index, so
-- (user_id) serves "my orders" ordered by id and (user_id, status) the
-- same with a status filter; (sku, status) from 0001 serves the merchant's
-- search by SKU, and (created_at) its time range.
CREATE INDEX IF NOT EXISTS idx_user_order ON orders (user_id);
CREATE INDEX IF NOT EXISTS idx_user_status_order ON orders (user_id, status);
CREATE INDEX IF NOT EXISTS idx_created ON orders (created_at);
