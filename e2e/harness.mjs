// The browser and API helpers every e2e test file shares: the suite's URL
// and keys from the environment, one Chromium (Debian's, driven by
// playwright-core) per test file, REST reads, pages that fail their test on
// a browser error, screenshots and axe-core checks.
import { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, readFile, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const BASE = (process.env.CAIRN_URL || '').replace(/\/$/, '');
export const KEY = process.env.CAIRN_KEY || '';
// WRITE_KEY, when given, lets a test send its own events (Segment /v1/batch)
// to make a situation the demo data may not hold.
export const WRITE_KEY = process.env.CAIRN_WRITE_KEY || '';
export const TIMEOUT = 20_000;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const SHOTS = path.join(path.dirname(fileURLToPath(import.meta.url)), 'screenshots');

if (!BASE || !KEY) {
  throw new Error('set CAIRN_URL and CAIRN_KEY (a read key) to a running suite, or use e2e/run.sh');
}

let context;
let profile;

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

// api GETs a REST path with the read key (query: extra parameters, empty
// ones left out) and asserts a 200.
export async function api(p, query = {}) {
  const qs = new URLSearchParams(Object.entries(query).filter(([, v]) => v !== '' && v !== undefined)).toString();
  const url = p + (qs ? (p.includes('?') ? '&' : '?') + qs : '');
  const r = await fetch(BASE + url, { headers: { Authorization: 'Bearer ' + KEY } });
  const body = await r.json();
  assert.equal(r.status, 200, `GET ${url}: ${r.status} ${JSON.stringify(body)}`);
  return body;
}

// page opens a fresh tab that fails the test on any console error or
// uncaught exception (for example a Content-Security-Policy violation).
export async function page(t, viewport = { width: 1366, height: 900 }) {
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
export async function settled(p) {
  await p.waitForFunction(() => !document.querySelector('#view .loading'), null, { timeout: TIMEOUT });
}

// shot saves the whole page. The sticky top bar is unstuck first, so that a
// page scrolled by a click does not show it over the middle of the page.
export async function shot(p, name) {
  await p.addStyleTag({ content: '.topbar { position: static !important; }' });
  await p.screenshot({ path: path.join(SHOTS, name + '.png'), fullPage: true });
}

// axeSerious runs axe-core (WCAG 2 A and AA) on the parts of the page the
// selectors name that exist, and returns its serious and critical
// violations as "rule: target".
export async function axeSerious(p, selectors) {
  await p.evaluate(await readFile(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8'));
  const res = await p.evaluate(async (sels) => window.axe.run({ include: sels.filter((s) => document.querySelector(s)).map((s) => [s]) }, { runOnly: ['wcag2a', 'wcag2aa'] }), selectors);
  return res.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => `${v.id}: ${v.nodes[0].target.join(' ')}`);
}
