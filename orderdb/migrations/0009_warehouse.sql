-- Where an order's units are, for a sale split over warehouses (regional
-- stock); NULL for a sale in one pool. A paid order cancelled before it
-- ships gives its units back to this warehouse.
ALTER TABLE orders ADD COLUMN IF NOT EXISTS warehouse VARCHAR(64) NULL;
