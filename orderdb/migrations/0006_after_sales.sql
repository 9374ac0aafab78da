-- After-sale requests: their own records and statuses, in the buyer's
-- shard beside the order. A request never edits the order's money; its
-- refund is a row of `refunds` it names.
CREATE TABLE IF NOT EXISTS after_sales (
    after_sale_id  BIGINT          NOT NULL PRIMARY KEY,
    order_id       BIGINT          NOT NULL,
    user_id        BIGINT UNSIGNED NOT NULL,
    kind           VARCHAR(16)     NOT NULL,
    qty            INT UNSIGNED    NOT NULL,
    reason         VARCHAR(255)    NOT NULL,
    status         VARCHAR(28)     NOT NULL,
    return_address VARCHAR(255)    NULL,
    reject_reason  VARCHAR(255)    NULL,
    refund_id      VARCHAR(40)     NULL,
    created_at     DATETIME(3)     NOT NULL,
    updated_at     DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
    KEY idx_order (order_id),
    KEY idx_status_created (status, created_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- Every move of a request, appended, never edited.
CREATE TABLE IF NOT EXISTS after_sale_history (
    id            BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    after_sale_id BIGINT       NOT NULL,
    from_status   VARCHAR(28)  NULL,
    to_status     VARCHAR(28)  NOT NULL,
    action        VARCHAR(24)  NULL,
    actor         VARCHAR(16)  NULL,
    at            DATETIME(3)  NOT NULL,
    KEY idx_after_sale (after_sale_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- A full return closes the order.
ALTER TABLE orders ADD COLUMN IF NOT EXISTS closed_at DATETIME(3) NULL;
