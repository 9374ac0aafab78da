// Steady load: a fixed arrival rate (open loop, so latency is measured
// without coordinated omission) of distinct buyers against stock that never
// runs out: every answer should be a 202.
//
//   k6 run k6/steady.js -e RATE=500 -e DURATION=30s
import exec from 'k6/execution';
import { Rate } from 'k6/metrics';
import { loadSale, placeOrder, checkAnswer, constantRate } from './lib.js';

const RATE = Number(__ENV.RATE || 500);
const DURATION = __ENV.DURATION || '30s';
const unexpected = new Rate('unexpected_answers');

export const options = {
  scenarios: {
    steady: constantRate(RATE, DURATION),
  },
  thresholds: {
    unexpected_answers: ['rate<0.01'],
    'http_req_duration{name:place_order}': [`p(99)<${__ENV.P99_MS || 100}`],
    checks: ['rate>0.99'],
  },
};

export function setup() {
  return { sku: loadSale('k6_steady', 100000000), run: Date.now() };
}

export default function (data) {
  const buyer = data.run * 1000 + exec.scenario.iterationInTest;
  checkAnswer(placeOrder(buyer, data.sku, `k6-${data.run}-${buyer}`), unexpected);
}
