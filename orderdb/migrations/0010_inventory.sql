-- An ordinary sale's database fallback (`order::fallback`), used in the
-- first shard only (the inventory database). `inventory` holds the units of
-- the sale's database share still for sale: an order taken while Redis is
-- down takes them under the row's lock, and is recorded in
-- `fallback_orders` in the same transaction.
CREATE TABLE IF NOT EXISTS inventory (
    -- Binary: SKUs and keys are case-sensitive, as in Redis.
    sku             VARCHAR(64) COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,
    units           BIGINT      NOT NULL,
    per_user_limit  BIGINT      NOT NULL,
    price_cents     BIGINT      NOT NULL,
    starts_at       DATETIME(3) NULL,
    ends_at         DATETIME(3) NULL,
    sale_generation BIGINT      NOT NULL,
    CONSTRAINT units_never_negative CHECK (units >= 0)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- Every order the fallback took. `state`:
--   reserved    its event not yet acknowledged by the broker;
--   accepted    its buyer was answered 202 (`accepted` is 1 from then on);
--   adopting    claimed by an adopter: the request that took it can no
--               longer accept or drop it, and Redis is being handed it;
--   adopted     Redis holds it;
--   duplicate   its key had placed another order in Redis: cancelled, its
--               units back in `inventory`;
--   dropped     its event certainly never reached the broker: its units
--               back in `inventory`.
-- `live_key` is the idempotency key while it names this order (NULL once
-- dropped): one order per key and SKU. `taken_at` is the database's clock,
-- which every gateway's in-flight window is measured on. Rows are kept:
-- the primary key keeps the fallback's order ids unique across gateways.
CREATE TABLE IF NOT EXISTS fallback_orders (
    order_id        BIGINT          NOT NULL PRIMARY KEY,
    sku             VARCHAR(64)     COLLATE utf8mb4_bin NOT NULL,
    idempotency_key VARCHAR(64)     COLLATE utf8mb4_bin NOT NULL,
    live_key        VARCHAR(64)     COLLATE utf8mb4_bin NULL,
    user_id         BIGINT UNSIGNED NOT NULL,
    qty             INT UNSIGNED    NOT NULL,
    amount_cents    BIGINT          NOT NULL,
    sale_generation BIGINT          NOT NULL,
    created_at      DATETIME(3)     NOT NULL,
    pay_by          DATETIME(3)     NOT NULL,
    taken_at        DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    state           VARCHAR(12)     NOT NULL,
    accepted        TINYINT         NOT NULL DEFAULT 0,
    UNIQUE KEY uniq_sku_live_key (sku, live_key),
    KEY idx_sku_user (sku, user_id, sale_generation),
    KEY idx_sku_state (sku, state),
    KEY idx_state_order (state, order_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
