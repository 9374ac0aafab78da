-- Cart checkouts: the parent order, its lines with their discounts, its
-- sub-orders (packages) with their freight, and its items. Each item is
-- also a row in `orders` (same id), so it is paid, cancelled, shipped and
-- returned like a single order. Written once, in one transaction, when
-- the CheckoutCreated event is stored; the money is never edited.
CREATE TABLE IF NOT EXISTS checkouts (
    order_id         BIGINT          NOT NULL PRIMARY KEY,
    user_id          BIGINT UNSIGNED NOT NULL,
    idempotency_key  VARCHAR(64)     NOT NULL,
    coupon           VARCHAR(64)     NULL,
    goods_cents      BIGINT          NOT NULL,
    promotions_cents BIGINT          NOT NULL,
    coupon_cents     BIGINT          NOT NULL,
    freight_cents    BIGINT          NOT NULL,
    payable_cents    BIGINT          NOT NULL,
    created_at       DATETIME(3)     NOT NULL,
    pay_by           DATETIME(3)     NOT NULL,
    KEY idx_user_order (user_id, order_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

CREATE TABLE IF NOT EXISTS checkout_lines (
    order_id         BIGINT       NOT NULL,
    line_no          INT UNSIGNED NOT NULL,
    sku              VARCHAR(64)  NOT NULL,
    qty              INT UNSIGNED NOT NULL,
    unit_price_cents BIGINT       NOT NULL,
    goods_cents      BIGINT       NOT NULL,
    promotions_cents BIGINT       NOT NULL,
    coupon_cents     BIGINT       NOT NULL,
    PRIMARY KEY (order_id, line_no)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

CREATE TABLE IF NOT EXISTS sub_orders (
    order_id      BIGINT       NOT NULL,
    sub_order     INT UNSIGNED NOT NULL,
    store         VARCHAR(64)  NOT NULL,
    warehouse     VARCHAR(64)  NOT NULL,
    handling      VARCHAR(16)  NOT NULL,
    freight_cents BIGINT       NOT NULL,
    PRIMARY KEY (order_id, sub_order)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

CREATE TABLE IF NOT EXISTS checkout_items (
    item_id        BIGINT       NOT NULL PRIMARY KEY,
    order_id       BIGINT       NOT NULL,
    sub_order      INT UNSIGNED NOT NULL,
    line_no        INT UNSIGNED NOT NULL,
    goods_cents    BIGINT       NOT NULL,
    discount_cents BIGINT       NOT NULL,
    freight_cents  BIGINT       NOT NULL,
    KEY idx_parent (order_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
