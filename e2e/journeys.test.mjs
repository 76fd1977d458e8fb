// Browser tests of journey switching on the funnel view (the RevOps journey
// selector). The demo workspace has two journeys: the sales-led default and
// the self-serve trial journey (cmd/cairn/internal/demo/journey.yaml). These
// tests switch between them in the page and check that every number shown
// is the selected journey's, as GET /v1/funnel answers for it, and that
// each clicks through to exactly the accounts it counts.
//
//   CAIRN_URL=http://127.0.0.1:8080 CAIRN_KEY=<read key> node --test journeys.test.mjs
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, KEY, TIMEOUT, api, page as blankPage, settled, shot, axeSerious } from './harness.mjs';

// page opens a fresh tab with the key, failing the test on a browser error.
async function page(t, viewport) {
  const p = await blankPage(t, viewport);
  await p.goto(`${BASE}/#key=${encodeURIComponent(KEY)}`);
  return p;
}

// shown reads what the funnel view shows: per stage its card's "now" count
// and its row of the stage metrics, and the "where every account is" terms.
async function shown(p) {
  return p.evaluate(() => {
    const int = (el) => Number((el ? el.textContent : '').replace(/[^0-9]/g, '') || 0);
    return {
      stages: [...document.querySelectorAll('[data-testid=stage-card]')].map((el) => ({ stage: el.dataset.stage, current: int(el.querySelector('[data-testid=stage-count]').firstChild) })),
      entered: [...document.querySelectorAll('[data-testid=stage-metrics] tbody tr')].map((r) => int(r.children[2])),
      total: int(document.querySelector('[data-testid=funnel-total]')),
      inStages: int(document.querySelector('[data-testid=funnel-in-stages]')),
      churned: int(document.querySelector('[data-testid=funnel-churned]')),
      notPlaced: int(document.querySelector('[data-testid=funnel-not-placed]')),
      overallEntered: int(document.querySelector('[data-testid=overall-entered]')),
    };
  });
}

// expected is what shown must read for a GET /v1/funnel answer.
function expected(f) {
  const stages = (f.stages || []).map((s) => ({ stage: s.stage, current: Number(s.current || 0) }));
  const inStages = stages.reduce((t, s) => t + s.current, 0);
  return {
    stages, entered: (f.stages || []).map((s) => Number(s.entered || 0)),
    total: inStages + Number(f.churned || 0) + Number(f.notPlaced || 0), inStages,
    churned: Number(f.churned || 0), notPlaced: Number(f.notPlaced || 0), overallEntered: Number((f.overall || {}).entered || 0),
  };
}

// matchesApi asserts the page shows the journey's funnel as the API answers
// it just before or just after the page was read (data may still move).
async function matchesApi(p, journeyId, what) {
  const before = await api('/v1/funnel', { journeyId });
  const got = await shown(p);
  const afterward = await api('/v1/funnel', { journeyId });
  if (JSON.stringify(got) !== JSON.stringify(expected(before))) {
    assert.deepEqual(got, expected(afterward), `${what}: the page shows the API's funnel of journey ${journeyId || '(default)'}`);
  }
  return { got, funnel: afterward };
}

// selectJourney picks a journey in the selector and waits for its funnel.
async function selectJourney(p, j) {
  await p.selectOption('[data-testid=journey-select]', j.isDefault ? '' : j.id);
  await p.waitForFunction((id) => (id ? location.hash.includes('journey=' + encodeURIComponent(id)) : !/journey=/.test(location.hash)), j.isDefault ? '' : j.id, { timeout: TIMEOUT });
  await p.waitForSelector('[data-testid=stage-card]', { timeout: TIMEOUT });
  await settled(p);
}

// listed clicks a count and returns the number the page says it lists and
// the account ids of the rows it lists.
async function listed(p, selector) {
  const el = await p.$(selector);
  assert.ok(el, `${selector} is shown`);
  const n = Number(await el.getAttribute('data-count'));
  await el.click();
  await p.waitForSelector('[data-testid=figure-accounts-count]', { timeout: TIMEOUT });
  const ids = await p.$$eval('[data-testid=figure-account-table] tbody tr', (rs) => rs.map((r) => r.dataset.accountRow));
  return { n, count: Number(await p.getAttribute('[data-testid=figure-accounts-count]', 'data-count')), ids };
}

test('funnel: switching journeys shows each journey\'s own numbers, and its counts list exactly their accounts', async (t) => {
  const { journeys = [] } = await api('/v1/journeys');
  assert.ok(journeys.length >= 2, `the demo workspace has two journeys: ${JSON.stringify(journeys.map((j) => j.id))}`);
  const def = journeys.find((j) => j.isDefault);
  const other = journeys.find((j) => !j.isDefault);
  assert.ok(def && other && journeys[0] === def, 'the default journey is listed first');

  const p = await page(t);
  await p.goto(`${BASE}/#/journey`);
  await p.waitForSelector('[data-testid=stage-card]', { timeout: TIMEOUT });
  await settled(p);
  // The selector offers every journey by name, the default one chosen.
  const options = await p.$$eval('[data-testid=journey-select] option', (els) => els.map((el) => ({ value: el.value, text: el.textContent, selected: el.selected })));
  assert.deepEqual(options.map((o) => o.text), journeys.map((j) => (j.name || j.id) + (j.isDefault ? ' (default)' : '')));
  assert.deepEqual(options.filter((o) => o.selected).map((o) => o.value), [''], 'the default journey is selected');
  const { got: first } = await matchesApi(p, '', 'default journey');

  // Switch: the stages, counts and totals become the other journey's.
  await selectJourney(p, other);
  assert.equal(await p.$eval('[data-testid=journey-select]', (el) => el.selectedOptions[0].textContent), other.name || other.id);
  const { got: second, funnel } = await matchesApi(p, other.id, other.id);
  assert.equal(second.stages.length, Number(other.stages), `${other.id} shows its own ${other.stages} stages`);
  assert.notDeepEqual(second.stages, first.stages, 'the stages and counts change with the journey');
  assert.notEqual(second.inStages, first.inStages, 'the accounts in a stage change with the journey');
  assert.ok(second.inStages > 0, `${other.id} has accounts in its stages`);
  // The same accounts are somewhere in every journey; here most are not placed, and the page says why.
  assert.equal(second.total, first.total, 'both journeys know every account once');
  if (second.notPlaced) {
    const reasons = await p.textContent('[data-testid=not-placed-reasons]');
    for (const r of funnel.notPlacedReasons || []) {
      if (r.reason !== 'no_behavioural_event') assert.ok(reasons.includes('not met: ' + r.reason.replace(/_/g, ' ')), `the reason ${r.reason} is shown: ${reasons}`);
    }
  }
  const text = await p.textContent('#view');
  assert.doesNotMatch(text, /FUNNEL_|NaN|undefined|\bnull\b/);
  await shot(p, 'journeys-switched');

  // Each count lists exactly the accounts it counts in the selected journey:
  // the busiest stage's "now", and the accounts that entered its first stage.
  const busiest = funnel.stages.reduce((a, b) => (Number(b.current || 0) > Number(a.current || 0) ? b : a));
  const now = await listed(p, `[data-testid=stage-metrics] tr[data-stage="${busiest.stage}"] [data-figure=current]`);
  const inStage = await api('/v1/journey/accounts', { journeyId: other.id, stage: busiest.stage, 'page.pageSize': 1000 });
  const inStageIds = (inStage.accounts || []).map((a) => a.accountId).sort();
  assert.equal(now.count, now.n, `${busiest.stage} now: the list says it lists the count`);
  assert.deepEqual([...now.ids].sort(), inStageIds, `${busiest.stage} now: exactly the accounts of journey ${other.id} in the stage`);
  assert.equal(now.ids.length, Number(busiest.current), 'one row per account counted');
  const entered = await listed(p, '[data-testid=overall-entered]');
  const enteredApi = await api('/v1/funnel', { journeyId: other.id, accountsFigure: 'overall_entered' });
  assert.equal(entered.count, entered.n);
  assert.deepEqual([...entered.ids].sort(), [...(enteredApi.accountIds || [])].sort(), 'overall entered: exactly the accounts the API counts');
  await shot(p, 'journeys-switched-accounts');

  // The stage card of the selected journey lists the accounts in its stage, too.
  await p.click(`[data-testid=stage-card][data-stage="${busiest.stage}"]`);
  await p.waitForSelector('[data-testid=account-table] tbody tr', { timeout: TIMEOUT });
  await settled(p);
  const cardIds = await p.$$eval('[data-testid=account-table] tbody tr', (rs) => rs.map((r) => r.dataset.accountRow));
  assert.deepEqual([...cardIds].sort(), inStageIds, `the ${busiest.stage} card lists the accounts of journey ${other.id} in it`);

  const serious = await axeSerious(p, ['[data-testid=funnel-controls]', '[data-testid=funnel-totals]', '[data-testid=funnel-overall]', '[data-testid=stage-map]',
    '[data-testid=stage-metrics]', '[data-testid=figure-accounts]', '[data-testid=account-table]']);
  assert.deepEqual(serious, [], 'axe: serious violations on the switched funnel');

  // And back: the default journey's numbers again.
  await selectJourney(p, def);
  const { got: back } = await matchesApi(p, '', 'back to the default journey');
  assert.deepEqual(back.stages.map((s) => s.stage), first.stages.map((s) => s.stage));
});

test('funnel: a journey named in the URL opens selected, also at 390 px', async (t) => {
  const { journeys = [] } = await api('/v1/journeys');
  const other = journeys.find((j) => !j.isDefault);
  assert.ok(other, 'the demo workspace has a second journey');
  const p = await page(t, { width: 390, height: 844 });
  await p.goto(`${BASE}/#/journey?journey=${encodeURIComponent(other.id)}`);
  await p.waitForSelector('[data-testid=stage-card]', { timeout: TIMEOUT });
  await settled(p);
  assert.equal(await p.$eval('[data-testid=journey-select]', (el) => el.value), other.id);
  await matchesApi(p, other.id, `${other.id} from the URL`);
  const overflow = await p.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflow <= 1, `no sideways scroll at 390 px (${overflow}px too wide)`);
  assert.deepEqual(await axeSerious(p, ['[data-testid=funnel-controls]', '[data-testid=funnel-totals]', '[data-testid=stage-metrics]']), [], 'axe at 390 px');
  await shot(p, 'journeys-switched-390');
});
