-- Member points (seed 002's virtual currency, the third discount), in the
-- buyer's shard. `member_points` is the balance; it moves only in the same
-- transaction as the row that says why: a grant, a checkout's spend, an
-- item's points coming back.
CREATE TABLE IF NOT EXISTS member_points (
    user_id BIGINT UNSIGNED NOT NULL PRIMARY KEY,
    balance BIGINT UNSIGNED NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- Points an operator granted, once per grant id and buyer.
CREATE TABLE IF NOT EXISTS points_grants (
    user_id  BIGINT UNSIGNED NOT NULL,
    grant_id VARCHAR(64)     NOT NULL,
    points   BIGINT UNSIGNED NOT NULL,
    at       DATETIME(3)     NOT NULL,
    PRIMARY KEY (user_id, grant_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- The points a checkout spent on each of its items (an order of its own),
-- and how many of them went back to the balance (never more than spent).
CREATE TABLE IF NOT EXISTS points_spent (
    order_id BIGINT          NOT NULL PRIMARY KEY,
    parent   BIGINT          NOT NULL,
    user_id  BIGINT UNSIGNED NOT NULL,
    points   BIGINT UNSIGNED NOT NULL,
    returned BIGINT UNSIGNED NOT NULL DEFAULT 0,
    spent_at DATETIME(3)     NOT NULL,
    KEY idx_parent (parent),
    KEY idx_spent_at (spent_at),
    CONSTRAINT never_more_back_than_spent CHECK (returned <= points)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
