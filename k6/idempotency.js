// Idempotency storm: many retries of a small pool of clicks. Each answer
// must be the first one (202), a replay (200 with Idempotent-Replayed: true)
// or a 409 (request in progress) - never a second order: at most one 202
// per key, and at the end the sale holds at most one unit per key. The
// per-user limit is high, so only the idempotency record stands between a
// retry and a second order. Any 5xx fails the run.
//
//   k6 run k6/idempotency.js -e RATE=500 -e DURATION=10s -e KEYS=100
import { check } from 'k6';
import { loadSale, placeOrder, saleCounters, constantRate, saleMetrics } from './lib.js';

const RATE = Number(__ENV.RATE || 500);
const DURATION = __ENV.DURATION || '10s';
const KEYS = Number(__ENV.KEYS || 100);
const { unexpected, accepted, serverErrors, broken } = saleMetrics();

export const options = {
  scenarios: {
    storm: constantRate(RATE, DURATION),
  },
  thresholds: {
    unexpected_answers: ['rate==0'],
    server_errors: ['count==0'],
    // Every key gets its one 202 (the sale has room for all); a second
    // order for any key would push this past KEYS.
    orders_accepted: [`count<=${KEYS}`],
    sale_invariant_broken: ['count==0'],
  },
};

export function setup() {
  return { sku: loadSale('k6_idem', KEYS * 2, 100), run: Date.now() };
}

export default function (data) {
  const n = Math.floor(Math.random() * KEYS);
  // One user per key, as a real client retrying its own click.
  const res = placeOrder(data.run * 1000 + n, data.sku, `storm-${data.run}-${n}`);
  const ok = check(res, {
    'first answer or a replay': (r) => r.status === 202 || r.status === 200 || r.status === 409 || r.status === 429,
    'replays say so': (r) => r.status !== 200 || r.headers['Idempotent-Replayed'] === 'true',
  });
  unexpected.add(!ok);
  if (res.status === 202) {
    accepted.add(1);
  }
  if (res.status >= 500) {
    serverErrors.add(1);
  }
}

// One unit per key at most, and the units add up.
export function teardown(data) {
  const sale = saleCounters(data.sku);
  if (sale.reserved + sale.sold > KEYS || sale.stock + sale.reserved + sale.sold !== sale.total) {
    console.error(`sale ${data.sku}: ${JSON.stringify(sale)}`);
    broken.add(1);
  }
}
