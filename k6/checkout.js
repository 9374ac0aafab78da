// Cart checkouts: distinct buyers, each checking out 2 or 3 of a few SKUs
// (one unit each) against little stock, so carts race for the last units.
// 201 accepted, 409 (a line sold out, a coupon in use) and 429 limited are
// expected answers; anything else fails the run, and so does any 5xx, a
// checkout whose items do not add up to its payment, or a SKU whose units
// do not add up or are sold past its stock. Run it against a stack whose
// payment window outlasts the run (the default 15 minutes).
//
//   k6 run k6/checkout.js -e BASE_URL=http://127.0.0.1:8080 -e RATE=200 -e DURATION=10s -e STOCK=300
import exec from 'k6/execution';
import http from 'k6/http';
import { Counter, Rate } from 'k6/metrics';
import { check } from 'k6';
import { BASE_URL, buyerToken, loadSale, saleCounters, constantRate } from './lib.js';

const RATE = Number(__ENV.RATE || 200);
const DURATION = __ENV.DURATION || '10s';
const STOCK = Number(__ENV.STOCK || 300);
const SKUS = 4;

const unexpected = new Rate('unexpected_answers');
const accepted = new Counter('checkouts_accepted');
const serverErrors = new Counter('server_errors');
const broken = new Counter('checkout_invariant_broken');

export const options = {
  scenarios: {
    carts: constantRate(RATE, DURATION),
  },
  thresholds: {
    unexpected_answers: ['rate==0'],
    server_errors: ['count==0'],
    checkout_invariant_broken: ['count==0'],
    'http_req_duration{name:checkout}': [`p(99)<${__ENV.P99_MS || 500}`],
  },
};

export function setup() {
  const skus = [];
  for (let i = 0; i < SKUS; i++) {
    skus.push(loadSale(`k6_cart${i}`, STOCK, 10));
  }
  return { skus, run: Date.now() };
}

export default function (data) {
  const buyer = data.run * 1000 + exec.scenario.iterationInTest;
  // 2 or 3 of the SKUs, starting anywhere: carts overlap in every order.
  const first = buyer % SKUS;
  const lines = [];
  for (let i = 0; i < 2 + (buyer % 2); i++) {
    lines.push({ sku: data.skus[(first + i) % SKUS], qty: 1 });
  }
  const res = http.post(`${BASE_URL}/v1/checkout`, JSON.stringify({ lines }), {
    headers: {
      'content-type': 'application/json',
      'idempotency-key': `k6-cart-${buyer}`,
      authorization: `Bearer ${buyerToken(buyer)}`,
    },
    tags: { name: 'checkout' },
  });
  if (res.status === 201) {
    accepted.add(1);
    const checkout = res.json();
    const items = checkout.sub_orders.flatMap((sub) => sub.items);
    const paid = items.reduce((sum, item) => sum + item.amount_cents, 0);
    if (paid !== checkout.payable_cents || items.length !== lines.length) {
      console.error(`checkout ${checkout.order_id} does not add up: ${res.body}`);
      broken.add(1);
    }
  }
  if (res.status >= 500) {
    serverErrors.add(1);
  }
  const ok = check(res, {
    'status is an expected answer': (r) => [201, 409, 429].includes(r.status),
    'answer is JSON': (r) => (r.headers['Content-Type'] || '').startsWith('application/json'),
  });
  unexpected.add(!ok);
}

// No oversell, no unit lost, per SKU.
export function teardown(data) {
  for (const sku of data.skus) {
    const sale = saleCounters(sku);
    if (sale.stock + sale.reserved + sale.sold !== sale.total || sale.reserved + sale.sold > STOCK) {
      console.error(`sale ${sku}: ${JSON.stringify(sale)}`);
      broken.add(1);
    }
  }
}
