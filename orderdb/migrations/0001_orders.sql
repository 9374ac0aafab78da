-- Orders of the users whose bucket maps to this shard.
CREATE TABLE IF NOT EXISTS orders (
    order_id        BIGINT          NOT NULL PRIMARY KEY,
    user_id         BIGINT UNSIGNED NOT NULL,
    sku             VARCHAR(64)     NOT NULL,
    qty             INT UNSIGNED    NOT NULL,
    amount_cents    BIGINT          NOT NULL,
    status          VARCHAR(24)     NOT NULL,
    idempotency_key VARCHAR(64)     NOT NULL,
    created_at      DATETIME(3)     NOT NULL,
    pay_by          DATETIME(3)     NOT NULL,
    payment_id      VARCHAR(64)     NULL,
    paid_at         DATETIME(3)     NULL,
    cancel_reason   VARCHAR(16)     NULL,
    cancelled_at    DATETIME(3)     NULL,
    updated_at      DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
    -- The last guard of idempotency: one order per press of a SKU's buy button.
    UNIQUE KEY uniq_sku_idempotency_key (sku, idempotency_key),
    KEY idx_user_created (user_id, created_at),
    KEY idx_sku_status (sku, status)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- Every status change of an order, appended, never edited.
CREATE TABLE IF NOT EXISTS order_status_history (
    id          BIGINT      NOT NULL AUTO_INCREMENT PRIMARY KEY,
    order_id    BIGINT      NOT NULL,
    from_status VARCHAR(24) NULL,
    to_status   VARCHAR(24) NOT NULL,
    cause       VARCHAR(128) NOT NULL,
    at          DATETIME(3) NOT NULL,
    KEY idx_order (order_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- Money to give back: a payment that arrived for an order already
-- cancelled. Its own record: the order and its payment stay as they were.
CREATE TABLE IF NOT EXISTS refunds (
    order_id     BIGINT          NOT NULL,
    payment_id   VARCHAR(64)     NOT NULL,
    user_id      BIGINT UNSIGNED NOT NULL,
    sku          VARCHAR(64)     NOT NULL,
    amount_cents BIGINT          NOT NULL,
    reason       VARCHAR(128)    NOT NULL,
    status       VARCHAR(24)     NOT NULL DEFAULT 'REQUIRED',
    created_at   DATETIME(3)     NOT NULL,
    PRIMARY KEY (order_id, payment_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
