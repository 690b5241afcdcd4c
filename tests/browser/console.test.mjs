// The admin console end to end, in a real browser: Debian's Chromium driven by playwright-core
// against `shop up` (the binary given in SHOP_BIN, on a fresh data dir and a free port).
//
//   node tests/browser/console.test.mjs      (scripts/browser-test sets everything up)
//
// Environment: SHOP_BIN (the shop binary), SHOP_BROWSER_TOOL (the `browser` tool's directory,
// with node_modules), CHROMIUM (the browser), ARTIFACTS (where screenshots and the report go).
// Every page is checked with axe-core (no serious or critical violation), its first load is
// measured (bytes transferred, cache disabled) and must stay under 200 KB, and the page must
// log no Content-Security-Policy violation or script error.

import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import assert from 'node:assert/strict';

const TOOL = process.env.SHOP_BROWSER_TOOL;
const BIN = process.env.SHOP_BIN;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ARTIFACTS = process.env.ARTIFACTS || join(tmpdir(), `shop-console-${Date.now()}`);
const BUDGET = 200 * 1024;
assert.ok(TOOL && BIN, 'SHOP_BROWSER_TOOL and SHOP_BIN must be set (run scripts/browser-test)');

const require = createRequire(join(TOOL, 'package.json'));
const { chromium } = require('playwright-core');
const AXE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

mkdirSync(ARTIFACTS, { recursive: true });
const started = Date.now();
const steps = [];
const report = { pages: {}, axe: {}, steps };
const problems = []; // CSP violations and script errors, from every page
const refusals = []; // the API's 4xx/5xx answers (and session renewals), with their bodies

async function step(name, fn) {
  const t0 = Date.now();
  process.stdout.write(`  ${name} … `);
  try {
    await fn();
  } catch (err) {
    process.stdout.write('FAILED\n');
    await shot(`FAILED-${name}`).catch(() => {});
    throw err;
  }
  const ms = Date.now() - t0;
  steps.push({ name, ms });
  process.stdout.write(`ok (${(ms / 1000).toFixed(1)} s)\n`);
}

// ---------------------------------------------------------------- the shop

const dataDir = mkdtempSync(join(tmpdir(), 'shop-console-data-'));
const profile = mkdtempSync(join(tmpdir(), 'shop-console-chromium-'));
const shop = spawn(BIN, ['up', '--data-dir', dataDir, '--addr', '127.0.0.1:0'], {
  env: {
    ...process.env,
    SHOP_LOG: process.env.SHOP_LOG || 'warn',
    SHOP_LOG_FORMAT: 'text',
    NO_COLOR: '1',
    // Low-stock alerts go to these addresses; `shop up` has none unless told.
    SHOP_NOTIFICATION__ADMIN_EMAILS: '["admin@example.com"]',
  },
  stdio: ['ignore', 'pipe', 'pipe'],
});
// When the run is cut short (scripts/browser-test's time limit sends SIGTERM), the shop and the
// temporary directories go too (Chromium exits with its parent).
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    shop.kill('SIGKILL');
    rmSync(profile, { recursive: true, force: true });
    rmSync(dataDir, { recursive: true, force: true });
    console.error(`\n${sig}: stopped after ${((Date.now() - started) / 1000).toFixed(1)} s`);
    process.exit(1);
  });
}
let shopLog = '';
shop.stderr.on('data', (d) => (shopLog += d));
const base = await new Promise((resolve, reject) => {
  let out = '';
  const timer = setTimeout(() => reject(new Error(`shop up did not start within 120 s:\n${out}\n${shopLog}`)), 120_000);
  shop.stdout.on('data', (d) => {
    out += d;
    const m = out.match(/Console\s+(http:\/\/[\d.:]+)\/admin/);
    if (m) {
      clearTimeout(timer);
      resolve(m[1]);
    }
  });
  shop.on('exit', (code) => reject(new Error(`shop up exited with ${code}:\n${out}\n${shopLog}`)));
});
console.log(`shop up at ${base} (data in ${dataDir})`);

let browser;
let page;
let cdp;
const cleanup = async () => {
  await browser?.close().catch(() => {});
  shop.kill('SIGTERM');
  rmSync(profile, { recursive: true, force: true });
  rmSync(dataDir, { recursive: true, force: true });
};

// ---------------------------------------------------------------- API helpers (the customer's side)

async function call(method, path, { token, body, key } = {}) {
  const headers = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  if (key) headers['idempotency-key'] = key;
  const res = await fetch(base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {}
  return { status: res.status, body: json ?? text };
}

async function login(email, password) {
  const r = await call('POST', '/api/v1/auth/login', { body: { email, password } });
  assert.equal(r.status, 200, `login ${email}: ${JSON.stringify(r.body)}`);
  return r.body.accessToken;
}

async function until(what, fn, ms = 30_000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

// ---------------------------------------------------------------- browser helpers

async function shot(name, { fullPage = true } = {}) {
  const file = join(ARTIFACTS, `${name.replace(/[^a-z0-9-]+/gi, '-').toLowerCase()}.png`);
  await page.screenshot({ path: file, fullPage });
  return file;
}

/** axe-core in the page; serious and critical violations fail the test. */
async function axe(name) {
  await page.evaluate(AXE);
  const result = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(' ')).slice(0, 5) }));
  });
  report.axe[name] = result;
  const bad = result.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  assert.deepEqual(bad, [], `accessibility violations on ${name}:\n${JSON.stringify(bad, null, 2)}`);
}

/**
 * Loads `path` as a first visit (browser cache disabled) and sums what crossed the network,
 * headers included: the console's files and the API answers apart. Fails over the budget.
 */
async function firstLoad(name, path, ready) {
  const sizes = new Map();
  const urls = new Map();
  const onResponse = (e) => urls.set(e.requestId, e.response.url);
  const onFinished = (e) => sizes.set(e.requestId, e.encodedDataLength);
  cdp.on('Network.responseReceived', onResponse);
  cdp.on('Network.loadingFinished', onFinished);
  await cdp.send('Network.setCacheDisabled', { cacheDisabled: true });
  await page.goto(base + path, { waitUntil: 'networkidle' });
  if (ready) await ready();
  await page.waitForLoadState('networkidle');
  cdp.off('Network.responseReceived', onResponse);
  cdp.off('Network.loadingFinished', onFinished);
  await cdp.send('Network.setCacheDisabled', { cacheDisabled: false });
  let assets = 0;
  let apiBytes = 0;
  let files = 0;
  for (const [id, bytes] of sizes) {
    const u = new URL(urls.get(id) || base, base);
    if (u.pathname.startsWith('/api/')) apiBytes += bytes;
    else {
      assets += bytes;
      files += 1;
    }
  }
  report.pages[name] = { path, assetBytes: assets, assetFiles: files, apiBytes, totalBytes: assets + apiBytes };
  assert.ok(assets + apiBytes <= BUDGET, `${name}: ${assets + apiBytes} bytes on first load (budget ${BUDGET})`);
  return report.pages[name];
}

/** Every visited page: measured, checked for accessibility, photographed. */
async function visit(name, path, ready) {
  await firstLoad(name, path, ready);
  await axe(name);
  await shot(name);
}

const heading = (name) => page.getByRole('heading', { level: 1, name });

// ---------------------------------------------------------------- the scenario

let exitCode = 0;
try {
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1366, height: 768 },
    locale: 'en-GB',
    timezoneId: 'UTC',
  });
  browser = context;
  page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(15_000);
  cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  page.on('console', (m) => {
    // An API refusal (401 before sign-in or on an expired session, 4xx the page shows) is logged
    // by Chromium as a failed resource; the test checks what the page makes of it.
    if (/^Failed to load resource: the server responded with a status of 4\d\d/.test(m.text())) return;
    if (m.type() === 'error' || /Content.Security.Policy/i.test(m.text())) problems.push(`console ${m.type()}: ${m.text()}`);
  });
  // Every file of the console loads: a failing one would be a broken page.
  page.on('response', (r) => {
    const u = new URL(r.url());
    if (u.origin === base && !u.pathname.startsWith('/api/') && r.status() >= 400) problems.push(`${r.status()} for ${u.pathname}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  // The API's refusals, for the report of a failed step (what the page was told).
  page.on('response', (r) => {
    const u = new URL(r.url());
    // Every session renewal too: a refused one is easier to read beside the ones that worked.
    if (u.origin === base && u.pathname.startsWith('/api/') && (r.status() >= 400 || u.pathname.endsWith('/session/refresh'))) {
      const line = `${new Date().toISOString()} ${r.request().method()} ${u.pathname}${u.search} → ${r.status()}`;
      r.text()
        .then((body) => refusals.push(`${line} ${body.slice(0, 300)}`))
        .catch(() => refusals.push(line));
    }
  });
  // Requests that leave the shop would be an error: the console loads nothing from the internet.
  page.on('request', (r) => {
    const u = new URL(r.url());
    if (!['data:', 'blob:'].includes(u.protocol) && u.origin !== base) problems.push(`request off the shop: ${r.url()}`);
  });

  await step('sign-in page: accessible, wrong password refused, keyboard-only sign-in', async () => {
    await visit('sign-in', '/admin/', () => heading('ShopPlatform admin').waitFor());
    await page.getByLabel('Email').fill('admin@example.com');
    await page.getByLabel('Password').fill('not-the-password');
    await page.keyboard.press('Enter');
    await page.getByRole('alert').filter({ hasText: 'The email or password is wrong.' }).waitFor();
    await page.getByLabel('Email').fill('');
    await page.getByLabel('Password').fill('');
    // Keyboard only: focus the email field, type, tab, type, Enter.
    await page.getByLabel('Email').focus();
    await page.keyboard.type('admin@example.com');
    await page.keyboard.press('Tab');
    await page.keyboard.type('Admin123!');
    await page.keyboard.press('Enter');
    await heading('Dashboard').waitFor();
    const cookies = await browser.cookies(base);
    const session = cookies.find((c) => c.name === 'shop_session');
    assert.ok(session && session.httpOnly && session.sameSite === 'Strict', 'the session is an HttpOnly, SameSite=Strict cookie');
    const stored = await page.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }) + document.cookie);
    assert.ok(!/eyJ/.test(stored), 'no token is readable by the page (storage, document.cookie)');
  });

  await step('dashboard: the seeded shop, the services, keyboard navigation', async () => {
    await visit('dashboard', '/admin/', async () => {
      await heading('Dashboard').waitFor();
      await page.getByRole('region', { name: 'Each service’s health and version' }).getByRole('row', { name: /catalog/ }).waitFor();
      await page.getByRole('region', { name: 'Products at or below their reorder level' }).waitFor();
    });
    const services = page.getByRole('region', { name: 'Each service’s health and version' }).getByRole('row');
    assert.equal(await services.count(), 9, 'a header row and eight services');
    assert.equal(await page.getByRole('region', { name: 'Each service’s health and version' }).getByText('down').count(), 0);
    const low = Number(await page.locator('.stat', { hasText: 'Low-stock products' }).locator('.value').innerText());
    assert.ok(low > 0, 'the seed has low-stock products');
    // The skip link comes first in the keyboard's order (just before the header's first link),
    // and it leads to the content.
    await page.getByRole('link', { name: /^ShopPlatform/ }).focus();
    await page.keyboard.press('Shift+Tab');
    assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Skip to content');
    await page.keyboard.press('Enter');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'main');
  });

  // A customer buys something through the API, as the storefront would.
  let orderId;
  let customerEmail;
  await step('a customer places and pays an order through the API', async () => {
    // The seeded demo customer: a new registration must first confirm its address by mail.
    customerEmail = 'customer@example.com';
    const login = await call('POST', '/api/v1/auth/login', { body: { email: customerEmail, password: 'Customer123!' } });
    assert.equal(login.status, 200, JSON.stringify(login.body));
    const token = login.body.accessToken;
    const products = await call('GET', '/api/v1/products?pageSize=1&sort=-price');
    const product = products.body.items[0];
    const order = await call('POST', '/api/v1/orders', {
      token,
      key: `order-${Date.now()}`,
      body: { items: [{ productId: product.id, quantity: 1 }], shippingAddress: { name: 'Grace Hopper', line1: '1 Navy Way', city: 'Arlington', postalCode: '22201', country: 'US' } },
    });
    assert.equal(order.status, 201, JSON.stringify(order.body));
    orderId = order.body.id;
    const intent = await call('POST', '/api/v1/payments/intent', { token, key: `intent-${orderId}`, body: { orderId } });
    assert.ok([200, 201].includes(intent.status), JSON.stringify(intent.body));
    const confirmed = await call('POST', `/api/v1/payments/${intent.body.id}/confirm`, { token, body: { paymentMethod: 'pm_card_visa' } });
    assert.equal(confirmed.body.status, 'AUTHORIZED');
    await until('the payment to be captured', async () => (await call('GET', `/api/v1/payments/${intent.body.id}`, { token })).body.status === 'CAPTURED');
    await until('the order to be paid', async () => (await call('GET', `/api/v1/orders/${orderId}`, { token })).body.status === 'PAID');
  });

  await step('orders: find the order by the customer’s email, open it', async () => {
    await visit('orders', '/admin/orders', () => page.getByRole('region', { name: 'Orders, newest first' }).waitFor());
    await page.getByLabel('Order id or customer email').fill(customerEmail.slice(0, 14));
    await page.getByLabel('Status').selectOption('PAID');
    await page.getByRole('button', { name: 'Apply' }).click();
    const rows = page.getByRole('region', { name: 'Orders, newest first' }).getByRole('row');
    await rows.filter({ hasText: customerEmail }).waitFor();
    assert.equal(await rows.count(), 2, 'a header and the one order');
    await rows.filter({ hasText: customerEmail }).getByRole('link').click();
    await heading(/Order/).waitFor();
    await page.getByText(orderId).waitFor();
    assert.match(await heading(/Order/).innerText(), /paid/);
    await axe('order-paid');
    await shot('order-paid');
    await firstLoad('order-detail', `/admin/orders/${orderId}`, () => page.getByRole('heading', { name: 'Payment', exact: true }).waitFor());
  });

  await step('ship the order (carrier, tracking number)', async () => {
    await page.getByRole('button', { name: 'Ship…' }).click();
    const dlg = page.getByRole('dialog', { name: /Ship order/ });
    await dlg.waitFor();
    await axe('ship-dialog');
    await dlg.getByLabel('Carrier').fill('UPS');
    await dlg.getByLabel('Tracking number').fill('1Z999AA10123456784');
    await dlg.getByRole('button', { name: 'Ship', exact: true }).click();
    await page.getByRole('status').filter({ hasText: 'shipped' }).first().waitFor();
    await until('the page to show SHIPPED', async () => /shipped/.test(await heading(/Order/).innerText()));
    await page.getByText('1Z999AA10123456784').waitFor();
  });

  await step('refund part of the payment', async () => {
    await page.getByRole('button', { name: 'Refund…' }).click();
    const dlg = page.getByRole('dialog', { name: 'Refund the payment' });
    await dlg.getByLabel('Part of it').check();
    await dlg.getByLabel(/Amount/).fill('abc');
    await dlg.getByRole('button', { name: 'Refund', exact: true }).click();
    await dlg.getByText('a positive amount in USD').waitFor(); // the field's own error
    await dlg.getByLabel(/Amount/).fill('5.00');
    await dlg.getByLabel('Reason').fill('Scratched box');
    await dlg.getByRole('button', { name: 'Refund', exact: true }).click();
    await page.getByRole('status').filter({ hasText: 'partially refunded' }).first().waitFor();
    const refunds = page.getByRole('region', { name: 'Refunds of this payment' });
    await refunds.getByRole('row', { name: /\$5\.00/ }).waitFor();
    await refunds.getByText('Scratched box').waitFor();
    await shot('order-shipped-refunded');
    await axe('order-shipped-refunded');
    // The README's picture (docs/console.png): the top of the page, as a laptop shows it.
    await page.evaluate(() => window.scrollTo(0, 0));
    await shot('readme', { fullPage: false });
  });

  await step('payments: the refunded payment in the list', async () => {
    await visit('payments', '/admin/payments?status=PARTIALLY_REFUNDED', () => page.getByRole('region', { name: 'Payments, newest first' }).waitFor());
    await page.getByRole('region', { name: 'Payments, newest first' }).getByRole('link', { name: orderId.slice(0, 8) }).waitFor();
  });

  await step('events: the order’s events end to end, and a live one', async () => {
    await visit('events-order', `/admin/events?orderId=${orderId}`, () => page.getByRole('status').filter({ hasText: 'Live' }).waitFor());
    const table = page.getByRole('region', { name: 'Events, newest first' });
    for (const type of ['order.placed', 'inventory.reserved', 'payment.authorized', 'order.confirmed', 'payment.captured', 'order.shipped', 'shipment.shipped', 'payment.refunded']) {
      await table.getByRole('rowheader', { name: type, exact: true }).first().waitFor();
    }
    await table.getByRole('button', { name: /View payment\.refunded/ }).first().click();
    await page.getByRole('heading', { level: 2, name: /payment\.refunded/ }).waitFor();
    await page.getByText('"amount": 500').waitFor();
    // Live: delivering the order now shows up without a reload.
    const admin = await login('admin@example.com', 'Admin123!');
    const delivered = await call('POST', `/api/v1/orders/${orderId}/shipment/deliver`, { token: admin });
    assert.equal(delivered.status, 200, JSON.stringify(delivered.body));
    await table.getByRole('rowheader', { name: 'order.delivered', exact: true }).waitFor();
    await shot('events-live');
  });

  await step('inventory: adjust stock below the reorder level, see the low-stock alert', async () => {
    const admin = await login('admin@example.com', 'Admin123!');
    const stock = await call('GET', '/api/v1/inventory?pageSize=100', { token: admin });
    const row = stock.body.items.find((s) => !s.lowStock && s.availableQuantity > s.reorderLevel + 5);
    report.lowStockProduct = row.productId;
    const lowBefore = (await call('GET', '/api/v1/inventory?lowStock=true&pageSize=1', { token: admin })).body.total;
    await visit('inventory', '/admin/inventory', () => page.getByRole('region', { name: 'Stock per product, by SKU' }).waitFor());
    await visit('inventory-product', `/admin/inventory/${row.productId}`, () => page.getByRole('region', { name: 'Stock movements, newest first' }).waitFor());
    const damage = row.availableQuantity - row.reorderLevel;
    await page.getByLabel('Type').selectOption('DAMAGE');
    await page.getByLabel('Quantity').fill(String(row.availableQuantity + 1000));
    await page.getByRole('button', { name: 'Adjust stock' }).click();
    await page.getByRole('alert').filter({ hasText: /insufficient|below/i }).waitFor(); // the API's refusal, shown
    await page.getByLabel('Quantity').fill(String(damage));
    await page.getByLabel('Reason').fill('Water damage');
    await page.getByRole('button', { name: 'Adjust stock' }).click();
    await page.getByRole('status').filter({ hasText: 'low stock' }).first().waitFor();
    await page.getByRole('region', { name: 'Stock movements, newest first' }).getByText('Water damage').waitFor();
    await page.getByText('low', { exact: true }).first().waitFor();
    await visit('dashboard-after', '/admin/', () => page.getByRole('region', { name: 'Products at or below their reorder level' }).waitFor());
    const low = Number(await page.locator('.stat', { hasText: 'Low-stock products' }).locator('.value').innerText());
    assert.equal(low, lowBefore + 1, 'one more low-stock product');
    // The admins are alerted.
    await until('the low-stock alert', async () => {
      const n = await call('GET', '/api/v1/notifications/admin/all?type=LOW_STOCK_ALERT&pageSize=100', { token: admin });
      return n.body.items.some((x) => x.content.includes(row.productId));
    });
    await visit('notifications', '/admin/notifications?type=LOW_STOCK_ALERT', () => page.getByRole('region', { name: 'Notifications, newest first' }).waitFor());
  });

  await step('customers: disable a customer (who can then no longer sign in)', async () => {
    await visit('customers', '/admin/customers?email=customer007', () => page.getByRole('region', { name: 'Accounts, oldest first' }).waitFor());
    await page.getByRole('button', { name: 'Disable customer007@example.com' }).click();
    const dlg = page.getByRole('dialog');
    await dlg.getByRole('button', { name: 'Disable the account' }).click();
    await page.getByRole('region', { name: 'Accounts, oldest first' }).getByText('disabled').waitFor();
    const r = await call('POST', '/api/v1/auth/login', { body: { email: 'customer007@example.com', password: 'Customer123!' } });
    assert.equal(r.status, 403);
    assert.equal(r.body.code, 'account_disabled');
  });

  await step('catalog: a product created and edited, the API’s validation errors on their fields; categories; brands', async () => {
    await visit('products', '/admin/products', () => page.getByRole('region', { name: 'Products' }).waitFor());
    await visit('product-new', '/admin/products/new', () => page.getByLabel('Name').waitFor());
    await page.getByLabel('Name').fill('Console test lamp');
    await page.getByLabel('SKU').fill('not a sku!');
    await page.getByLabel('Price').fill('19.99');
    await page.getByLabel('Category').selectOption({ index: 1 });
    await page.getByRole('button', { name: 'Create product' }).click();
    const skuError = page.locator('.field[data-field="sku"] .field-error');
    await skuError.waitFor();
    assert.equal(await page.getByLabel('SKU').getAttribute('aria-invalid'), 'true');
    await page.getByLabel('SKU').fill('LAMP-0001');
    await page.getByRole('button', { name: 'Create product' }).click();
    await heading('Console test lamp').waitFor();
    // Edit it: the API refuses a bad slug, and says so on the field; then the fixed edit is saved.
    await page.getByLabel('Slug').fill('Not a slug!');
    await page.getByLabel('Price').fill('24.50');
    await page.getByRole('button', { name: 'Save changes' }).click();
    await page.locator('.field[data-field="slug"] .field-error').waitFor();
    assert.equal(await page.getByLabel('Slug').getAttribute('aria-invalid'), 'true');
    await axe('product-edit-error');
    await shot('product-edit-error');
    await page.getByLabel('Slug').fill('console-test-lamp');
    await page.getByRole('button', { name: 'Save changes' }).click();
    await page.getByRole('status').filter({ hasText: 'Saved Console test lamp' }).first().waitFor();
    const saved = await call('GET', '/api/v1/products/console-test-lamp', { token: await login('admin@example.com', 'Admin123!') });
    assert.equal(saved.status, 200, JSON.stringify(saved.body));
    assert.equal(saved.body.price.amount, 2450);
    await visit('categories', '/admin/categories', () => page.getByRole('region', { name: /Categories/ }).waitFor());
    // A category that products name cannot go: the dialog says why, and nothing changes.
    const inUse = (await call('GET', '/api/v1/products/console-test-lamp')).body.category.name;
    await page.getByRole('button', { name: `Delete ${inUse}`, exact: true }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Delete' }).click();
    await page.getByRole('dialog').getByText(/still named by/).waitFor();
    await page.getByRole('dialog').getByRole('button', { name: 'Cancel' }).click();
    // A brand nothing names is deleted from its row.
    const admin = await login('admin@example.com', 'Admin123!');
    const made = await call('POST', '/api/v1/brands', { token: admin, body: { name: 'Console Spare Brand' } });
    assert.equal(made.status, 201, JSON.stringify(made.body));
    await visit('brands', '/admin/brands', () => page.getByRole('region', { name: 'Brands' }).waitFor());
    await page.getByRole('button', { name: 'Delete Console Spare Brand' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Delete' }).click();
    await page.getByRole('status').filter({ hasText: 'Deleted Console Spare Brand' }).first().waitFor();
    assert.equal((await call('GET', `/api/v1/brands/${made.body.id}`)).status, 404);
  });

  await step('session expiry: renewed through the refresh cookie, then back to sign-in', async () => {
    // The access token's cookie goes (as when it expires): the next call renews the session.
    // First the page finishes its requests: Playwright clears a named cookie by clearing all and
    // adding the others back, and a request of the old page caught in between is refused, renews
    // the session, and loses the renewed cookies when the navigation below cancels it (the next
    // renewal then presents a used refresh token, and the whole session is revoked).
    await page.waitForLoadState('networkidle');
    await browser.clearCookies({ name: 'shop_session' });
    await page.goto(`${base}/admin/payments`);
    await page.getByRole('region', { name: 'Payments, newest first' }).waitFor();
    assert.ok((await browser.cookies(base)).some((c) => c.name === 'shop_session'), 'a new session cookie');
    // Everything goes (the session is over): the console says so and offers to sign in again.
    await browser.clearCookies();
    await page.getByRole('link', { name: 'Orders' }).click();
    await page.getByRole('status').filter({ hasText: 'Your session has expired' }).first().waitFor();
    await page.getByLabel('Email').fill('admin@example.com');
    await page.getByLabel('Password').fill('Admin123!');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await heading(/Orders|Dashboard/).waitFor();
  });

  await step('a tablet: order and dashboard fit the screen', async () => {
    await page.setViewportSize({ width: 820, height: 1180 });
    for (const [name, path, ready] of [
      ['tablet-dashboard', '/admin/', () => page.getByRole('region', { name: 'Each service’s health and version' }).waitFor()],
      ['tablet-order', `/admin/orders/${orderId}`, () => page.getByRole('heading', { name: 'Payment', exact: true }).waitFor()],
      ['tablet-events', '/admin/events', () => page.getByRole('status').filter({ hasText: 'Live' }).waitFor()],
    ]) {
      await page.goto(base + path);
      await ready();
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `${name}: the page is ${overflow}px wider than the screen`);
      await axe(name);
      await shot(name);
    }
    await page.setViewportSize({ width: 1366, height: 768 });
  });

  await step('sign out', async () => {
    await page.goto(`${base}/admin/`);
    await heading('Dashboard').waitFor();
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByText('You are signed out.').waitFor();
    assert.ok(!(await browser.cookies(base)).some((c) => c.name === 'shop_session'));
    const r = await page.evaluate(async () => (await fetch('/api/v1/console/session')).status);
    assert.equal(r, 401);
  });

  assert.deepEqual(problems, [], `the pages logged errors:\n${problems.join('\n')}`);
} catch (err) {
  exitCode = 1;
  console.error(`\n${err.stack || err}`);
  if (problems.length) console.error(`\nBrowser problems:\n${problems.join('\n')}`);
  if (refusals.length) console.error(`\nThe API's last refusals and session renewals:\n${refusals.slice(-20).join('\n')}`);
  console.error(`\nshop up's log (warnings and errors):\n${shopLog.slice(-4000)}`);
} finally {
  report.totalSeconds = (Date.now() - started) / 1000;
  writeFileSync(join(ARTIFACTS, 'report.json'), JSON.stringify(report, null, 2));
  await cleanup();
}

console.log('\nFirst loads (cache disabled; bytes on the wire, headers included):');
for (const [name, p] of Object.entries(report.pages)) {
  console.log(`  ${name.padEnd(18)} ${String(p.totalBytes).padStart(7)} B  (console files ${p.assetBytes} B in ${p.assetFiles}, API ${p.apiBytes} B)`);
}
const serious = Object.values(report.axe).flat().filter((v) => ['serious', 'critical'].includes(v.impact)).length;
const minor = Object.values(report.axe).flat().length - serious;
console.log(`Accessibility (axe-core): ${Object.keys(report.axe).length} pages checked, ${serious} serious/critical, ${minor} moderate/minor violations`);
console.log(`${steps.length} steps in ${report.totalSeconds.toFixed(1)} s`);
console.log(`Screenshots and report: ${ARTIFACTS}`);
process.exit(exitCode);
