// Cairn dashboard: a dependency-free single-page app over the REST API.
// Every request carries the API key the user entered (kept in localStorage,
// or taken once from a "#key=..." fragment that `cairn run` prints).
'use strict';

(function () {
  const KEY_STORE = 'cairn.apiKey';
  const view = document.getElementById('view');
  const SVGNS = 'http://www.w3.org/2000/svg';

  // ---- DOM helpers: text always goes through text nodes, never innerHTML.
  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    setAttrs(el, attrs);
    append(el, kids);
    return el;
  }
  function s(tag, attrs, ...kids) {
    const el = document.createElementNS(SVGNS, tag);
    setAttrs(el, attrs);
    append(el, kids);
    return el;
  }
  function setAttrs(el, attrs) {
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'class') el.setAttribute('class', v);
      else el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  function append(el, kids) {
    for (const k of kids.flat(Infinity)) {
      if (k === undefined || k === null || k === false) continue;
      el.appendChild(k instanceof Node ? k : document.createTextNode(String(k)));
    }
  }

  // ---- key handling
  function takeKeyFromFragment() {
    const m = location.hash.match(/(?:^#|&)key=([^&]+)/);
    if (!m) return;
    localStorage.setItem(KEY_STORE, decodeURIComponent(m[1]));
    history.replaceState(null, '', location.pathname + location.search + '#/journey');
  }
  function apiKey() { return localStorage.getItem(KEY_STORE) || ''; }
  function askKey() {
    const d = document.getElementById('key-dialog');
    document.getElementById('key-input').value = '';
    if (!d.open) d.showModal();
  }

  // ---- API
  class APIError extends Error {
    constructor(status, body) {
      super((body && body.message) || ('HTTP ' + status));
      this.status = status;
      this.code = (body && body.code) || '';
      this.requestId = (body && body.request_id) || '';
    }
  }
  async function api(path, params) {
    const url = new URL(path, location.origin);
    for (const [k, v] of Object.entries(params || {})) {
      if (Array.isArray(v)) v.forEach((x) => url.searchParams.append(k, x));
      else if (v !== undefined && v !== null && v !== '') url.searchParams.set(k, v);
    }
    const resp = await fetch(url, { headers: { Authorization: 'Bearer ' + apiKey(), Accept: 'application/json' } });
    let body = null;
    try { body = await resp.json(); } catch (e) { body = null; }
    if (!resp.ok) {
      if (resp.status === 401) askKey();
      throw new APIError(resp.status, body);
    }
    return body || {};
  }
  // optional returns null instead of failing for data a page can do without.
  async function optional(p) {
    try { return await p; } catch (e) { if (e.status === 401) throw e; return null; }
  }

  // ---- formatting
  const num = (v) => Number(v || 0);
  const fmtInt = (v) => num(v).toLocaleString('en-US');
  const fmtPct = (v) => (num(v) * 100).toFixed(num(v) >= 0.1 || num(v) === 0 ? 0 : 1) + '%';
  const fmtScore = (v) => num(v).toFixed(0);
  const fmtMoney = (v) => num(v) ? '$' + Math.round(num(v)).toLocaleString('en-US') : '—';
  function seconds(d) { // protojson Duration: "3600s" / "1.5s"
    if (!d) return 0;
    return parseFloat(String(d).replace(/s$/, '')) || 0;
  }
  function fmtDuration(d) {
    const sec = typeof d === 'number' ? d : seconds(d);
    if (!sec) return '—';
    const abs = Math.abs(sec);
    if (abs >= 86400 * 2) return Math.round(sec / 86400) + 'd';
    if (abs >= 3600) return (sec / 3600).toFixed(abs >= 36000 ? 0 : 1) + 'h';
    if (abs >= 60) return Math.round(sec / 60) + 'm';
    return Math.round(sec) + 's';
  }
  function fmtDate(ts) {
    if (!ts) return '—';
    const d = new Date(ts);
    if (isNaN(d) || d.getUTCFullYear() < 1971) return '—';
    return d.toLocaleDateString('en-US', { year: 'numeric', month: 'short', day: 'numeric' });
  }
  function fmtDateTime(ts) {
    if (!ts) return '—';
    const d = new Date(ts);
    if (isNaN(d) || d.getUTCFullYear() < 1971) return '—';
    return d.toLocaleString('en-US', { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
  }
  // fmtStamp is a point in time with its year, for "as of" and "since".
  function fmtStamp(ts) {
    if (!validTime(ts)) return '—';
    return new Date(ts).toLocaleString('en-US', { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
  }
  const validTime = (ts) => ts && !isNaN(new Date(ts)) && new Date(ts).getUTCFullYear() > 1971;
  const enumName = (v, prefix) => String(v || '').replace(prefix, '').toLowerCase().replace(/_/g, ' ');
  function bandPill(band) {
    const name = enumName(band, 'BAND_');
    const cls = { healthy: 'good', neutral: 'warn', 'at risk': 'bad' }[name] || 'muted';
    return h('span', { class: 'pill ' + cls }, name || 'unscored');
  }
  function scoreClass(score, band) {
    const b = enumName(band, 'BAND_');
    if (b === 'healthy') return 'good';
    if (b === 'at risk') return 'bad';
    if (b === 'neutral') return 'warn';
    return num(score) >= 80 ? 'good' : num(score) >= 60 ? 'warn' : 'bad';
  }
  function signalPill(sig) {
    const kind = enumName(sig.kind, 'SIGNAL_KIND_');
    const cls = { risk: 'bad', dropoff: 'bad', stuck: 'warn', expansion: 'good', renewal: '' }[kind];
    return h('span', { class: 'pill ' + (cls === undefined ? 'muted' : cls), title: sig.message || '' }, kind + ': ' + (sig.reason || '').replace(/_/g, ' '));
  }
  // ---- account status (cairn.common.v1.AccountStatus), in words.
  const STATUSES = [
    ['ACCOUNT_STATUS_PROSPECT', 'prospect', 'muted'], ['ACCOUNT_STATUS_TRIAL', 'trial', 'warn'],
    ['ACCOUNT_STATUS_CUSTOMER', 'customer', 'good'], ['ACCOUNT_STATUS_WON_BACK', 'won back', 'good'],
    ['ACCOUNT_STATUS_CHURNED', 'churned', 'bad']];
  const statusWord = (v) => (STATUSES.find((x) => x[0] === v) || [])[1] || '';
  const statusEnum = (word) => (STATUSES.find((x) => x[1] === word) || [])[0] || '';
  const paying = (v) => v === 'ACCOUNT_STATUS_CUSTOMER' || v === 'ACCOUNT_STATUS_WON_BACK';
  // A lead (prospect or trial) has no customer health score; it has a lead fit.
  const lead = (v) => v === 'ACCOUNT_STATUS_PROSPECT' || v === 'ACCOUNT_STATUS_TRIAL';
  function statusPill(v) {
    const x = STATUSES.find((st) => st[0] === v);
    return h('span', { class: 'pill ' + (x ? x[2] : 'muted'), 'data-status': x ? x[1] : 'unknown' }, x ? x[1] : 'unknown');
  }
  const accountLink = (id, label) => h('a', { href: '#/account/' + encodeURIComponent(id), 'data-account': id }, label || id);

  // ---- states
  const loading = (what) => h('div', { class: 'loading' }, 'Loading ' + what);
  const empty = (msg) => h('div', { class: 'empty' }, msg);
  function failure(err) {
    const msg = err.status === 401 ? 'Your API key was not accepted. Enter a read key to continue.'
      : err.status === 403 ? 'This key may not read this data (use a read or admin key).'
      : err.message || String(err);
    return h('div', { class: 'error', role: 'alert' }, msg,
      err.requestId ? h('small', {}, (err.code ? err.code + ' · ' : '') + 'request ' + err.requestId) : null);
  }
  // fill renders a section asynchronously with loading and error states.
  async function fill(el, what, render) {
    el.replaceChildren(loading(what));
    try {
      const out = await render();
      el.replaceChildren(...[out].flat(Infinity).filter((x) => x !== null && x !== undefined && x !== false)
        .map((x) => (x instanceof Node ? x : document.createTextNode(String(x)))));
    } catch (err) {
      el.replaceChildren(failure(err));
    }
  }
  const panel = (title, ...kids) => h('section', { class: 'panel' }, title ? h('h2', {}, title) : null, ...kids);

  // ---- charts
  function funnelChart(stages) {
    const W = 860, H = 240, pad = 34, n = stages.length;
    const max = Math.max(1, ...stages.map((st) => num(st.entered)));
    const slot = (W - pad * 2) / n, bw = Math.min(90, slot * 0.55);
    const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': 'Funnel: accounts entering and converting per stage', 'data-testid': 'funnel-chart' });
    const y = (v) => H - pad - (H - pad * 2) * (num(v) / max);
    svg.appendChild(s('line', { x1: pad, x2: W - pad, y1: H - pad, y2: H - pad, stroke: '#e4e7ec' }));
    stages.forEach((st, i) => {
      const x = pad + slot * i + (slot - bw) / 2;
      svg.appendChild(s('rect', { x, y: y(st.entered), width: bw, height: H - pad - y(st.entered), rx: 4, fill: '#dbe4ff' }, s('title', {}, `${st.name || st.stage}: ${fmtInt(st.entered)} entered`)));
      svg.appendChild(s('rect', { x: x + bw * 0.2, y: y(st.converted), width: bw * 0.6, height: H - pad - y(st.converted), rx: 3, fill: '#3b5bdb' }, s('title', {}, `${fmtInt(st.converted)} converted`)));
      svg.appendChild(s('text', { x: x + bw / 2, y: y(st.entered) - 6, 'text-anchor': 'middle', class: 'label' }, fmtInt(st.entered)));
      svg.appendChild(s('text', { x: x + bw / 2, y: H - pad + 16, 'text-anchor': 'middle' }, st.name || st.stage));
      if (i < n - 1 && num(st.entered) > 0) {
        const next = stages[i + 1];
        const x2 = pad + slot * (i + 1) + (slot - bw) / 2;
        svg.appendChild(s('path', { d: `M${x + bw} ${y(st.entered)} L${x2} ${y(next.entered)} L${x2} ${H - pad} L${x + bw} ${H - pad} Z`, fill: '#edf2ff', opacity: 0.7 }));
      }
    });
    svg.appendChild(s('rect', { x: W - 200, y: 6, width: 10, height: 10, fill: '#dbe4ff' }));
    svg.appendChild(s('text', { x: W - 185, y: 15 }, 'entered'));
    svg.appendChild(s('rect', { x: W - 120, y: 6, width: 10, height: 10, fill: '#3b5bdb' }));
    svg.appendChild(s('text', { x: W - 105, y: 15 }, 'converted'));
    return svg;
  }

  function trendChart(points) { // points: [{day, score}], oldest first
    const W = 560, H = 200, L = 34, R = 12, T = 12, B = 26;
    const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': 'Health score, last 30 days', 'data-testid': 'trend-chart' });
    const x = (i) => L + (W - L - R) * (points.length < 2 ? 0.5 : i / (points.length - 1));
    const y = (v) => T + (H - T - B) * (1 - num(v) / 100);
    svg.appendChild(s('rect', { x: L, y: y(100), width: W - L - R, height: y(80) - y(100), fill: '#ebfbee' }));
    svg.appendChild(s('rect', { x: L, y: y(60), width: W - L - R, height: y(0) - y(60), fill: '#fff5f5' }));
    for (const g of [0, 20, 40, 60, 80, 100]) {
      svg.appendChild(s('line', { x1: L, x2: W - R, y1: y(g), y2: y(g), stroke: '#eef0f4' }));
      svg.appendChild(s('text', { x: L - 6, y: y(g) + 4, 'text-anchor': 'end' }, g));
    }
    const d = points.map((p, i) => (i ? 'L' : 'M') + x(i).toFixed(1) + ' ' + y(p.score).toFixed(1)).join(' ');
    svg.appendChild(s('path', { d, fill: 'none', stroke: '#3b5bdb', 'stroke-width': 2.5, 'stroke-linejoin': 'round' }));
    points.forEach((p, i) => svg.appendChild(s('circle', { cx: x(i), cy: y(p.score), r: 3, fill: '#3b5bdb' }, s('title', {}, `${p.day}: ${fmtScore(p.score)}`))));
    if (points.length) {
      svg.appendChild(s('text', { x: L, y: H - 6 }, points[0].day));
      svg.appendChild(s('text', { x: W - R, y: H - 6, 'text-anchor': 'end' }, points[points.length - 1].day));
    }
    return svg;
  }

  function arrowSvg() {
    return s('svg', { width: 44, height: 14, viewBox: '0 0 44 14', 'aria-hidden': 'true' },
      s('path', { d: 'M2 7 H38 M32 2 L40 7 L32 12', stroke: '#98a2b3', 'stroke-width': 2, fill: 'none' }));
  }

  // ---- pages
  async function journeyPage(params) {
    const cohort = params.get('cohort') || '', segment = params.get('segment') || '';
    const head = h('div', { class: 'page-head' }, h('div', {}, h('h1', {}, 'Journey map'), h('div', { class: 'sub', id: 'journey-sub' }, 'Where every account really is')));
    const body = h('div', {});
    view.replaceChildren(head, body);
    await fill(body, 'journey', async () => {
      const f = await api('/v1/funnel', { cohort, segment });
      const stages = f.stages || [];
      const cohortSel = h('select', { id: 'cohort', 'aria-label': 'Cohort', onchange: (e) => go('journey', { cohort: e.target.value, segment }) },
        h('option', { value: '' }, 'All cohorts'), (f.cohorts || []).map((c) => h('option', { value: c, selected: c === cohort }, c)));
      const segSel = h('select', { id: 'segment', 'aria-label': 'Segment', onchange: (e) => go('journey', { cohort, segment: e.target.value }) },
        // The funnel lists every segment seen, whatever the filter; keep one named in the URL too.
        [...new Set(['', ...(f.segments || []), segment])].map((v) => h('option', { value: v, selected: v === segment }, v || 'All segments')));
      head.appendChild(h('div', { class: 'controls' }, h('label', { for: 'cohort' }, 'Cohort'), cohortSel, h('label', { for: 'segment' }, 'Segment'), segSel));
      document.getElementById('journey-sub').textContent = `${fmtInt(f.accounts)} live accounts` + (cohort ? ` · cohort ${cohort}` : '') + (segment ? ` · ${segment}` : '');
      if (!stages.length) return empty('No journey data yet. Apply a journey definition and send some events, or start the suite with --demo.');
      const list = h('div', {});
      const row = h('div', { class: 'stages', 'data-testid': 'stage-map' });
      stages.forEach((st, i) => {
        if (i > 0) {
          const prev = stages[i - 1];
          row.appendChild(h('div', { class: 'arrow', title: 'Conversion from ' + (prev.name || prev.stage) },
            h('span', { class: 'pct' }, fmtPct(prev.conversionRate)), arrowSvg(), h('span', {}, 'convert')));
        }
        const card = h('button', { class: 'stage', type: 'button', 'data-stage': st.stage, 'data-testid': 'stage-card',
          onclick: () => { row.querySelectorAll('.stage').forEach((c) => c.classList.remove('selected')); card.classList.add('selected'); showStage(list, st, segment); } },
          h('div', { class: 'name' }, st.name || st.stage),
          h('div', { class: 'team' }, st.ownerTeam || ''),
          h('div', { class: 'count', 'data-testid': 'stage-count' }, fmtInt(st.current), h('small', {}, 'now')),
          h('dl', {},
            h('dt', {}, 'entered'), h('dd', { 'data-testid': 'stage-entered' }, fmtInt(st.entered)),
            num(st.enteredDirectly) ? [h('dd', { class: 'direct', 'data-testid': 'stage-direct' }, `of which ${fmtInt(st.enteredDirectly)} entered directly`)] : null,
            h('dt', {}, 'converted'), h('dd', {}, fmtInt(st.converted)),
            h('dt', { title: DEF.dropped }, 'dropped'), h('dd', { class: num(st.dropped) ? 'drop' : '' }, fmtInt(st.dropped)),
            h('dt', { title: DEF.churned }, 'churned'), h('dd', { class: num(st.churned) ? 'drop' : '', 'data-testid': 'stage-churned' }, fmtInt(st.churned)),
            h('dt', {}, 'median'), h('dd', {}, fmtDuration(st.medianTimeInStage)),
            h('dt', {}, 'p90'), h('dd', {}, fmtDuration(st.p90TimeInStage))));
        row.appendChild(card);
      });
      const table = h('table', { 'data-testid': 'stage-metrics' }, h('thead', {}, h('tr', {}, h('th', {}, 'Stage'), h('th', { class: 'num' }, 'Now'), h('th', { class: 'num' }, 'Entered'),
        h('th', { class: 'num', title: DEF.direct }, 'of which directly'),
        h('th', { class: 'num' }, 'Converted'), h('th', { class: 'num' }, 'Conversion'),
        h('th', { class: 'num', title: DEF.dropped }, 'Dropped'),
        h('th', { class: 'num', title: DEF.churned }, 'Churned'),
        h('th', { class: 'num', title: DEF.flagged }, 'Flagged'),
        h('th', { class: 'num' }, 'Median time'), h('th', { class: 'num' }, 'p90 time'))),
      h('tbody', {}, stages.map((st) => h('tr', { 'data-stage': st.stage }, h('td', {}, st.name || st.stage), h('td', { class: 'num' }, fmtInt(st.current)), h('td', { class: 'num' }, fmtInt(st.entered)),
        h('td', { class: 'num' }, fmtInt(st.enteredDirectly)),
        h('td', { class: 'num' }, fmtInt(st.converted)), h('td', { class: 'num' }, fmtPct(st.conversionRate)), h('td', { class: 'num' }, fmtInt(st.dropped)),
        h('td', { class: 'num' }, fmtInt(st.churned)),
        h('td', { class: 'num' }, fmtInt(st.dropoffSignals)),
        h('td', { class: 'num' }, fmtDuration(st.medianTimeInStage)), h('td', { class: 'num' }, fmtDuration(st.p90TimeInStage))))));
      const defs = h('dl', { class: 'defs', 'data-testid': 'funnel-definitions' },
        h('dt', {}, 'Entered directly'), h('dd', {}, DEF.direct),
        h('dt', {}, 'Dropped'), h('dd', { 'data-testid': 'def-dropped' }, DEF.dropped),
        h('dt', {}, 'Churned'), h('dd', {}, DEF.churned),
        h('dt', {}, 'Flagged'), h('dd', { 'data-testid': 'def-flagged' }, DEF.flagged));
      return [whereAccounts(f, stages, cohort), row, h('div', { style: 'margin-top:18px' }, panel('Funnel', funnelChart(stages)),
        panel('Stage metrics', h('div', { class: 'table-wrap' }, table), defs)), list];
    });
  }

  // Definitions of the funnel's counts, worded as in docs/journeys.md.
  const DEF = {
    direct: 'The stays that began with a placement rather than a move from another stage — an account first seen mid-journey (its first evidence already met a later stage\'s entry criteria, e.g. a signed contract) or won back — so a later stage can show more entries than the previous stage\'s conversions.',
    dropped: 'A stay that did not make it, because the account went back to an earlier stage or is still in the stage with a drop-off signal open (churned stays are counted apart).',
    flagged: 'A stay that raised a drop-off signal at any point, including one that recovered or converted afterwards — the early-warning volume, as opposed to the losses.',
    churned: 'A stay that ended because the account churned while in the stage.',
  };

  // whereAccounts says where every account the journey knows is: in a
  // stage, churned, or not yet placed; the three add up to the total.
  function whereAccounts(f, stages, cohort) {
    const inStages = stages.reduce((t, st) => t + num(st.current), 0);
    const churned = num(f.churned), notPlaced = num(f.notPlaced);
    const total = inStages + churned + notPlaced;
    const reported = f.totalAccounts === undefined ? total : num(f.totalAccounts);
    const reasons = f.notPlacedReasons || [];
    const term = (v, label, id) => h('div', { class: 'kpi' }, h('div', { class: 'v', 'data-testid': id }, fmtInt(v)), h('div', { class: 'l' }, label));
    const op = (x) => h('div', { class: 'op' }, x);
    return h('section', { class: 'panel', 'data-testid': 'funnel-totals' }, h('h2', {}, 'Where every account is'),
      h('div', { class: 'kpis equation' },
        term(total, 'accounts in total', 'funnel-total'), op('='),
        term(inStages, 'in a stage now (live)', 'funnel-in-stages'), op('+'),
        term(churned, 'churned (in no stage until won back)', 'funnel-churned'), op('+'),
        term(notPlaced, 'not yet placed', 'funnel-not-placed')),
      reported !== total ? h('div', { class: 'error', role: 'alert' }, `The service reports ${fmtInt(reported)} accounts in total, but the parts add up to ${fmtInt(total)}.`) : null,
      notPlaced ? h('div', { class: 'sub', style: 'margin-top:10px', 'data-testid': 'not-placed-reasons' }, 'Not yet placed because (an account may have several reasons): ',
        reasons.map((r, i) => [i ? '; ' : '', h('b', {}, r.reason === 'no_behavioural_event' ? 'no behavioural event yet (only identify or group calls)' : 'not met: ' + r.reason.replace(/_/g, ' ')), ' ' + fmtInt(r.accounts)]))
        : null,
      cohort ? h('div', { class: 'sub', style: 'margin-top:6px' }, 'Accounts not yet placed have no cohort, so a cohort filter leaves them out.') : null);
  }

  function showStage(el, st, segment) {
    el.replaceChildren();
    const p = panel('Accounts in ' + (st.name || st.stage));
    el.appendChild(p);
    const body = h('div', {});
    p.appendChild(body);
    fill(body, 'accounts', async () => {
      const r = await api('/v1/journey/accounts', { stage: st.stage, segment, 'page.pageSize': 100 });
      return accountTable(r.accounts || [], 'No accounts are in this stage right now.');
    });
    p.scrollIntoView({ behavior: 'smooth', block: 'start' });
  }

  function accountTable(rows, emptyMsg) {
    if (!rows.length) return empty(emptyMsg);
    return h('div', { class: 'table-wrap' }, h('table', { 'data-testid': 'account-table' },
      h('thead', {}, h('tr', {}, h('th', {}, 'Account'), h('th', {}, 'Status'), h('th', {}, 'Stage'), h('th', {}, 'In stage since'), h('th', {}, 'Segment'), h('th', {}, 'Owner'), h('th', { class: 'num' }, 'Open signals'))),
      h('tbody', {}, rows.map((a) => h('tr', { 'data-account-row': a.accountId, 'data-status': statusWord(a.status) || 'unknown' }, h('td', {}, accountLink(a.accountId, a.name || a.accountId)),
        h('td', { class: 'nowrap' }, statusPill(a.status), validTime(a.statusSince) ? h('div', { class: 'when muted' }, 'since ' + fmtDate(a.statusSince)) : null),
        h('td', {}, a.stage || (a.status === 'ACCOUNT_STATUS_CHURNED' ? h('span', { class: 'muted' }, 'none (churned)') : '—')),
        h('td', { class: 'nowrap' }, a.stage ? fmtDate(a.enteredAt) : '—'), h('td', {}, a.segment || '—'), h('td', {}, a.owner || '—'),
        h('td', { class: 'num' }, num(a.openSignals) ? h('span', { class: 'pill warn' }, a.openSignals) : '0'))))));
  }

  async function accountsPage(params) {
    const stage = params.get('stage') || '';
    // status: '' is the API's default, the live accounts (churned excluded);
    // 'all' is every status; otherwise one status in words.
    const status = params.get('status') || '';
    const statuses = status === 'all' ? STATUSES.map((x) => x[0]) : status ? [statusEnum(status)].filter(Boolean) : [];
    const sel = h('select', { id: 'status', 'aria-label': 'Status', 'data-testid': 'status-filter', onchange: (e) => go('accounts', { stage, status: e.target.value }) },
      h('option', { value: '' }, 'Live accounts (not churned)'),
      STATUSES.map((x) => h('option', { value: x[1], selected: x[1] === status }, x[1])),
      h('option', { value: 'all', selected: status === 'all' }, 'All, churned included'));
    const what = status === 'all' ? 'Every account, churned included' : status ? `Accounts whose status is ${status}` : 'Live accounts (churned accounts excluded: choose “churned” to see them)';
    const head = h('div', { class: 'page-head' }, h('div', {}, h('h1', {}, 'Accounts'), h('div', { class: 'sub', 'data-testid': 'accounts-sub' }, what)),
      h('div', { class: 'controls' }, h('label', { for: 'status' }, 'Status'), sel));
    const body = h('div', {});
    view.replaceChildren(head, panel('', body));
    const rows = [];
    const more = async (token) => {
      const r = await api('/v1/journey/accounts', { stage, status: statuses, 'page.pageSize': 200, 'page.pageToken': token });
      rows.push(...(r.accounts || []));
      const next = r.page && r.page.nextPageToken;
      return [accountTable(rows, status ? 'No accounts with this status.' : 'No accounts yet.'),
        next ? h('div', { style: 'text-align:center;margin-top:12px' }, h('button', { type: 'button', 'data-testid': 'load-more',
          onclick: () => fill(body, 'more accounts', () => more(next)) }, 'Load more')) : null];
    };
    await fill(body, 'accounts', () => more(''));
  }

  async function accountPage(id) {
    const statusEl = h('div', { class: 'status-line', 'data-testid': 'account-status-line' });
    const head = h('div', { class: 'page-head' }, h('div', {}, h('h1', { 'data-testid': 'account-id' }, id), statusEl, h('div', { class: 'traits', id: 'traits' })));
    const top = h('div', { class: 'grid two' });
    const healthEl = h('section', { class: 'panel', 'data-testid': 'health-panel' });
    const trendEl = h('section', { class: 'panel' });
    top.append(healthEl, trendEl);
    const mid = h('div', { class: 'grid two', style: 'margin-top:18px' });
    const stageEl = h('section', { class: 'panel', 'data-testid': 'journey-panel' });
    const leftEl = h('section', { class: 'panel' });
    mid.append(stageEl, leftEl);
    const low = h('div', { class: 'grid three', style: 'margin-top:18px' });
    const sigEl = h('section', { class: 'panel' }), handEl = h('section', { class: 'panel' }), evEl = h('section', { class: 'panel' });
    low.append(sigEl, handEl, evEl);
    view.replaceChildren(head, top, mid, low);
    const enc = encodeURIComponent(id);

    const journeyP = api(`/v1/accounts/${enc}/journey`);
    const healthP = api(`/v1/accounts/${enc}/health`);
    // The account's lifecycle: the journey's, else health's (both derive it
    // from the same events with the same rules).
    const lifecycleP = (async () => {
      const [j, hl] = await Promise.all([optional(journeyP), optional(healthP)]);
      return (j && j.journey && j.journey.lifecycle) || (hl && hl.health && hl.health.lifecycle) || null;
    })();
    // A prospect's or trial's lead fit: what routing's PQL rules see for it.
    const fitP = (async () => {
      const lc = await lifecycleP;
      return lc && lead(lc.status) ? api(`/v1/accounts/${enc}/fit`) : null;
    })();
    fill(statusEl, 'status', async () => {
      const lc = await lifecycleP;
      if (!lc || !lc.status) return h('span', { class: 'muted' }, 'status unknown');
      return [h('span', { 'data-testid': 'account-status' }, statusPill(lc.status)),
        h('span', { class: 'muted', 'data-testid': 'account-status-since' }, 'since ' + fmtDate(lc.since))];
    });
    fill(healthEl, 'health', async () => {
      let resp;
      try { resp = await healthP; } catch (err) {
        // An account the health service has no score for: say why when its status explains it.
        const lc = await lifecycleP;
        if (err.status === 404 && lc && lead(lc.status)) return leadFit(lc, fitP);
        if (err.status === 404 && lc && !paying(lc.status)) return notScored(lc, null);
        throw err;
      }
      const hl = resp.health || {};
      const lc = hl.lifecycle || (await lifecycleP);
      if (lc && lead(lc.status)) return leadFit(lc, fitP);
      const churned = lc && lc.status === 'ACCOUNT_STATUS_CHURNED';
      const cls = churned ? 'muted' : scoreClass(hl.score, hl.band);
      const comps = (hl.components || []).map((c) => h('div', { class: 'comp' },
        h('span', { class: 'n' }, c.name.replace(/_/g, ' ')),
        h('div', { class: 'bar ' + (num(c.points) >= 80 ? 'good' : num(c.points) >= 50 ? 'warn' : 'bad'), title: `${fmtScore(c.points)} of 100 points × weight ${num(c.weight)}` },
          h('span', { style: `width:${Math.max(0, Math.min(100, num(c.points)))}%` })),
        h('span', { class: 'num' }, '+' + num(c.contribution).toFixed(1)),
        c.explanation || c.error ? h('div', { class: 'x' }, c.error || c.explanation) : null));
      const delta = num(hl.trend30d);
      return [h('h2', {}, 'Health ', h('span', { class: 'asof', 'data-testid': 'health-as-of' }, 'as of ' + fmtStamp(hl.asOf || hl.computedAt))),
        churned ? h('div', { class: 'error', 'data-testid': 'health-churned' }, `Churned since ${fmtDate(lc.since)}: this is the last score before the churn, kept for history; the account is in no band, at-risk list or ARR total.`) : null,
        h('div', { class: 'kpis' },
          h('div', {}, h('div', { class: 'score ' + cls, 'data-testid': 'health-score' }, fmtScore(hl.score)), h('div', { class: 'sub' }, 'of 100 ', churned ? h('span', { class: 'pill muted' }, 'last score') : bandPill(hl.band))),
          h('div', { class: 'kpi' }, h('div', { class: 'v' }, (delta > 0 ? '+' : '') + delta.toFixed(1)), h('div', { class: 'l' }, '30-day change')),
          h('div', { class: 'kpi' }, h('div', { class: 'v' }, fmtMoney(hl.arr)), h('div', { class: 'l' }, 'ARR')),
          h('div', { class: 'kpi' }, h('div', { class: 'v' }, fmtDate(hl.contractEnd)), h('div', { class: 'l' }, 'contract end'))),
        h('h3', { style: 'margin-top:16px' }, 'Components'),
        comps.length ? comps : empty('No components.'),
        (hl.changes || []).length ? h('div', { class: 'sub', style: 'margin-top:8px' }, 'Recent change: ', hl.changes.map((c) => c.reason).join('; ')) : null];
    });
    fill(trendEl, 'trend', async () => {
      const lc = await lifecycleP;
      if (lc && lead(lc.status)) return fitInputs(fitP);
      if (lc && lc.status === 'ACCOUNT_STATUS_CHURNED' && Date.now() - new Date(lc.since) > 30 * 86400e3) {
        return [h('h2', {}, '30-day health trend'), empty(`No recent scores: the account churned on ${fmtDate(lc.since)}.`)];
      }
      const since = new Date(Date.now() - 30 * 86400e3).toISOString();
      const r = await api(`/v1/accounts/${enc}/health/history`, { 'window.start': since, 'page.pageSize': 60 });
      const pts = (r.snapshots || []).slice().reverse().slice(-31);
      return [h('h2', {}, '30-day health trend'), pts.length ? trendChart(pts) : empty('No daily scores recorded yet.')];
    });
    fill(stageEl, 'journey', async () => {
      const j = (await journeyP).journey || {};
      const traits = document.getElementById('traits');
      traits.replaceChildren(...Object.entries(j.traits || {}).slice(0, 8).map(([k, v]) => h('span', {}, k + ' ', h('b', {}, v))));
      const hist = (j.history || []).slice().reverse();
      const lc = j.lifecycle || {};
      const churned = lc.status === 'ACCOUNT_STATUS_CHURNED';
      const changes = (lc.history || []).slice().reverse();
      return [h('h2', {}, 'Journey ', h('span', { class: 'asof', 'data-testid': 'journey-as-of' }, 'as of ' + fmtStamp(j.asOf))),
        h('div', { class: 'kpis', style: 'margin-bottom:14px' },
          h('div', { class: 'kpi' }, h('div', { class: 'v', 'data-testid': 'account-stage' }, j.stage || (churned ? 'none' : '—')), h('div', { class: 'l' }, churned ? 'churned: in no stage until won back' : 'current stage')),
          j.stage ? h('div', { class: 'kpi' }, h('div', { class: 'v' }, fmtDuration(j.timeInStage)), h('div', { class: 'l' }, 'in stage since ' + fmtDate(j.enteredAt))) : null),
        h('h3', {}, 'Status history'),
        changes.length ? h('ul', { class: 'timeline', 'data-testid': 'status-history', style: 'margin-bottom:14px' }, changes.map((c) => h('li', {},
          h('div', {}, statusPill(c.status), c.event ? [' ', h('code', {}, c.event)] : null),
          h('div', { class: 'when' }, fmtDate(c.at)))))
          : empty('No status changes recorded.'),
        h('h3', {}, 'Stage history'),
        hist.length ? h('ul', { class: 'timeline' }, hist.map((t) => h('li', {},
          h('div', {}, h('b', {}, !t.toStage ? (t.fromStage || '') + ' → left the journey' : (t.fromStage ? t.fromStage + ' → ' : 'placed in ') + t.toStage), ' ', h('span', { class: 'pill muted' }, t.cause || 'event')),
          h('div', { class: 'when' }, fmtDateTime(t.at) + (t.triggerMessageId ? ' · ' + t.triggerMessageId : '')),
          (t.criteria || []).filter((c) => c.met).length ? h('div', { class: 'sub' }, 'moved by: ', (t.criteria || []).filter((c) => c.met).map((c) => c.name).join(', ')) : null)))
          : empty('No transitions recorded.')];
    });
    fill(leftEl, 'criteria', async () => {
      const j = (await journeyP).journey || {};
      const crit = (list) => h('ul', { class: 'criteria' }, list.map((c) => h('li', { class: c.met ? 'met' : 'unmet' },
        h('span', { class: 'mark' }, c.met ? '✓' : '○'),
        h('div', {}, h('div', {}, c.description || c.name), h('code', {}, c.expr), c.error ? h('div', { class: 'drop' }, c.error) : null))));
      const exit = j.exitCriteria || [];
      const left = exit.filter((c) => !c.met).length;
      const drop = (j.dropoffCriteria || []).filter((c) => c.met);
      return [h('h2', {}, "What's left in " + (j.stage || 'this stage')),
        h('div', { class: 'sub', style: 'margin-bottom:8px' }, exit.length ? `${exit.length - left} of ${exit.length} exit criteria met` : 'This stage has no exit criteria.'),
        exit.length ? crit(exit) : null,
        drop.length ? [h('h3', { style: 'margin-top:14px' }, 'Drop-off warnings'), crit(drop)] : null];
    });
    fill(sigEl, 'signals', async () => {
      const [j, hl] = await Promise.all([optional(journeyP), optional(healthP)]);
      const seen = new Set();
      const sigs = [...((j && j.journey && j.journey.openSignals) || []), ...((hl && hl.health && hl.health.openSignals) || [])]
        .filter((x) => !seen.has(x.signalId || x.reason) && seen.add(x.signalId || x.reason));
      return [h('h2', {}, 'Open signals'), sigs.length ? h('ul', { class: 'criteria' }, sigs.map((x) => h('li', {},
        h('div', {}, signalPill(x), h('div', { class: 'sub' }, x.message || ''), h('div', { class: 'when muted' }, 'since ' + fmtDate(x.openedAt))))))
        : empty('No open signals.')];
    });
    fill(handEl, 'handoffs', async () => {
      const r = await api('/v1/assignments', { accountId: id, 'page.pageSize': 20 });
      const rows = r.assignments || [];
      return [h('h2', {}, 'Handoffs'), rows.length ? h('ul', { class: 'criteria' }, rows.map((a) => h('li', {},
        h('div', {}, h('div', {}, h('b', {}, enumName(a.type, 'HANDOFF_TYPE_').toUpperCase()), ' → ', a.ownerId || 'unassigned', ' ', statePill(a)),
          h('div', { class: 'sub', 'data-testid': 'handoff-sla' }, slaText(a)), assignmentDetails(a)))))
        : empty('No handoffs for this account.')];
    });
    fill(evEl, 'events', async () => {
      const r = await api(`/v1/accounts/${enc}/events`, { 'page.pageSize': 25 });
      const evs = r.events || [];
      return [h('h2', {}, 'Recent events'), evs.length ? h('ul', { class: 'timeline' }, evs.map((e) => h('li', {},
        h('div', {}, h('b', {}, e.event || e.name || enumName(e.type, 'EVENT_TYPE_')), e.source ? [' ', h('span', { class: 'pill muted' }, e.source)] : null),
        h('div', { class: 'when' }, fmtDateTime(e.timestamp) + (e.userId ? ' · ' + e.userId : '')))))
        : empty('No events for this account.')];
    });
    try { await Promise.all([journeyP, healthP]); } catch (e) { /* shown in the panels */ }
  }

  // notScored is the health panel of an account that has no customer health
  // score: prospects and trials are not customers yet.
  function notScored(lc, hl) {
    const at = hl && (validTime(hl.asOf) ? hl.asOf : hl.computedAt);
    return [h('h2', {}, 'Health ', validTime(at) ? h('span', { class: 'asof', 'data-testid': 'health-as-of' }, 'as of ' + fmtStamp(at)) : null),
      h('div', { class: 'empty', 'data-testid': 'health-not-scored' }, 'not scored: customer health is for paying customers',
        h('div', { class: 'sub' }, `This account is a ${statusWord(lc.status)} since ${fmtDate(lc.since)}.`))];
  }

  // ---- lead fit (routing's GetAccountFit): a prospect's or trial's PQL rules.

  // fitOf awaits the fit; null with a message when routing cannot give one.
  async function fitOf(fitP) {
    try {
      const r = await fitP;
      return { fit: (r && r.fit) || null };
    } catch (err) {
      if (err.status === 404) return { fit: null, msg: empty('Routing has not seen this account yet, so no PQL rule has evaluated it.') };
      return { fit: null, msg: failure(err) };
    }
  }
  const fitAsOf = (fit, id) => fit && validTime(fit.asOf) ? h('span', { class: 'asof', 'data-testid': id }, 'as of ' + fmtStamp(fit.asOf)) : null;

  // leadFit is the health panel of a prospect or trial: no customer health
  // score, but each PQL rule of the workspace with its criteria met or
  // missing, and the open PQL handoff.
  async function leadFit(lc, fitP) {
    const { fit, msg } = await fitOf(fitP);
    const note = h('div', { class: 'sub fit-note', 'data-testid': 'health-not-scored' }, 'not scored: customer health is for paying customers. ',
      `This account is a ${statusWord(lc.status)} since ${fmtDate(lc.since)}; it is judged by how it fits the workspace's PQL rules (product-qualified lead).`);
    const head = h('h2', {}, 'Lead fit ', fitAsOf(fit, 'fit-as-of'));
    if (!fit) return [head, note, msg];
    const rules = fit.rules || [];
    if (!rules.length) {
      return [head, note, h('div', { class: 'empty', 'data-testid': 'fit-no-rules' },
        'This workspace has no PQL rules: add a pql_rules list to the routing config (docs/routing.md, “PQL rules”) and apply it with cairn apply -f routing.yaml.'),
        fitHandoff(fit)];
    }
    const holding = rules.filter((r) => r.holds).length;
    return [head, note,
      h('div', { class: 'kpis', style: 'margin:10px 0' },
        h('div', { class: 'kpi' }, h('div', { class: 'v', 'data-testid': 'fit-holding' }, `${holding} of ${rules.length}`), h('div', { class: 'l' }, 'PQL rules hold'))),
      rules.map(fitRule), fitHandoff(fit)];
  }

  function fitRule(r) {
    const crit = r.criteria || [];
    const met = crit.filter((c) => c.met).length;
    return h('div', { class: 'fit-rule', 'data-testid': 'fit-rule', 'data-rule': r.name, 'data-holds': r.holds ? 'true' : 'false' },
      h('div', {}, h('b', {}, r.name), ' ', h('span', { class: 'pill ' + (r.holds ? 'good' : 'muted') }, r.holds ? 'holds' : 'does not hold'),
        crit.length > 1 ? h('span', { class: 'muted' }, ` ${met} of ${crit.length} criteria met`) : null),
      r.qualified ? h('div', { class: 'sub' }, 'Routing qualified the account as a PQL when this rule started to hold; it qualifies again only after the rule stopped holding.') : null,
      r.error ? h('div', { class: 'drop' }, 'The rule failed to evaluate: ' + r.error) : null,
      h('ul', { class: 'criteria' }, crit.map((c) => h('li', { class: c.met ? 'met' : 'unmet', 'data-met': c.met ? 'true' : 'false' },
        h('span', { class: 'mark' }, c.met ? '✓' : '○'),
        h('div', {}, h('code', {}, c.expr), c.error ? h('div', { class: 'drop' }, c.error) : null)))));
  }

  function fitHandoff(fit) {
    const a = fit.openPqlHandoff;
    if (!a) return h('div', { class: 'fit-handoff sub', 'data-testid': 'fit-handoff' }, 'No PQL handoff is open for this account.');
    const owner = a.ownerId ? (fit.openPqlOwnerName ? `${fit.openPqlOwnerName} (${a.ownerId})` : a.ownerId) : 'nobody yet: no owner was available';
    return h('div', { class: 'fit-handoff', 'data-testid': 'fit-handoff' },
      h('div', {}, h('b', {}, 'Open PQL handoff: '), h('span', { 'data-testid': 'fit-handoff-owner' }, owner), ' ', statePill(a)),
      h('div', { class: 'sub' }, (a.reason ? a.reason + ' · ' : '') + 'opened ' + fmtStamp(a.createdAt) + ' · ' + slaText(a)));
  }

  // fitInputs shows what a lead's PQL rules read: its status, stage and
  // signals, and the product activity behind the aggregate functions.
  async function fitInputs(fitP) {
    const { fit, msg } = await fitOf(fitP);
    const head = h('h2', {}, 'What the PQL rules see ', fitAsOf(fit, 'fit-inputs-as-of'));
    if (!fit) return [head, msg];
    const inp = fit.inputs || {}, p = inp.product || {};
    const trio = (a, b, c) => `${fmtInt(a)} / ${fmtInt(b)} / ${fmtInt(c)}`;
    const kpi = (v, l) => h('div', { class: 'kpi' }, h('div', { class: 'v' }, v), h('div', { class: 'l' }, l));
    const evs = p.events || [];
    const attrs = Object.entries(inp.account || {});
    return [head,
      h('dl', { class: 'defs', 'data-testid': 'fit-inputs', style: 'margin-top:0' },
        h('dt', {}, 'status'), h('dd', {}, String(inp.status || '—').replace(/_/g, ' ')),
        h('dt', {}, 'stage'), h('dd', {}, inp.stage || 'not placed yet', inp.previousStage ? ` (before: ${inp.previousStage})` : ''),
        h('dt', {}, 'open signals'), h('dd', {}, (inp.signals || []).length ? inp.signals.map((x) => x.replace(/_/g, ' ')).join(', ') : 'none'),
        inp.healthBand ? [h('dt', {}, 'health band'), h('dd', {}, inp.healthBand.replace(/_/g, ' ') + ' (' + fmtScore(inp.healthScore) + ')')] : null,
        h('dt', {}, 'first event'), h('dd', {}, fmtStamp(p.firstEventAt)),
        h('dt', {}, 'latest event'), h('dd', {}, fmtStamp(p.lastEventAt))),
      h('div', { class: 'kpis fit-kpis', 'data-testid': 'fit-activity' },
        kpi(trio(p.activeUsers7d, p.activeUsers14d, p.activeUsers30d), 'active users, 7 / 14 / 30 days'),
        kpi(trio(p.featuresUsed7d, p.featuresUsed14d, p.featuresUsed30d), 'features used, 7 / 14 / 30 days'),
        kpi(`${fmtInt(p.productEvents7d)} / ${fmtInt(p.productEvents30d)}`, 'product events, 7 / 30 days'),
        kpi(fmtInt(p.knownUsers), 'known users'),
        kpi(fmtInt(p.integrations), 'integrations')),
      h('div', { class: 'sub', style: 'margin:8px 0' }, 'Features used in the last 30 days: ',
        (p.features30d || []).length ? p.features30d.map((f, i) => [i ? ', ' : '', h('code', {}, f)]) : 'none'),
      evs.length ? h('div', { class: 'table-wrap' }, h('table', { 'data-testid': 'fit-events' },
        h('thead', {}, h('tr', {}, h('th', {}, 'Event'), h('th', { class: 'num' }, '7 days'), h('th', { class: 'num' }, '30 days'), h('th', { class: 'num' }, '400 days'), h('th', {}, 'Last seen'))),
        h('tbody', {}, evs.slice(0, 12).map((e) => h('tr', {}, h('td', {}, h('code', {}, e.name)), h('td', { class: 'num' }, fmtInt(e.count7d)),
          h('td', { class: 'num' }, fmtInt(e.count30d)), h('td', { class: 'num' }, fmtInt(e.count400d)), h('td', { class: 'nowrap' }, fmtDate(e.lastSeen)))))))
        : empty('No events applied for this account yet.'),
      evs.length > 12 ? h('div', { class: 'sub' }, `and ${evs.length - 12} more event names`) : null,
      attrs.length ? h('details', { class: 'assignment', style: 'margin-top:8px' }, h('summary', {}, `account variable (${attrs.length} traits and signal attributes)`),
        h('dl', { class: 'defs' }, attrs.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]))) : null];
  }

  // assignmentDetails lists what a lead checks about one handoff.
  function assignmentDetails(a) {
    const sla = a.sla || {};
    const facts = [
      ['opened', fmtStamp(a.createdAt)],
      seconds(a.timeToFirstTouch) ? ['first touch after', fmtDuration(a.timeToFirstTouch) + (sla.metLate ? ' (late)' : '')] : null,
      sla.metLate ? ['met late', fmtStamp(sla.metLateAt)] : null,
      a.closeReason ? ['closed because', a.closeReason === 'churned' ? 'the account churned' : a.closeReason === 'signal_cleared' ? 'every signal behind it cleared' : a.closeReason] : null,
      num(a.duplicatesSuppressed) ? ['duplicates folded in', fmtInt(a.duplicatesSuppressed) + (validTime(a.lastDuplicateAt) ? ', last ' + fmtStamp(a.lastDuplicateAt) : '')] : null,
      (a.previousOwnerIds || []).length ? ['previous owners', a.previousOwnerIds.join(', ')] : null,
      a.decision && a.decision.rule ? ['rule', a.decision.rule] : null,
    ].filter(Boolean);
    return h('details', { class: 'assignment', 'data-assignment': a.assignmentId },
      h('summary', {}, 'details'),
      h('dl', { class: 'defs' }, facts.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])));
  }

  function statePill(a) {
    if (a.closeReason === 'churned') return h('span', { class: 'pill muted', 'data-testid': 'closed-churned' }, 'closed: churned');
    if (a.closeReason === 'signal_cleared') return h('span', { class: 'pill muted', 'data-testid': 'closed-cleared' }, 'closed: signal cleared');
    if (a.sla && a.sla.metLate) return h('span', { class: 'pill warn', 'data-testid': 'met-late' }, 'met late');
    const st = enumName(a.state, 'ASSIGNMENT_STATE_');
    const cls = { breached: 'bad', open: 'warn', touched: 'good', closed: 'muted', paused: 'muted', unassigned: 'bad' }[st] || 'muted';
    return h('span', { class: 'pill ' + cls }, st);
  }
  function slaText(a) {
    const sla = a.sla || {};
    if (validTime(sla.metAt)) return 'SLA met on time ' + fmtStamp(sla.metAt);
    if (sla.metLate) return 'SLA met late ' + fmtStamp(sla.metLateAt) + ' (was due ' + fmtStamp(sla.dueAt) + ')';
    if (a.closeReason === 'churned') return 'closed: the account churned' + (sla.breached ? ' (SLA had breached, due ' + fmtStamp(sla.dueAt) + ')' : '');
    if (a.closeReason === 'signal_cleared') return 'closed: the signal cleared' + (sla.breached ? ' (SLA had breached, due ' + fmtStamp(sla.dueAt) + ')' : '');
    if (sla.breached) return 'SLA breached (due ' + fmtStamp(sla.dueAt) + ')';
    if (sla.paused) return 'SLA paused';
    if (validTime(sla.dueAt)) return 'SLA due ' + fmtStamp(sla.dueAt);
    return 'no SLA';
  }
  function countdown(a) {
    const sla = a.sla || {};
    if (sla.breached || enumName(a.state, 'ASSIGNMENT_STATE_') === 'breached') {
      const ago = validTime(sla.dueAt) ? (Date.now() - new Date(sla.dueAt)) / 1000 : 0;
      return h('span', { class: 'countdown late' }, ago > 60 ? 'breached ' + fmtDuration(ago) + ' ago' : 'breached');
    }
    if (sla.paused) return h('span', { class: 'muted' }, 'paused');
    if (!validTime(sla.dueAt)) return h('span', { class: 'muted' }, '—');
    const left = (new Date(sla.dueAt) - Date.now()) / 1000;
    if (left <= 0) return h('span', { class: 'countdown late' }, 'overdue ' + fmtDuration(-left));
    const share = seconds(sla.allowed) ? left / seconds(sla.allowed) : 1;
    return h('span', { class: 'countdown ' + (share < 0.2 ? 'soon' : ''), 'data-due': sla.dueAt }, fmtDuration(left) + ' left');
  }

  // Page counts: the page's totalSize when the API gives one, else the rows
  // shown, with a "+" when there is another page.
  const hasMore = (r) => !!(r.page && r.page.nextPageToken);
  const known = (r) => !!(r.page && r.page.totalSize !== undefined && num(r.page.totalSize) >= 0 && (num(r.page.totalSize) > 0 || !hasMore(r)));
  const countLabel = (r, n) => known(r) ? fmtInt(r.page.totalSize) : fmtInt(n) + (hasMore(r) ? '+' : '');

  async function listsPage() {
    const head = h('div', { class: 'page-head' }, h('div', {}, h('h1', {}, 'Lists'), h('div', { class: 'sub' }, 'Accounts and handoffs that need someone today')));
    const risk = h('section', { class: 'panel', 'data-testid': 'at-risk' }), exp = h('section', { class: 'panel', 'data-testid': 'expansion' });
    const ren = h('section', { class: 'panel', 'data-testid': 'renewals' });
    const queue = h('section', { class: 'panel', 'data-testid': 'queue' }), load = h('section', { class: 'panel', 'data-testid': 'owner-load' });
    const report = h('section', { class: 'panel', 'data-testid': 'sla-report' });
    view.replaceChildren(head, h('div', { class: 'grid two' }, risk, exp), h('div', { style: 'margin-top:18px' }, ren),
      queue, report, load);
    const scoreRows = (rows) => h('div', { class: 'table-wrap' }, h('table', {},
      h('thead', {}, h('tr', {}, h('th', {}, 'Account'), h('th', { class: 'num' }, 'Score'), h('th', { class: 'num' }, '30d'), h('th', { class: 'num' }, 'ARR'), h('th', {}, 'Stage'))),
      h('tbody', {}, rows.map((a) => h('tr', {}, h('td', {}, accountLink(a.accountId)), h('td', { class: 'num' }, h('span', { class: 'pill ' + scoreClass(a.score, a.band) }, fmtScore(a.score))),
        h('td', { class: 'num ' + (num(a.scoreChange30d) < 0 ? 'drop' : '') }, (num(a.scoreChange30d) > 0 ? '+' : '') + num(a.scoreChange30d).toFixed(1)),
        h('td', { class: 'num' }, fmtMoney(a.arr)), h('td', {}, a.stage || '—'))))));
    fill(risk, 'at-risk accounts', async () => {
      // The health service lists paying accounts only: churned accounts, prospects and trials are in no band.
      const r = await api('/v1/health/accounts', { band: 'BAND_AT_RISK', sort: 'ACCOUNT_SORT_ARR', 'page.pageSize': 25 });
      const rows = r.accounts || [];
      const arr = rows.reduce((t, a) => t + num(a.arr), 0);
      return [h('h2', {}, 'At risk ', h('span', { class: 'pill bad', 'data-testid': 'at-risk-count' }, countLabel(r, rows.length) + ' paying')),
        rows.length ? h('div', { class: 'sub', style: 'margin-bottom:8px', 'data-testid': 'at-risk-arr' },
          `${fmtMoney(arr)} ARR at risk` + (hasMore(r) ? ` in the ${rows.length} largest` : '') + ' (live paying customers only; churned accounts are not counted)') : null,
        rows.length ? scoreRows(rows) : empty('No accounts at risk.')];
    });
    fill(exp, 'expansion signals', async () => {
      const r = await api('/v1/signals', { kind: 'SIGNAL_KIND_EXPANSION', state: 'SIGNAL_STATE_OPEN', 'page.pageSize': 25 });
      const sigs = r.signals || [];
      return [h('h2', {}, 'Expansion-ready'), sigs.length ? h('div', { class: 'table-wrap' }, h('table', {},
        h('thead', {}, h('tr', {}, h('th', {}, 'Account'), h('th', {}, 'Signal'), h('th', {}, 'Since'))),
        h('tbody', {}, sigs.map((x) => h('tr', {}, h('td', {}, accountLink(x.accountId)), h('td', {}, signalPill(x), h('div', { class: 'sub' }, x.message || '')), h('td', { class: 'nowrap' }, fmtDate(x.openedAt)))))))
        : empty('No expansion signals open.')];
    });
    fill(ren, 'renewal calendar', async () => {
      const windows = [30, 60, 90, 120];
      const res = await Promise.all(windows.map((w) => api('/v1/health/accounts', { renewalWindow: w, sort: 'ACCOUNT_SORT_ARR', 'page.pageSize': 50 })));
      // Each window includes the shorter ones; show each account once, in its nearest window.
      const seen = new Set();
      const byEnd = (a, b) => new Date(a.contractEnd || 0) - new Date(b.contractEnd || 0);
      const buckets = windows.map((w, i) => ({ w, rows: (res[i].accounts || []).filter((a) => !seen.has(a.accountId) && seen.add(a.accountId)).sort(byEnd) }));
      return [h('h2', {}, 'Renewal calendar'), h('div', { class: 'renewals' }, buckets.map((b) => h('div', { class: 'bucket', 'data-window': b.w },
        h('h4', {}, `≤ ${b.w} days `, h('span', { class: 'pill muted' }, b.rows.length)),
        b.rows.length ? h('ul', {}, b.rows.slice(0, 12).map((a) => h('li', {}, accountLink(a.accountId), h('span', { class: 'muted nowrap' }, fmtDate(a.contractEnd)))))
          : h('div', { class: 'muted' }, 'none'))))];
    });
    fill(queue, 'open work queue', async () => {
      // The open queue: work someone can still do (open, and breached but not
      // yet touched), soonest due (most overdue) first, as the service orders it.
      const r = await api('/v1/assignments', { openQueue: true, 'page.pageSize': 50 });
      const all = r.assignments || [];
      const rows = all.slice(0, 25);
      const late = all.filter((a) => a.sla && a.sla.breached).length;
      // Breached items come first, so the page counts them all unless it is full of them.
      const lateExact = !hasMore(r) || late < all.length;
      return [h('h2', {}, 'Open work queue ', h('span', { class: 'pill warn', 'data-testid': 'queue-count' }, countLabel(r, all.length) + ' open'), ' ',
        late ? h('span', { class: 'pill bad', 'data-testid': 'queue-breached' }, (lateExact ? fmtInt(late) : fmtInt(late) + '+') + ' overdue') : null),
        h('div', { class: 'sub', style: 'margin-bottom:8px' }, 'Soonest due first. Handoffs touched late, closed, or closed because the account churned are not here.'),
        rows.length ? h('div', { class: 'table-wrap' }, h('table', { 'data-testid': 'queue-table' },
          h('thead', {}, h('tr', {}, h('th', {}, 'Type'), h('th', {}, 'Account / lead'), h('th', {}, 'Owner'), h('th', {}, 'Due'), h('th', {}, 'SLA'))),
          h('tbody', {}, rows.map((a) => h('tr', { 'data-assignment': a.assignmentId, 'data-state': enumName(a.state, 'ASSIGNMENT_STATE_'), 'data-due': (a.sla && a.sla.dueAt) || '' },
            h('td', {}, enumName(a.type, 'HANDOFF_TYPE_').toUpperCase(), num(a.duplicatesSuppressed) ? h('div', { class: 'when muted' }, '+' + a.duplicatesSuppressed + ' duplicate' + (num(a.duplicatesSuppressed) > 1 ? 's' : '') + ' folded in') : null),
            h('td', {}, a.accountId ? accountLink(a.accountId) : ((a.lead && (a.lead.email || a.lead.leadId)) || '—')),
            h('td', {}, a.ownerId || h('span', { class: 'pill bad' }, 'unassigned')),
            h('td', { class: 'nowrap' }, a.sla && validTime(a.sla.dueAt) ? fmtStamp(a.sla.dueAt) : '—'),
            h('td', { class: 'nowrap' }, countdown(a))))),
          all.length > rows.length || hasMore(r) ? h('tfoot', {}, h('tr', {}, h('td', { colspan: 5, class: 'muted' }, `and ${hasMore(r) && !known(r) ? 'more than ' + fmtInt(all.length - rows.length) : fmtInt((known(r) ? num(r.page.totalSize) : all.length) - rows.length)} more`))) : null))
          : empty('The queue is empty: no open handoffs.')];
    });
    fill(report, 'SLA attainment', async () => {
      const r = await api('/v1/routing/report');
      const rows = (r.rows || []).filter((x) => x.groupBy === 'type');
      const teams = (r.rows || []).filter((x) => x.groupBy === 'team');
      const table = (list, label) => h('table', { 'data-testid': 'sla-report-' + label },
        h('thead', {}, h('tr', {}, h('th', {}, label), h('th', { class: 'num' }, 'Attainment'), h('th', { class: 'num' }, 'Met on time'), h('th', { class: 'num' }, 'Met late'),
          h('th', { class: 'num' }, 'Breached untouched'), h('th', { class: 'num' }, 'Median speed to lead'), h('th', { class: 'num' }, 'p90'))),
        h('tbody', {}, list.map((x) => h('tr', { 'data-key': x.key }, h('td', {}, label === 'type' ? x.key.toUpperCase().replace(/_/g, ' ') : x.key),
          h('td', { class: 'num' }, h('b', {}, fmtPct(x.attainment))),
          h('td', { class: 'num' }, fmtInt(x.metOnTime)), h('td', { class: 'num' }, fmtInt(x.metLate)),
          h('td', { class: 'num ' + (num(x.breachedUntouched) ? 'drop' : '') }, fmtInt(x.breachedUntouched)),
          h('td', { class: 'num' }, fmtDuration(x.medianSpeedToLead)), h('td', { class: 'num' }, fmtDuration(x.p90SpeedToLead))))));
      return [h('h2', {}, 'SLA attainment'),
        h('div', { class: 'sub', style: 'margin-bottom:8px' }, 'Attainment = met on time ÷ (met on time + met late + breached untouched). Met late: breached, then worked. Clocks still running, paused, or closed before due (e.g. the account churned) are not judged.'),
        rows.length || teams.length ? h('div', { class: 'grid two' }, h('div', { class: 'table-wrap' }, table(rows, 'type')), h('div', { class: 'table-wrap' }, table(teams, 'team')))
          : empty('No SLA clock judged yet.')];
    });
    fill(load, 'owner load', async () => {
      const r = await api('/v1/routing/load', { 'page.pageSize': 100 });
      const owners = r.owners || [];
      // Owners without a capacity are drawn relative to the busiest owner, in a neutral colour.
      const busiest = Math.max(1, ...owners.map((o) => num(o.open)));
      return [h('h2', {}, 'Load per owner'), owners.length ? owners.map((o) => {
        const cap = num(o.capacity), open = num(o.open), share = cap ? open / cap : 0;
        const cls = !cap ? '' : share >= 1 ? 'bad' : share >= 0.8 ? 'warn' : 'good';
        return h('div', { class: 'load' }, h('div', {}, h('b', {}, o.name || o.ownerId), h('div', { class: 'muted' }, enumName(o.team, 'TEAM_'))),
          h('div', { class: 'bar ' + cls, title: cap ? `${open} of ${cap}` : `${open} open, no capacity limit` }, h('span', { style: `width:${cap ? Math.min(100, share * 100) : (open / busiest) * 100}%` })),
          h('div', { class: 'num' }, cap ? `${open}/${cap}` : String(open), num(o.breached) ? h('div', { class: 'drop' }, o.breached + ' breached') : null));
      }) : empty('No owners configured.')];
    });
  }

  // ---- routing
  function go(page, params) {
    const q = new URLSearchParams(Object.entries(params || {}).filter(([, v]) => v)).toString();
    location.hash = '#/' + page + (q ? '?' + q : '');
  }
  function route() {
    takeKeyFromFragment();
    const raw = location.hash.replace(/^#\/?/, '') || 'journey';
    const [path, query] = raw.split('?');
    const params = new URLSearchParams(query || '');
    const [page, ...rest] = path.split('/');
    document.querySelectorAll('.tabs a[data-tab]').forEach((a) => a.classList.toggle('active', a.dataset.tab === (page === 'account' ? 'accounts' : page)));
    if (!apiKey()) {
      view.replaceChildren(h('div', { class: 'empty' }, 'Enter an API key to see your workspace.'));
      askKey();
      return;
    }
    switch (page) {
      case 'account': accountPage(decodeURIComponent(rest.join('/'))); break;
      case 'accounts': accountsPage(params); break;
      case 'lists': listsPage(); break;
      default: journeyPage(params);
    }
    window.scrollTo(0, 0);
  }

  document.getElementById('key-form').addEventListener('submit', () => {
    const v = document.getElementById('key-input').value.trim();
    if (v) { localStorage.setItem(KEY_STORE, v); route(); }
  });
  document.getElementById('key-forget').addEventListener('click', () => {
    localStorage.removeItem(KEY_STORE);
    document.getElementById('key-dialog').close();
    route();
  });
  document.getElementById('key-button').addEventListener('click', askKey);
  document.getElementById('search').addEventListener('submit', (e) => {
    e.preventDefault();
    const v = document.getElementById('search-input').value.trim();
    if (v) go('account/' + encodeURIComponent(v));
  });
  window.addEventListener('hashchange', route);
  route();
})();
