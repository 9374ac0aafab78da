-- A buyer's orders, newest first, in one index range scan: InnoDB appends
-- the primary key (order_id) to every secondary index, so (user_id) reads
-- a user's orders in id order, and (user_id, status) the same with a
-- status filter. Order ids grow with time, so (user_id, created_at) from
-- 0001 only tempted the optimizer into sorting: it goes, and each insert
-- updates one index more than before. The merchant's search uses
-- (sku, status) from 0001 and otherwise reads newest first, within its
-- per-shard timeout.
CREATE INDEX IF NOT EXISTS idx_user_order ON orders (user_id);
CREATE INDEX IF NOT EXISTS idx_user_status_order ON orders (user_id, status);
DROP INDEX IF EXISTS idx_user_created ON orders;
