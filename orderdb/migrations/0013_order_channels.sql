-- The storefront channel an order came through (traffic.channels), for
-- statistics per channel. NULL: a request without a channel key, or an
-- order the system recorded from Redis's record alone.
ALTER TABLE orders ADD COLUMN IF NOT EXISTS channel VARCHAR(32) NULL;
CREATE INDEX IF NOT EXISTS idx_channel_status ON orders (channel, status);
