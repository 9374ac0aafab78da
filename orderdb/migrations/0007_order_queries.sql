-- Buyer and merchant queries, each one index range scan in order id order,
-- newest first. InnoDB appends the primary key (order_id) to every
-- secondary index, so (user_id) serves "my orders" ordered by id,
-- (user_id, status) the same with a status filter, and (sku) the
-- merchant's search by SKU; (created_at) serves its time ranges. Order ids
-- grow with time, so (user_id, created_at) from 0001 only tempted the
-- optimizer into sorting: it goes.
CREATE INDEX IF NOT EXISTS idx_user_order ON orders (user_id);
CREATE INDEX IF NOT EXISTS idx_user_status_order ON orders (user_id, status);
CREATE INDEX IF NOT EXISTS idx_sku_order ON orders (sku);
CREATE INDEX IF NOT EXISTS idx_created ON orders (created_at);
DROP INDEX IF EXISTS idx_user_created ON orders;
