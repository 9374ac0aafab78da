// Shared by the k6 scenarios: the target, the sale to load, the order call.
import http from 'k6/http';
import { check } from 'k6';
import crypto from 'k6/crypto';
import encoding from 'k6/encoding';
import { Counter, Rate } from 'k6/metrics';

export const BASE_URL = __ENV.BASE_URL || 'http://127.0.0.1:8080';
export const ADMIN_TOKEN = __ENV.ADMIN_TOKEN || 'dev-admin-token';
const JSON_HEADERS = { 'content-type': 'application/json' };
// Buyer tokens are signed like a storefront's login would (HS256), by
// default with the gateway's development key.
const TOKEN_SECRET = __ENV.BUYER_TOKEN_SECRET || 'dev-buyer-token-signing-key';
const TOKEN_KID = __ENV.BUYER_TOKEN_KID || 'dev';

// A buyer token (JWT, HS256) naming `userId`, valid for an hour.
export function buyerToken(userId) {
  const part = (value) => encoding.b64encode(JSON.stringify(value), 'rawurl');
  const head = part({ alg: 'HS256', typ: 'JWT', kid: TOKEN_KID });
  const claims = part({ sub: String(userId), exp: Math.floor(Date.now() / 1000) + 3600 });
  const signature = crypto.hmac('sha256', TOKEN_SECRET, `${head}.${claims}`, 'base64rawurl');
  return `${head}.${claims}.${signature}`;
}

// Loads a sale of `stock` units (per-user limit 1 unless given); returns the SKU.
export function loadSale(prefix, stock, perUserLimit = 1) {
  const sku = `${prefix}_${Date.now()}`;
  const res = http.put(`${BASE_URL}/admin/skus/${sku}`,
    JSON.stringify({ stock, per_user_limit: perUserLimit, price_cents: 9900 }),
    { headers: { ...JSON_HEADERS, authorization: `Bearer ${ADMIN_TOKEN}` } });
  if (res.status !== 200) {
    throw new Error(`loading the sale failed: ${res.status} ${res.body}`);
  }
  return sku;
}

// POST /v1/orders; tags the request with the answer's error code.
export function placeOrder(userId, sku, key) {
  return http.post(`${BASE_URL}/v1/orders`,
    JSON.stringify({ user_id: userId, sku, qty: 1 }),
    {
      headers: { ...JSON_HEADERS, 'idempotency-key': key, authorization: `Bearer ${buyerToken(userId)}` },
      tags: { name: 'place_order' },
    });
}

// In a flash sale these are answers, not errors: accepted, replayed, sold
// out, rate limited.
export const EXPECTED = [202, 200, 409, 429];

// The sale's counters (GET /admin/skus/{sku}).
export function saleCounters(sku) {
  const res = http.get(`${BASE_URL}/admin/skus/${sku}`,
    { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
  if (res.status !== 200) {
    throw new Error(`reading the sale failed: ${res.status} ${res.body}`);
  }
  return res.json('sale');
}

export function checkAnswer(res, unexpected) {
  const ok = check(res, {
    'status is an expected answer': (r) => EXPECTED.includes(r.status),
    'answer is JSON': (r) => (r.headers['Content-Type'] || '').startsWith('application/json'),
  });
  unexpected.add(!ok);
}

// The executor of the steady scenarios: `rate` arrivals a second for
// `duration` (open loop), on VUS virtual users (MAX_VUS at most).
export function constantRate(rate, duration) {
  return {
    executor: 'constant-arrival-rate',
    rate,
    timeUnit: '1s',
    duration,
    preAllocatedVUs: Number(__ENV.VUS || 100),
    maxVUs: Number(__ENV.MAX_VUS || 500),
  };
}

// The metrics a single-order scenario's thresholds are on.
export function saleMetrics() {
  return {
    unexpected: new Rate('unexpected_answers'),
    accepted: new Counter('orders_accepted'),
    serverErrors: new Counter('server_errors'),
    broken: new Counter('sale_invariant_broken'),
  };
}
