// Idempotency storm: many retries of a small pool of clicks. Each answer
// must be the first one (202), a replay (200 with Idempotent-Replayed: true)
// or a 409 (request in progress, or the user's limit of 1 reached by that
// very order) - never a second order.
//
//   k6 run k6/idempotency.js -e RATE=500 -e DURATION=10s -e KEYS=100
import { check } from 'k6';
import { Rate } from 'k6/metrics';
import { loadSale, placeOrder } from './lib.js';

const RATE = Number(__ENV.RATE || 500);
const DURATION = __ENV.DURATION || '10s';
const KEYS = Number(__ENV.KEYS || 100);
const unexpected = new Rate('unexpected_answers');

export const options = {
  scenarios: {
    storm: {
      executor: 'constant-arrival-rate',
      rate: RATE,
      timeUnit: '1s',
      duration: DURATION,
      preAllocatedVUs: Number(__ENV.VUS || 100),
      maxVUs: Number(__ENV.MAX_VUS || 500),
    },
  },
  thresholds: {
    unexpected_answers: ['rate<0.01'],
  },
};

export function setup() {
  return { sku: loadSale('k6_idem', KEYS * 2), run: Date.now() };
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
}
