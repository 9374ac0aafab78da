// Flash sale: a spike of distinct buyers (one click each, unique
// idempotency keys) against little stock. 409 sold out and 429 limited are
// expected answers; anything else fails the run, and so does any 5xx, more
// orders accepted than units loaded, or a sale whose units do not add up.
// Run it against a stack whose payment window outlasts the run (the
// default 15 minutes), or timed-out units are rightly sold again.
//
//   k6 run k6/flash_sale.js -e BASE_URL=http://127.0.0.1:8080 -e RATE=2000 -e DURATION=10s -e STOCK=1000
import exec from 'k6/execution';
import { loadSale, placeOrder, checkAnswer, saleCounters, saleMetrics } from './lib.js';

const RATE = Number(__ENV.RATE || 2000);
const DURATION = __ENV.DURATION || '10s';
const STOCK = Number(__ENV.STOCK || 1000);

const { unexpected, accepted, serverErrors, broken } = saleMetrics();

export const options = {
  scenarios: {
    spike: {
      executor: 'ramping-arrival-rate',
      startRate: 0,
      timeUnit: '1s',
      preAllocatedVUs: Number(__ENV.VUS || 200),
      maxVUs: Number(__ENV.MAX_VUS || 1000),
      stages: [
        { target: RATE, duration: '1s' },  // the doors open
        { target: RATE, duration: DURATION },
        { target: 0, duration: '1s' },
      ],
    },
  },
  thresholds: {
    unexpected_answers: ['rate==0'],
    server_errors: ['count==0'],
    orders_accepted: [`count<=${STOCK}`],
    sale_invariant_broken: ['count==0'],
    'http_req_duration{name:place_order}': [`p(99)<${__ENV.P99_MS || 250}`],
  },
};

export function setup() {
  return { sku: loadSale('k6_flash', STOCK), run: Date.now() };
}

export default function (data) {
  // A distinct buyer per iteration, fresh for every run.
  const buyer = data.run * 1000 + exec.scenario.iterationInTest;
  const res = placeOrder(buyer, data.sku, `k6-${data.run}-${buyer}`);
  if (res.status === 202) {
    accepted.add(1);
  }
  if (res.status >= 500) {
    serverErrors.add(1);
  }
  checkAnswer(res, unexpected);
}

// No oversell, no unit lost: what Redis holds adds up to what was loaded.
export function teardown(data) {
  const sale = saleCounters(data.sku);
  const adds_up = sale.stock + sale.reserved + sale.sold === sale.total && sale.total === STOCK;
  if (!adds_up || sale.reserved + sale.sold > STOCK) {
    console.error(`sale ${data.sku}: ${JSON.stringify(sale)}`);
    broken.add(1);
  }
}
