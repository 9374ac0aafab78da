-- Fulfilment: when a paid order went to the warehouse, shipped (with its
-- parcel) and completed. The sweeper's auto-completion reads shipped
-- orders by `shipped_at`.
ALTER TABLE orders
    ADD COLUMN IF NOT EXISTS pushed_at    DATETIME(3) NULL,
    ADD COLUMN IF NOT EXISTS shipped_at   DATETIME(3) NULL,
    ADD COLUMN IF NOT EXISTS carrier      VARCHAR(32) NULL,
    ADD COLUMN IF NOT EXISTS tracking_no  VARCHAR(64) NULL,
    ADD COLUMN IF NOT EXISTS completed_at DATETIME(3) NULL;
CREATE INDEX IF NOT EXISTS idx_status_shipped ON orders (status, shipped_at);

-- Who did what: the action and actor of the state machine's move.
ALTER TABLE order_status_history
    ADD COLUMN IF NOT EXISTS action VARCHAR(24) NULL,
    ADD COLUMN IF NOT EXISTS actor  VARCHAR(16) NULL;

-- The transactional outbox: the event of a move, written in the move's
-- transaction; the settler's relay sends it to Kafka and deletes the row
-- only after the broker's acknowledgement.
CREATE TABLE IF NOT EXISTS order_outbox (
    id         BIGINT          NOT NULL AUTO_INCREMENT PRIMARY KEY,
    order_id   BIGINT          NOT NULL,
    user_id    BIGINT UNSIGNED NOT NULL,
    payload    MEDIUMBLOB      NOT NULL,
    created_at DATETIME(3)     NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
