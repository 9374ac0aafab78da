-- An ordinary sale's database fallback (`order::fallback`), used in the
-- first shard only (the inventory database). `inventory` holds the units of
-- the sale's database share still for sale: an order taken while Redis is
-- down takes them under the row's lock, and is recorded in
-- `fallback_orders` in the same transaction.
CREATE TABLE IF NOT EXISTS inventory (
    sku             VARCHAR(64) NOT NULL PRIMARY KEY,
    units           BIGINT      NOT NULL,
    per_user_limit  BIGINT      NOT NULL,
    price_cents     BIGINT      NOT NULL,
    starts_at       DATETIME(3) NULL,
    ends_at         DATETIME(3) NULL,
    sale_generation BIGINT      NOT NULL,
    CONSTRAINT units_never_negative CHECK (units >= 0)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- Every order the fallback took. `state`: reserved (its event not yet
-- acknowledged by the broker), accepted (its buyer was answered 202),
-- adopted (Redis holds it now) or dropped (its units went back to
-- `inventory`). `live_key` is the idempotency key while the order is the
-- database's, NULL after: one order per key and SKU until Redis has it.
-- Rows are kept: the primary key keeps the fallback's order ids unique
-- across gateways.
CREATE TABLE IF NOT EXISTS fallback_orders (
    order_id        BIGINT          NOT NULL PRIMARY KEY,
    sku             VARCHAR(64)     NOT NULL,
    idempotency_key VARCHAR(64)     NOT NULL,
    live_key        VARCHAR(64)     NULL,
    user_id         BIGINT UNSIGNED NOT NULL,
    qty             INT UNSIGNED    NOT NULL,
    amount_cents    BIGINT          NOT NULL,
    sale_generation BIGINT          NOT NULL,
    created_at      DATETIME(3)     NOT NULL,
    pay_by          DATETIME(3)     NOT NULL,
    state           VARCHAR(12)     NOT NULL,
    UNIQUE KEY uniq_sku_live_key (sku, live_key),
    KEY idx_sku_user (sku, user_id, sale_generation),
    KEY idx_state (state)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
