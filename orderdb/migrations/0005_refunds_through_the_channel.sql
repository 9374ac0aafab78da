-- Refunds go through the payment channel. A refund is named by an id of
-- its own (`rf<order id>-<hash>`, deterministic from what it refunds, so
-- a retried insert finds it), since one payment may be refunded in parts.
-- The row itself is money: written once, never updated. What became of it
-- is appended to `refund_attempts`; when to ask the channel next, and
-- whether an operator must look (STUCK), is `refund_jobs`.
-- Refunds recorded before were all of payments no order could take
-- (`RefundRequired`): their ids are the ones `refunds::refund_id` gives
-- such a refund (cause "payment"), so a replayed event finds its row.
ALTER TABLE refunds ADD COLUMN IF NOT EXISTS refund_id VARCHAR(40) NOT NULL DEFAULT '';
UPDATE refunds SET refund_id = CONCAT('rf', order_id, '-', LEFT(SHA2(CONCAT(payment_id, '\npayment'), 256), 8))
    WHERE refund_id = '';
ALTER TABLE refunds DROP PRIMARY KEY, ADD PRIMARY KEY (refund_id);
CREATE INDEX IF NOT EXISTS idx_refunds_order ON refunds (order_id);
ALTER TABLE refunds DROP COLUMN IF EXISTS status;

CREATE TABLE IF NOT EXISTS refund_attempts (
    id        BIGINT      NOT NULL AUTO_INCREMENT PRIMARY KEY,
    refund_id VARCHAR(40) NOT NULL,
    -- REQUESTED, FAILED, UNKNOWN, SUCCEEDED, RETRIED (by an operator)
    outcome   VARCHAR(16) NOT NULL,
    detail    VARCHAR(255) NOT NULL,
    at        DATETIME(3) NOT NULL,
    KEY idx_refund (refund_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

CREATE TABLE IF NOT EXISTS refund_jobs (
    refund_id VARCHAR(40) NOT NULL PRIMARY KEY,
    -- PENDING (the settler asks the channel), STUCK (out of attempts: an
    -- operator retries it), DONE (the channel confirmed it)
    state     VARCHAR(12) NOT NULL,
    attempts  INT         NOT NULL DEFAULT 0,
    next_at   DATETIME(3) NOT NULL,
    KEY idx_state_next (state, next_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

INSERT IGNORE INTO refund_jobs (refund_id, state, attempts, next_at)
    SELECT refund_id, 'PENDING', 0, NOW(3) FROM refunds;
