// Browser tests of the Cairn dashboard. They drive Debian's Chromium
// (/usr/bin/chromium) with playwright-core against a suite that is already
// running with demo data, compare what the pages show with what the REST API
// returns, and save screenshots to e2e/screenshots/.
//
//   CAIRN_URL=http://127.0.0.1:8080 CAIRN_KEY=<read key> npm test
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const BASE = (process.env.CAIRN_URL || '').replace(/\/$/, '');
const KEY = process.env.CAIRN_KEY || '';
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const HERE = path.dirname(fileURLToPath(import.meta.url));
const SHOTS = path.join(HERE, 'screenshots');
const TIMEOUT = 20_000;

if (!BASE || !KEY) {
  throw new Error('set CAIRN_URL and CAIRN_KEY (a read key) to a running suite, or use e2e/run.sh');
}

let context;
let profile;

async function api(p) {
  const r = await fetch(BASE + p, { headers: { Authorization: 'Bearer ' + KEY } });
  const body = await r.json();
  assert.equal(r.status, 200, `GET ${p}: ${r.status} ${JSON.stringify(body)}`);
  return body;
}

// page opens a fresh tab that fails the test on any console error or
// uncaught exception (for example a Content-Security-Policy violation).
async function page(t, viewport = { width: 1366, height: 900 }) {
  const p = await context.newPage();
  await p.setViewportSize(viewport);
  const problems = [];
  p.on('console', (m) => { if (m.type() === 'error') problems.push('console: ' + m.text()); });
  p.on('pageerror', (e) => problems.push('pageerror: ' + e.message));
  t.after(async () => {
    await p.close();
    assert.deepEqual(problems.filter((x) => !/status of 40[134]/.test(x)), [], 'browser errors');
  });
  return p;
}

// settled waits until no section of the view is still loading.
async function settled(p) {
  await p.waitForFunction(() => !document.querySelector('#view .loading'), null, { timeout: TIMEOUT });
}

async function shot(p, name) {
  await p.screenshot({ path: path.join(SHOTS, name + '.png'), fullPage: true });
}

before(async () => {
  await mkdir(SHOTS, { recursive: true });
  profile = await mkdtemp(path.join(tmpdir(), 'cairn-e2e-profile-'));
  // A persistent context on a new temporary directory is a fresh
  // --user-data-dir, which playwright does not accept as a plain argument.
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  await context?.close();
  if (profile) await rm(profile, { recursive: true, force: true });
});

test('journey map shows each stage with the API\'s account counts', async (t) => {
  const funnel = await api('/v1/funnel');
  const stages = funnel.stages || [];
  assert.ok(stages.length > 0, 'the demo workspace has journey stages');
  assert.ok(stages.some((s) => Number(s.current) > 0), 'some stage has accounts');

  const p = await page(t);
  await p.goto(`${BASE}/#key=${encodeURIComponent(KEY)}`);
  await p.waitForSelector('[data-testid=stage-card]', { timeout: TIMEOUT });
  await settled(p);
  assert.equal(new URL(p.url()).hash, '#/journey', 'the key is removed from the URL');

  const cards = await p.$$eval('[data-testid=stage-card]', (els) => els.map((el) => ({
    stage: el.dataset.stage,
    count: el.querySelector('[data-testid=stage-count]').firstChild.textContent,
  })));
  const expect = (f) => (f.stages || []).map((s) => ({ stage: s.stage, count: Number(s.current || 0).toLocaleString('en-US') }));
  // Data may still be flowing in: the page must match the API just before or just after it rendered.
  const afterward = await api('/v1/funnel');
  if (JSON.stringify(cards) !== JSON.stringify(expect(funnel))) {
    assert.deepEqual(cards, expect(afterward));
  }
  assert.ok(await p.isVisible('[data-testid=funnel-chart]'), 'funnel chart drawn');
  // The segment choices are the segments the API saw, not a fixed list.
  const segments = await p.$$eval('#segment option', (els) => els.map((el) => el.value).filter(Boolean));
  assert.ok((funnel.segments || []).length > 0, 'the demo accounts have segments');
  assert.deepEqual(segments, funnel.segments);
  await shot(p, 'journey');

  // Clicking a stage lists its accounts.
  const busiest = stages.reduce((a, b) => (Number(b.current) > Number(a.current) ? b : a));
  await p.click(`[data-stage="${busiest.stage}"]`);
  await p.waitForSelector('[data-testid=account-table] tbody tr', { timeout: TIMEOUT });
  await shot(p, 'journey-stage-accounts');
});

test('account page shows the account\'s stage and health score', async (t) => {
  const list = await api('/v1/journey/accounts?page.pageSize=50');
  assert.ok((list.accounts || []).length > 0, 'the demo workspace has accounts');
  // Prefer an account with a health score so the number is meaningful.
  let account, health;
  for (const a of list.accounts.slice(0, 20)) {
    const r = await fetch(`${BASE}/v1/accounts/${encodeURIComponent(a.accountId)}/health`, { headers: { Authorization: 'Bearer ' + KEY } });
    if (r.ok) { account = a; health = (await r.json()).health; break; }
  }
  assert.ok(account, 'some account has a health score');
  const journey = (await api(`/v1/accounts/${encodeURIComponent(account.accountId)}/journey`)).journey;

  const p = await page(t);
  await p.goto(`${BASE}/#key=${encodeURIComponent(KEY)}`);
  await p.goto(`${BASE}/#/account/${encodeURIComponent(account.accountId)}`);
  await p.waitForSelector('[data-testid=health-score]', { timeout: TIMEOUT });
  await settled(p);
  assert.equal(await p.textContent('[data-testid=account-id]'), account.accountId);
  const shown = await p.textContent('[data-testid=health-score]');
  const later = (await api(`/v1/accounts/${encodeURIComponent(account.accountId)}/health`)).health;
  assert.ok([health, later].some((x) => Number(x.score || 0).toFixed(0) === shown),
    `page score ${shown}, API ${health.score} before and ${later.score} after`);
  assert.equal(await p.textContent('[data-testid=account-stage]'), journey.stage || '—');
  await shot(p, 'account');

  await p.setViewportSize({ width: 390, height: 844 });
  await shot(p, 'account-mobile');
});

test('lists show at-risk accounts, renewals, the routing queue and owner load', async (t) => {
  const atRisk = await api('/v1/health/accounts?band=BAND_AT_RISK&page.pageSize=25');
  const p = await page(t);
  await p.goto(`${BASE}/#key=${encodeURIComponent(KEY)}`);
  await p.goto(`${BASE}/#/lists`);
  await p.waitForSelector('[data-testid=owner-load] h2', { timeout: TIMEOUT });
  await settled(p);
  const riskRows = await p.$$eval('[data-testid=at-risk] tbody tr', (rows) => rows.length);
  assert.equal(riskRows, (atRisk.accounts || []).length, 'one row per at-risk account');
  for (const id of ['expansion', 'renewals', 'queue', 'owner-load']) {
    const text = await p.textContent(`[data-testid=${id}]`);
    assert.ok(text.trim().length > 10, `${id} rendered`);
    assert.ok(!(await p.$(`[data-testid=${id}] .error`)), `${id} has no error`);
  }
  assert.equal(await p.$$eval('[data-testid=renewals] .bucket', (b) => b.length), 4, '120/90/60/30 buckets');
  await shot(p, 'lists');
});

test('accounts list and API docs render', async (t) => {
  const p = await page(t);
  await p.goto(`${BASE}/#key=${encodeURIComponent(KEY)}`);
  await p.goto(`${BASE}/#/accounts`);
  await p.waitForSelector('[data-testid=account-table] tbody tr', { timeout: TIMEOUT });
  await shot(p, 'accounts');

  await p.goto(`${BASE}/docs`);
  await p.waitForSelector('details.op', { timeout: TIMEOUT });
  const ops = await p.$$eval('details.op', (els) => els.length);
  assert.ok(ops >= 40, `docs list every REST operation (got ${ops})`);
  await p.click('details.op[data-path="/v1/funnel"] summary');
  await shot(p, 'docs');
});

test('a bad key shows an error and asks for a key', async (t) => {
  const p = await page(t);
  await p.goto(`${BASE}/#key=not-a-real-key`);
  await p.waitForSelector('#view .error', { timeout: TIMEOUT });
  assert.match(await p.textContent('#view .error'), /not accepted/);
  assert.ok(await p.isVisible('#key-dialog'), 'key dialog opened');
  await shot(p, 'bad-key');
  await p.fill('#key-input', KEY);
  await p.click('#key-form button[type=submit]');
  await p.waitForSelector('[data-testid=stage-card]', { timeout: TIMEOUT });
});
