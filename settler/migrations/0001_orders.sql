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
    updated_at      DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
    -- The last guard of idempotency: one order per press of a SKU's buy button.
    UNIQUE KEY uniq_sku_idempotency_key (sku, idempotency_key),
    KEY idx_user_created (user_id, created_at),
    KEY idx_sku_status (sku, status)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
