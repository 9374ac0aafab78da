-- Several payment channels ("card", "wallet"): an order records the one
-- its payment came through, and a refund the one it goes back through.
-- '' in rows from before: the one channel there was, the default one.
ALTER TABLE orders ADD COLUMN IF NOT EXISTS payment_channel VARCHAR(16) NOT NULL DEFAULT '' AFTER payment_id;
ALTER TABLE refunds ADD COLUMN IF NOT EXISTS channel VARCHAR(16) NOT NULL DEFAULT '' AFTER payment_id;
