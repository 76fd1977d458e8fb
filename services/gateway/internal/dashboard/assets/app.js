// Cairn dashboard: a dependency-free single-page app over the REST API.
// Every request carries the API key the user entered (kept in localStorage,
// or taken once from a "#key=..." fragment that `cairn run` prints).
'use strict';

(function () {
  const KEY_STORE = 'cairn.apiKey';
  // WRITE_STORE keeps an optional second key for the few actions the
  // dashboard takes (Done, Skip, Redeliver): the key the page reads with is
  // usually a read key, which may not change anything.
  const WRITE_STORE = 'cairn.writeKey';
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
  // keyRole reads the role Cairn writes into the keys it makes
  // ("cairn_read_…"); another key's role is not known until it is used.
  const keyRole = (k) => (String(k || '').match(/^cairn_(read|write|admin|service)_/) || [])[1] || '';
  // writeKey is the key for actions: the one entered for writing, else the
  // reading key unless it is known to be a read (or write-only) key.
  function writeKey() {
    const w = localStorage.getItem(WRITE_STORE);
    if (w) return w;
    const k = apiKey(), role = keyRole(k);
    return role === 'read' || role === 'write' ? '' : k;
  }
  function askKey() {
    const d = document.getElementById('key-dialog');
    const input = document.getElementById('key-input'), wInput = document.getElementById('write-key-input');
    input.value = '';
    wInput.value = '';
    // With a key stored, the dialog may be used to add a write key only.
    input.required = !apiKey();
    input.placeholder = apiKey() ? 'leave empty to keep the current key' : '';
    wInput.placeholder = localStorage.getItem(WRITE_STORE) ? 'leave empty to keep the current write key' : 'none';
    if (!d.open) d.showModal();
  }

  // ---- API
  // APIError reads the gateway's error body: google.rpc.Status JSON
  // ({"code": 5, "message": ..., "details": [...]}) or the older
  // {"code": "NOT_FOUND", "message": ..., "request_id": ...}.
  const CODES = ['OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND', 'ALREADY_EXISTS', 'PERMISSION_DENIED',
    'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION', 'ABORTED', 'OUT_OF_RANGE', 'UNIMPLEMENTED', 'INTERNAL', 'UNAVAILABLE', 'DATA_LOSS', 'UNAUTHENTICATED'];
  class APIError extends Error {
    constructor(status, body) {
      const b = body && typeof body === 'object' ? (body.error && typeof body.error === 'object' ? body.error : body) : {};
      super(typeof b.message === 'string' && b.message ? b.message : 'HTTP ' + status);
      this.status = status;
      this.code = typeof b.code === 'number' ? CODES[b.code] || String(b.code) : b.code || '';
      const info = (Array.isArray(b.details) ? b.details : []).find((d) => d && (d.requestId || d.request_id));
      this.requestId = b.request_id || b.requestId || (info && (info.requestId || info.request_id)) || '';
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
    const d = document.getElementById('key-dialog');
    if (d.open) d.close();
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
  // fmtSpeed is fmtDuration for speed to lead, where a present zero is a
  // real figure (the owner had already acted when the handoff opened), not
  // a missing one.
  function fmtSpeed(d) {
    if (d !== undefined && d !== null && d !== '' && seconds(d) === 0) return '0m';
    return fmtDuration(d);
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
    return d.toLocaleString('en-US', { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
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
    return h('span', { class: 'pill ' + (cls === undefined ? 'muted' : cls), title: sig.message || '' }, kind + ': ' + label(sig.reason).toLowerCase());
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
  const accountLink = (id, text) => h('a', { href: '#/account/' + encodeURIComponent(id), 'data-account': id }, text || names.get(id) || id);

  // ---- states
  const loading = (what) => h('div', { class: 'loading' }, 'Loading ' + what);
  const empty = (msg) => h('div', { class: 'empty' }, msg);
  function failure(err) {
    // Server errors carry internal detail that means nothing to a reader;
    // they get a plain sentence and the request id to report.
    const msg = err.status === 401 ? 'Your API key was not accepted. Enter a read key to continue.'
      : err.status === 403 ? 'This key may not read this data (use a read or admin key).'
      : err.status === 404 ? 'Not found.'
      : err.status === 429 ? 'Cairn is busy; try again in a moment.'
      : err.status >= 500 || !err.status ? 'Cairn could not answer this part of the page right now. Reload to try again.'
      : err.message || String(err);
    return h('div', { class: 'error', role: 'alert' }, msg,
      err.requestId ? h('small', {}, (err.code ? err.code + ' · ' : '') + 'request ' + err.requestId) : null);
  }
  // fill renders a section asynchronously with loading and error states.
  async function fill(el, what, render) {
    el.replaceChildren(loading(what));
    try {
      const out = await render();
      const nodes = [out].flat(Infinity).filter((x) => x !== null && x !== undefined && x !== false)
        .map((x) => (x instanceof Node ? x : document.createTextNode(String(x))));
      await nameLinks(nodes);
      el.replaceChildren(...nodes);
    } catch (err) {
      el.replaceChildren(failure(err));
    }
  }
  // nameLinks gives the account links that show a bare id their account's
  // name, asking the report for those accounts only.
  async function nameLinks(nodes) {
    const links = nodes.flatMap((n) => (n.querySelectorAll ? [...(n.matches && n.matches('a[data-account]') ? [n] : []), ...n.querySelectorAll('a[data-account]')] : []))
      .filter((a) => a.textContent === a.dataset.account && !names.has(a.dataset.account));
    if (!links.length) return;
    await optional(namedRows(links.map((a) => a.dataset.account)));
    for (const a of links) if (names.get(a.dataset.account)) a.textContent = names.get(a.dataset.account);
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
    const fp = funnelState(params), cohort = fp.cohort, segment = fp.segment;
    const head = h('div', { class: 'page-head' }, h('div', {}, h('h1', {}, 'Journey map'), h('div', { class: 'sub', id: 'journey-sub' }, 'Where every account really is')));
    const body = h('div', {});
    view.replaceChildren(head, body);
    await fill(body, 'journey', async () => {
      const fq = funnelQuery(fp);
      const [f, jl] = await Promise.all([api('/v1/funnel', fq), optional(cached('journeys', 60e3, () => api('/v1/journeys')))]);
      const stages = f.stages || [];
      const cohortSel = h('select', { id: 'cohort', 'aria-label': 'Cohort', onchange: (e) => go('journey', { ...fp, cohort: e.target.value }) },
        h('option', { value: '' }, 'All cohorts'), (f.cohorts || []).map((c) => h('option', { value: c, selected: c === cohort }, c)));
      const segSel = h('select', { id: 'segment', 'aria-label': 'Segment', onchange: (e) => go('journey', { ...fp, segment: e.target.value }) },
        // The funnel lists every segment seen, whatever the filter; keep one named in the URL too.
        [...new Set(['', ...(f.segments || []), segment])].map((v) => h('option', { value: v, selected: v === segment }, v || 'All segments')));
      head.appendChild(h('div', { class: 'controls' }, h('label', { for: 'cohort' }, 'Cohort'), cohortSel, h('label', { for: 'segment' }, 'Segment'), segSel));
      head.appendChild(funnelControls(fp, f, (jl && jl.journeys) || []));
      document.getElementById('journey-sub').textContent = `${fmtInt(f.accounts)} live accounts` + (cohort ? ` · cohort ${cohort}` : '') + (segment ? ` · ${segment}` : '') +
        (fp.plan ? ` · plan ${label(fp.plan)}` : '') + (fp.from || fp.to ? ` · stays that began ${fp.from ? 'from ' + fmtDate(fp.from + 'T12:00:00Z') : ''}${fp.to ? ' to ' + fmtDate(fp.to + 'T12:00:00Z') : ''}` : '') +
        (fp.window ? ` · ${fp.window}-day conversion window` : '');
      if (!stages.length) return empty('No journey data yet. Apply a journey definition and send some events, or start the suite with --demo.');
      const list = h('div', {});
      const figList = h('div', { 'data-testid': 'figure-list' });
      const ctx = { p: fp, query: fq, list: figList, name: (id) => { const x = stages.find((st) => st.stage === id); return (x && x.name) || label(id); } };
      const row = h('div', { class: 'stages', 'data-testid': 'stage-map' });
      stages.forEach((st, i) => {
        if (i > 0) {
          const prev = stages[i - 1];
          row.appendChild(h('div', { class: 'arrow', title: 'Conversion from ' + (prev.name || prev.stage) },
            h('span', { class: 'pct' }, fmtPct(prev.conversionRate)), arrowSvg(), h('span', {}, 'convert')));
        }
        const card = h('button', { class: 'stage', type: 'button', 'data-stage': st.stage, 'data-testid': 'stage-card',
          onclick: () => { row.querySelectorAll('.stage').forEach((c) => c.classList.remove('selected')); card.classList.add('selected'); showStage(list, st, segment, fp.journey); } },
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
        fp.window ? h('th', { class: 'num', title: DEF.late }, 'Converted late') : null,
        h('th', { class: 'num' }, 'Median time'), h('th', { class: 'num' }, 'p90 time'),
        h('th', { class: 'num', title: DEF.toConvert }, 'Median to convert'), h('th', { class: 'num', title: DEF.toConvert }, 'p90 to convert'))),
      h('tbody', {}, stages.map((st) => h('tr', { 'data-stage': st.stage }, h('td', {}, st.name || st.stage), h('td', { class: 'num' }, figCount(st.current, ctx, 'current', st.stage)), h('td', { class: 'num' }, figCount(st.entered, ctx, 'entered', st.stage)),
        h('td', { class: 'num' }, fmtInt(st.enteredDirectly)),
        h('td', { class: 'num' }, figCount(st.converted, ctx, 'converted', st.stage)), h('td', { class: 'num' }, fmtPct(st.conversionRate)), h('td', { class: 'num' }, figCount(st.dropped, ctx, 'dropped', st.stage)),
        h('td', { class: 'num' }, figCount(st.churned, ctx, 'churned', st.stage, {}, 'stage-churned-count')),
        h('td', { class: 'num' }, fmtInt(st.dropoffSignals)),
        fp.window ? h('td', { class: 'num' }, figCount(st.convertedLate, ctx, 'converted_late', st.stage)) : null,
        h('td', { class: 'num' }, fmtDuration(st.medianTimeInStage)), h('td', { class: 'num' }, fmtDuration(st.p90TimeInStage)),
        h('td', { class: 'num' }, fmtDuration(st.medianTimeToConvert)), h('td', { class: 'num' }, fmtDuration(st.p90TimeToConvert))))));
      const defs = h('dl', { class: 'defs', 'data-testid': 'funnel-definitions' },
        h('dt', {}, 'Entered directly'), h('dd', {}, DEF.direct),
        h('dt', {}, 'Dropped'), h('dd', { 'data-testid': 'def-dropped' }, DEF.dropped),
        h('dt', {}, 'Churned'), h('dd', {}, DEF.churned),
        h('dt', {}, 'Flagged'), h('dd', { 'data-testid': 'def-flagged' }, DEF.flagged),
        h('dt', {}, 'Date range'), h('dd', {}, DEF.range),
        h('dt', {}, 'Conversion window'), h('dd', {}, DEF.late),
        h('dt', {}, 'Time to convert'), h('dd', {}, DEF.toConvert));
      return [whereAccounts(f, stages, cohort), overallPanel(f, ctx), row, h('div', { style: 'margin-top:18px' }, panel('Funnel', funnelChart(stages)),
        panel('Stage metrics', h('div', { class: 'sub', style: 'margin-bottom:8px' }, 'Every count opens the accounts it counts, below.'), h('div', { class: 'table-wrap' }, table), defs)), figList,
        fp.by ? h('section', { class: 'panel', 'data-testid': 'funnel-breakdown' }, h('h2', {}, 'Conversion ' + BREAKDOWNS.find(([k]) => k === fp.by)[1].toLowerCase()),
          (f.breakdown || []).length ? groupTable(f.breakdown, stages, ctx, fp.by, 'funnel-breakdown-table') : empty('No stay in this selection.')) : null,
        trendPanel(f, stages, ctx), histogramPanel(stages, ctx), list];
    });
  }

  // Definitions of the funnel's counts, worded as in docs/journeys.md.
  const DEF = {
    direct: 'The stays that began with a placement rather than a move from another stage — an account first seen mid-journey (its first evidence already met a later stage\'s entry criteria, e.g. a signed contract) or won back — so a later stage can show more entries than the previous stage\'s conversions.',
    dropped: 'A stay that did not make it, because the account went back to an earlier stage or is still in the stage with a drop-off signal open (churned stays are counted apart).',
    flagged: 'A stay that raised a drop-off signal at any point, including one that recovered or converted afterwards — the early-warning volume, as opposed to the losses.',
    churned: 'A stay that ended because the account churned while in the stage.',
    range: 'The stays counted are those that began in the date range (the end day included, UTC). "Now" and the account totals are live figures and ignore it.',
    late: 'With a conversion window of N days, a stay converts only if it moved on within N days of entering; a later move counts as converted late, not converted.',
    toConvert: 'From entering the stage to moving on to a later one, over the converted stays.',
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

  // ---- funnel for RevOps: date range, conversion window, overall
  // conversion, breakdown, trend and time to convert (GET /v1/funnel); every
  // count lists the accounts it counts (accountsFigure), in the page.
  const FUNNEL_PARAMS = ['journey', 'cohort', 'segment', 'plan', 'from', 'to', 'window', 'by', 'every'];
  const BREAKDOWNS = [['', 'No breakdown'], ['segment', 'By segment'], ['cohort', 'By cohort'], ['plan', 'By plan']];
  const FIGURES = { entered: 'stays entered', converted: 'stays converted', converted_late: 'stays converted after the window', dropped: 'stays dropped',
    churned: 'stays ended by churn', current: 'accounts in the stage now', overall_entered: 'accounts entered the first stage', overall_reached: 'accounts reached the last stage' };
  const isDay = (v) => /^\d{4}-\d{2}-\d{2}$/.test(v || '') && !isNaN(new Date(v + 'T00:00:00Z'));
  function funnelState(params) {
    const p = Object.fromEntries(FUNNEL_PARAMS.map((k) => [k, params.get(k) || '']));
    if (!isDay(p.from)) p.from = '';
    if (!isDay(p.to)) p.to = '';
    if (!/^\d{1,4}$/.test(p.window) || Number(p.window) === 0) p.window = '';
    if (!BREAKDOWNS.some(([k]) => k === p.by)) p.by = '';
    if (p.every !== 'week') p.every = 'month';
    return p;
  }
  // funnelQuery turns the page's state into GET /v1/funnel's parameters; the
  // "to" day is included, so the window ends the next midnight (UTC).
  function funnelQuery(p) {
    const end = p.to ? new Date(Date.parse(p.to + 'T00:00:00Z') + 86400e3).toISOString().replace('.000Z', 'Z') : '';
    return { journeyId: p.journey, cohort: p.cohort, segment: p.segment, plan: p.plan, 'window.start': p.from ? p.from + 'T00:00:00Z' : '', 'window.end': end,
      conversionWindowDays: p.window, breakdown: p.by, trend: p.every };
  }
  // figCount shows a count that, clicked, lists its accounts under the page.
  function figCount(n, ctx, figure, stage, extra, testid) {
    if (!num(n)) return h('span', { class: 'muted', 'data-count': 0 }, '0');
    const what = FIGURES[figure] + (stage ? ' in ' + ctx.name(stage) : '');
    return h('button', { type: 'button', class: 'fig', 'data-testid': testid || 'fig', 'data-figure': figure, 'data-stage': stage || null, 'data-count': num(n),
      'aria-label': `${fmtInt(n)} ${what}: list the accounts`,
      onclick: () => showFigure(ctx.list, `${fmtInt(n)} ${what}${ctx.scope ? ' · ' + ctx.scope : ''}`,
        { ...ctx.query, breakdown: '', trend: '', ...extra, accountsFigure: figure, accountsStage: stage || '' }) }, fmtInt(n));
  }
  function showFigure(el, title, query) {
    const p = panel(title);
    p.setAttribute('data-testid', 'figure-accounts');
    const body = h('div', {});
    p.appendChild(body);
    el.replaceChildren(p);
    fill(body, 'accounts', async () => {
      const [f] = await Promise.all([api('/v1/funnel', query), lookups()]);
      const ids = f.accountIds || [];
      const byId = (await optional(namedRows(ids))) || new Map();
      if (!ids.length) return empty('No account is counted here.');
      return [h('div', { class: 'sub', style: 'margin-bottom:8px', 'data-testid': 'figure-accounts-count', 'data-count': ids.length },
        `${fmtInt(ids.length)} account${ids.length === 1 ? '' : 's'} (an account with several stays is listed once)`),
      h('div', { class: 'table-wrap' }, h('table', { 'data-testid': 'figure-account-table' },
        h('thead', {}, h('tr', {}, h('th', {}, 'Account'), h('th', {}, 'Status'), h('th', {}, 'Stage now'), h('th', {}, 'Segment'), h('th', {}, 'Plan'))),
        h('tbody', {}, ids.map((id) => { const r = byId.get(id) || {}; return h('tr', { 'data-account-row': id },
          h('td', {}, accountLink(id, r.name || id)), h('td', {}, RSTATUS[r.status] || '—'), h('td', {}, r.stage ? stageName(r.stage) : '—'),
          h('td', {}, r.segment ? label(r.segment) : '—'), h('td', {}, r.plan ? label(r.plan) : '—')); }))))];
    });
    p.scrollIntoView({ behavior: 'smooth', block: 'start' });
  }
  // funnelControls are the journey, date range, conversion window, plan,
  // breakdown and trend inputs; each change reloads the page's URL.
  function funnelControls(p, f, journeys) {
    const set = (k, v) => go('journey', { ...p, every: p.every === 'month' ? '' : p.every, [k]: v });
    const js = journeys.length ? journeys : [{ id: p.journey || '', name: p.journey || 'Default journey', isDefault: !p.journey }];
    return h('div', { class: 'controls funnel-controls', 'data-testid': 'funnel-controls' },
      h('label', { for: 'f-journey' }, 'Journey'),
      h('select', { id: 'f-journey', 'data-testid': 'journey-select', onchange: (e) => go('journey', { journey: e.target.value, from: p.from, to: p.to, window: p.window, by: p.by, every: p.every }) },
        js.map((j) => h('option', { value: j.isDefault ? '' : j.id, selected: j.isDefault ? !p.journey || p.journey === j.id : p.journey === j.id }, (j.name || label(j.id)) + (j.isDefault ? ' (default)' : '')))),
      h('label', { for: 'f-from' }, 'Entered from'), h('input', { id: 'f-from', type: 'date', value: p.from, 'data-testid': 'funnel-from', onchange: (e) => set('from', e.target.value) }),
      h('label', { for: 'f-to' }, 'to'), h('input', { id: 'f-to', type: 'date', value: p.to, 'data-testid': 'funnel-to', onchange: (e) => set('to', e.target.value) }),
      h('label', { for: 'f-window' }, 'Conversion window (days)'),
      h('input', { id: 'f-window', type: 'number', min: 0, max: 3660, step: 1, value: p.window, placeholder: 'none', style: 'width:80px', 'data-testid': 'funnel-window', onchange: (e) => set('window', e.target.value === '0' ? '' : e.target.value) }),
      h('label', { for: 'f-plan' }, 'Plan'),
      h('select', { id: 'f-plan', onchange: (e) => set('plan', e.target.value) },
        [...new Set(['', ...(f.plans || []), p.plan])].map((v) => h('option', { value: v, selected: v === p.plan }, v ? label(v) : 'All plans'))),
      h('label', { for: 'f-by' }, 'Breakdown'),
      h('select', { id: 'f-by', 'data-testid': 'breakdown-select', onchange: (e) => set('by', e.target.value) }, BREAKDOWNS.map(([k, l]) => h('option', { value: k, selected: k === p.by }, l))),
      h('label', { for: 'f-every' }, 'Trend'),
      h('select', { id: 'f-every', 'data-testid': 'trend-select', onchange: (e) => set('every', e.target.value === 'month' ? '' : e.target.value) },
        [['month', 'by month'], ['week', 'by week']].map(([k, l]) => h('option', { value: k, selected: k === p.every }, l))));
  }
  function overallPanel(f, ctx) {
    const o = f.overall || {};
    const first = ctx.name(o.firstStage), last = ctx.name(o.lastStage);
    return h('section', { class: 'panel', 'data-testid': 'funnel-overall' }, h('h2', {}, 'Overall conversion'),
      h('div', { class: 'kpis' },
        h('div', { class: 'kpi' }, h('div', { class: 'v', 'data-testid': 'overall-rate' }, num(o.entered) ? fmtPct(o.rate) : '—'), h('div', { class: 'l' }, `${first} → ${last}`)),
        h('div', { class: 'kpi' }, h('div', { class: 'v' }, figCount(o.reached, ctx, 'overall_reached', '', {}, 'overall-reached')), h('div', { class: 'l' }, `reached ${last}`)),
        h('div', { class: 'kpi' }, h('div', { class: 'v' }, figCount(o.entered, ctx, 'overall_entered', '', {}, 'overall-entered')), h('div', { class: 'l' }, `entered ${first}${ctx.p.from || ctx.p.to ? ' in the date range' : ''}`))),
      h('div', { class: 'sub', style: 'margin-top:8px' }, `Accounts whose stay in ${first} began in the date range and matches the filters; reached: they entered ${last} afterwards` +
        (ctx.p.window ? ` within ${ctx.p.window} days.` : '.') + ' Accounts placed directly in a later stage are not counted.'));
  }
  function histogramPanel(stages, ctx) {
    const rows = stages.filter((st) => (st.timeToConvert || []).length);
    return h('section', { class: 'panel', 'data-testid': 'funnel-histogram' }, h('h2', {}, 'Time to convert'),
      h('div', { class: 'sub', style: 'margin-bottom:8px' }, 'How long the converted stays took to move on, from entering the stage' + (ctx.p.window ? ` (within the ${ctx.p.window}-day window)` : '') + '. Buckets: under 1 day, 1–3 days, 3–7 days, 1–2 weeks, 2–4 weeks, 4 weeks–3 months, over 3 months.'),
      rows.length ? h('div', { class: 'grid two' }, rows.map((st) => {
        const max = Math.max(1, ...st.timeToConvert.map((b) => num(b.stays)));
        return h('div', { class: 'hist', 'data-stage': st.stage }, h('h3', {}, st.name || label(st.stage)),
          h('div', { class: 'sub' }, `median ${fmtDuration(st.medianTimeToConvert)} · p90 ${fmtDuration(st.p90TimeToConvert)}`),
          h('table', { class: 'hist-table' }, h('caption', { class: 'sr-only' }, `Time to convert in ${st.name || st.stage}`),
            h('thead', {}, h('tr', {}, h('th', {}, 'Took'), h('th', { class: 'num' }, 'Stays'), h('th', {}, h('span', { class: 'sr-only' }, 'Share')))),
            h('tbody', {}, st.timeToConvert.map((b, i) => h('tr', {}, h('td', { class: 'nowrap' }, b.label), h('td', { class: 'num' }, figCount(b.stays, ctx, 'converted', st.stage, { accountsBucket: i + 1 }, 'hist-count')),
              h('td', { style: 'width:60%' }, h('div', { class: 'bar', 'aria-hidden': 'true' }, h('span', { style: `width:${Math.round(num(b.stays) / max * 100)}%` }))))))));
      })) : empty('No stay converted in this selection yet.'));
  }
  // groupTable lists breakdown groups or trend periods: overall conversion
  // and each stage's conversion, with the counts behind them.
  function groupTable(groups, stages, ctx, kind, testid) {
    const keyName = (g) => (kind === 'period' ? (ctx.p.every === 'week' ? 'week of ' + fmtDate(g.start) : new Date(g.start).toLocaleDateString('en-US', { year: 'numeric', month: 'short', timeZone: 'UTC' }))
      : g.key ? (kind === 'cohort' ? g.key : label(g.key)) : 'Not set');
    const scope = (g) => {
      if (kind === 'period') {
        const qs = ctx.query['window.start'], qe = ctx.query['window.end'];
        const start = qs && Date.parse(qs) > Date.parse(g.start) ? qs : g.start, end = qe && Date.parse(qe) < Date.parse(g.end) ? qe : g.end;
        return [{ 'window.start': start, 'window.end': end }, keyName(g)];
      }
      return [{ [kind]: g.key }, kind + ' ' + keyName(g)];
    };
    return h('div', { class: 'table-wrap' }, h('table', { 'data-testid': testid },
      h('thead', {}, h('tr', {}, h('th', {}, kind === 'period' ? 'Stays began' : label(kind)), h('th', { class: 'num' }, 'Overall'),
        stages.map((st) => h('th', { class: 'num' }, st.name || label(st.stage))))),
      h('tbody', {}, groups.map((g) => {
        const [extra, where] = scope(g);
        // An unset key cannot be asked for by filter, so its counts do not click through.
        const c = kind !== 'period' && !g.key ? null : { ...ctx, scope: where };
        const cnt = (n, fig, st) => (c ? figCount(n, c, fig, st, extra) : fmtInt(n));
        const o = g.overall || {};
        const rows = new Map((g.stages || []).map((s) => [s.stage, s]));
        return h('tr', { 'data-key': g.key },
          h('td', { class: 'nowrap' }, keyName(g)),
          h('td', { class: 'num' }, h('b', {}, num(o.entered) ? fmtPct(o.rate) : '—'), h('div', { class: 'when' }, cnt(o.reached, 'overall_reached'), ' of ', cnt(o.entered, 'overall_entered'))),
          stages.map((st) => { const s = rows.get(st.stage) || {};
            return h('td', { class: 'num' }, h('b', {}, num(s.entered) ? fmtPct(s.conversionRate) : '—'), h('div', { class: 'when' }, cnt(s.converted, 'converted', st.stage), ' of ', cnt(s.entered, 'entered', st.stage))); }));
      }))));
  }
  function trendPanel(f, stages, ctx) {
    const trend = (f.trend || []).filter((g) => (g.stages || []).some((s) => num(s.entered)));
    const plot = h('div', { class: 'trend-plot', 'data-testid': 'funnel-trend-plot' });
    if (trend.length) drawFunnelTrend(plot, trend, stages);
    return h('section', { class: 'panel', 'data-testid': 'funnel-trend' }, h('h2', {}, 'Conversion over time'),
      h('div', { class: 'sub', style: 'margin-bottom:8px' }, `Each stage's conversion rate (converted ÷ entered) by the ${ctx.p.every === 'week' ? 'week' : 'month'} in which the stays began.`),
      trend.length ? [plot, h('details', { class: 'assignment', open: trend.length <= 8 }, h('summary', {}, `the figures by ${ctx.p.every === 'week' ? 'week' : 'month'}, with the accounts behind them`),
        groupTable(trend, stages, ctx, 'period', 'funnel-trend-table'))] : empty('No stay began in this selection.'));
  }
  // mountChart draws a uPlot chart into el with plot(size) once el has a
  // width (a panel may be rendered before the page puts it in the
  // document), then follows its width.
  function mountChart(el, plot) {
    if (typeof window.uPlot !== 'function') return;
    const size = () => ({ width: Math.max(260, el.clientWidth), height: el.clientWidth < 500 ? 200 : 260 });
    let u = null;
    new ResizeObserver(() => {
      if (!u && el.clientWidth > 0) u = plot(size());
      else if (u && el.isConnected) u.setSize(size());
    }).observe(el);
  }
  const STAGE_COLORS = ['#3b5bdb', '#2b8a3e', '#b35c00', '#c92a2a', '#7048e8', '#0b7285', '#5c940d', '#862e9c'];
  function drawFunnelTrend(el, trend, stages) {
    mountChart(el, plot);
    const pct = (self, v) => (v == null ? '—' : Math.round(v) + '%');
    function plot(size) {
      const xs = trend.map((g) => Date.parse(g.start) / 1000);
      const series = stages.slice(0, -1).map((st, i) => ({ label: st.name || label(st.stage), stroke: STAGE_COLORS[i % STAGE_COLORS.length], width: 2, value: pct, spanGaps: true }));
      const data = stages.slice(0, -1).map((st) => trend.map((g) => { const s = (g.stages || []).find((x) => x.stage === st.stage) || {}; return num(s.entered) ? num(s.conversionRate) * 100 : null; }));
      const chart = new window.uPlot({ ...size, tzDate: (ts) => window.uPlot.tzDate(new Date(ts * 1e3), 'Etc/UTC'),
        scales: { x: { time: true }, y: { range: [0, 100] } },
        series: [{ label: 'Period', value: (self, v) => (v == null ? '—' : fmtDate(new Date(v * 1e3).toISOString())) }, ...series],
        axes: [{ stroke: '#667085', grid: { stroke: '#eef0f4' } }, { stroke: '#667085', grid: { stroke: '#eef0f4' }, label: 'conversion %', size: 50 }] },
      [xs, ...data], el);
      el.setAttribute('role', 'img');
      el.setAttribute('aria-label', `Conversion rate per stage over ${trend.length} periods; the figures are in the table below.`);
      return chart;
    }
  }

  function showStage(el, st, segment, journeyId) {
    el.replaceChildren();
    const p = panel('Accounts in ' + (st.name || st.stage));
    el.appendChild(p);
    const body = h('div', {});
    p.appendChild(body);
    fill(body, 'accounts', async () => {
      const r = await api('/v1/journey/accounts', { journeyId, stage: st.stage, segment, 'page.pageSize': 100 });
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

  // ---- shared data: the funnel's stage names and routing's owner names,
  // cached briefly so that moving between pages does not refetch them. The
  // joined account report (GET /v1/dashboard/accounts) is asked a page or a
  // few named accounts at a time: a workspace may have 100,000 accounts.
  const cache = {};
  function cached(key, ttl, load) {
    const c = cache[key];
    if (c && Date.now() - c.at < ttl) return c.p;
    const p = load();
    cache[key] = { at: Date.now(), p };
    p.catch(() => { if (cache[key] && cache[key].p === p) delete cache[key]; });
    return p;
  }
  const names = new Map(), stageNames = new Map(), ownerNames = new Map();
  // accountRows asks the report for one page of the grid (q: its filters,
  // sort and page) and remembers the names of the accounts it lists.
  async function accountRows(q) {
    const rep = await cached('accounts?' + new URLSearchParams(Object.entries(q).filter(([, v]) => v !== '' && v != null)).toString(), 15e3, () => api('/v1/dashboard/accounts', q));
    for (const r of rep.rows || []) if (r.name) names.set(r.accountId, r.name);
    return rep;
  }
  // namedRows is the report's rows of the given accounts (at most 1,000),
  // by id.
  async function namedRows(ids) {
    const want = [...new Set(ids)].slice(0, 1000);
    if (!want.length) return new Map();
    const rep = await accountRows({ ids: want.join(','), status: 'all', 'page.pageSize': 1000 });
    return new Map((rep.rows || []).map((r) => [r.accountId, r]));
  }
  // lookups fills the stage and owner name maps; pages await it before
  // rendering so that links, headings and lists show names, not ids.
  async function lookups() {
    const [f, o] = await Promise.all([optional(cached('funnel', 60e3, () => api('/v1/funnel'))),
      optional(cached('owners', 60e3, () => api('/v1/owners', { 'page.pageSize': 1000 })))]);
    for (const st of (f && f.stages) || []) if (st.name) stageNames.set(st.stage, st.name);
    for (const x of (o && o.owners) || []) if (x.name) ownerNames.set(x.ownerId, x.name);
  }
  const stageName = (id) => (id ? stageNames.get(id) || label(id) : '');
  const ownerName = (id) => (id ? ownerNames.get(id) || id : '');

  // label turns an id ("usage_drop_30d", "adoption.declining_wau",
  // "renewal_window_90") into words.
  const WORDS = { wau: 'weekly active users', dau: 'daily active users', mau: 'monthly active users', nps: 'NPS', p1: 'P1', p2: 'P2',
    arr: 'ARR', mrr: 'MRR', csm: 'CSM', sdr: 'SDR', ae: 'AE', mql: 'MQL', pql: 'PQL', sql: 'SQL', sla: 'SLA', qbr: 'QBR', '7d': '(7 days)',
    '14d': '(14 days)', '30d': '(30 days)', '90d': '(90 days)', smb: 'SMB', crm: 'CRM' };
  function label(id) {
    const s = String(id || '').trim();
    if (!s) return '';
    let m = s.match(/^renewal_window_(\d+)$/);
    if (m) return `Renewal in ≤ ${m[1]} days`;
    // A sentence (the service's own words) keeps its words.
    if (/\s/.test(s) && !/[._]/.test(s)) return s.charAt(0).toUpperCase() + s.slice(1);
    const out = s.split('.').map((part) => part.split(/[_\s-]+/).filter(Boolean).map((w) => WORDS[w.toLowerCase()] || w.toLowerCase()).join(' ')).join(': ');
    return out.charAt(0).toUpperCase() + out.slice(1);
  }
  // tidy rounds the long decimals in a server's sentence ("73.991 points" → "74 points").
  const tidy = (text) => String(text || '').replace(/-?\d+\.\d{2,}/g, (x) => { const v = parseFloat(x); return Math.abs(v) >= 10 ? String(Math.round(v)) : v.toFixed(1); });
  const fmtMoneyShort = (v) => { const n = num(v); if (!n) return '$0'; if (Math.abs(n) >= 1e6) return '$' + (n / 1e6).toFixed(n >= 1e7 ? 0 : 1) + 'M'; if (Math.abs(n) >= 1e4) return '$' + Math.round(n / 1e3) + 'k'; return '$' + Math.round(n).toLocaleString('en-US'); };
  const BANDS = [['healthy', 'Healthy', 'good'], ['neutral', 'Neutral', 'warn'], ['at_risk', 'At risk', 'bad'], ['unscored', 'Not scored yet', 'muted']];
  const bandWordPill = (b) => { const x = BANDS.find((y) => y[0] === (b || 'unscored')); return h('span', { class: 'pill ' + x[2], 'data-band': x[0] }, x[1]); };
  // Account statuses as the report names them, with the words the page shows.
  const RSTATUS = { prospect: 'prospect', trial: 'trial', customer: 'customer', won_back: 'won back', churned: 'churned', unknown: 'unknown' };
  const accountsHref = (f) => '#/accounts?' + new URLSearchParams(Object.entries(f).filter(([, v]) => v)).toString();

  // ---- account filters. The gateway applies them to the grid and to the
  // portfolio's counts (Query.Match in the dashboard package); matches is
  // the same predicate for the few rows a page already holds (the renewal
  // calendar's windows, the search box), so a number and its list cannot
  // disagree.
  const FILTERS = ['q', 'status', 'stage', 'band', 'owner', 'segment', 'plan', 'renewal'];
  function matches(r, f, now) {
    const st = f.status || '';
    if (st === '' && r.status === 'churned') return false;
    if (st === 'paying' && !(r.status === 'customer' || r.status === 'won_back')) return false;
    if (st && st !== 'all' && st !== 'paying' && RSTATUS[r.status] !== st && r.status !== st) return false;
    if (f.stage && r.stage !== f.stage) return false;
    if (f.band && (r.band || 'unscored') !== f.band) return false;
    if (f.owner && (r.ownerId || 'none') !== f.owner) return false;
    if (f.segment && (r.segment || 'none') !== f.segment) return false;
    if (f.plan && (r.plan || 'none') !== f.plan) return false;
    if (f.renewal) {
      if (!r.contractEnd) return false;
      const days = (new Date(r.contractEnd) - now) / 86400e3;
      // "overdue", "N" (within N days) or "A-B" (after A days, within B).
      const [lo, hi] = f.renewal.includes('-') ? f.renewal.split('-').map(Number) : [0, Number(f.renewal)];
      if (f.renewal === 'overdue' ? days >= 0 : (days < 0 || days > hi || (f.renewal.includes('-') && days <= lo))) return false;
    }
    if (f.q) {
      const q = f.q.toLowerCase();
      if (!r.accountId.toLowerCase().includes(q) && !(r.name || '').toLowerCase().includes(q)) return false;
    }
    return true;
  }

  // ---- portfolio (the CS lead's view)
  async function portfolioPage(params) {
    const head = h('div', { class: 'page-head' }, h('div', {}, h('h1', {}, 'Portfolio'),
      h('div', { class: 'sub', id: 'portfolio-sub' }, 'Paying customers (customers and won-back accounts) by health, owner, segment and plan')));
    const body = h('div', {});
    view.replaceChildren(head, body);
    const trendEl = h('section', { class: 'panel', 'data-testid': 'health-trend' });
    healthTrend(trendEl, Number(params.get('days')) || 90);
    await fill(body, 'portfolio', async () => {
      const [rep] = await Promise.all([accountRows({ status: 'paying', 'page.pageSize': 1 }), lookups()]);
      const p = rep.portfolio || {};
      document.getElementById('portfolio-sub').textContent = `Paying customers (customers and won-back accounts), as of ${fmtStamp(rep.asOf)}. Every number opens the accounts it counts.`;
      const link = (n, f, id, text) => h('a', { href: accountsHref({ status: 'paying', ...f }), 'data-count': n, 'data-testid': id, 'aria-label': `${n} accounts${text ? ': ' + text : ''}` }, fmtInt(n));
      const bandByKey = Object.fromEntries((p.bands || []).map((b) => [b.key, b]));
      const atRisk = bandByKey.at_risk || { accounts: 0, arr: 0 };
      const total = Math.max(1, num(p.customers));
      const kpis = h('div', { class: 'kpis', 'data-testid': 'portfolio-kpis' },
        h('div', { class: 'kpi' }, h('div', { class: 'v' }, link(p.customers, {}, 'kpi-customers', 'paying customers')), h('div', { class: 'l' }, 'paying customers')),
        h('div', { class: 'kpi' }, h('div', { class: 'v' }, fmtMoney(p.arr)), h('div', { class: 'l' }, 'ARR')),
        h('div', { class: 'kpi' }, h('div', { class: 'v drop', 'data-testid': 'kpi-arr-at-risk' }, h('a', { href: accountsHref({ status: 'paying', band: 'at_risk' }), class: 'drop', 'data-count': atRisk.accounts }, fmtMoney(p.atRiskArr))),
          h('div', { class: 'l' }, `ARR at risk (${fmtInt(atRisk.accounts)} accounts, ${fmtPct(num(p.arr) ? num(p.atRiskArr) / num(p.arr) : 0)} of ARR)`)));
      // One stacked bar of the customers by band, and the same as a table.
      const stack = h('div', { class: 'stack', role: 'img', 'aria-label': 'Customers by health band: ' + BANDS.map(([k, l]) => `${l} ${num((bandByKey[k] || {}).accounts)}`).join(', ') },
        BANDS.filter(([k]) => num((bandByKey[k] || {}).accounts)).map(([k, l, cls]) => h('span', { class: cls, style: `flex:${num(bandByKey[k].accounts)}`, title: `${l}: ${bandByKey[k].accounts}` }, Math.round(num(bandByKey[k].accounts) / total * 100) + '%')));
      const bandTable = h('div', { class: 'table-wrap' }, h('table', { 'data-testid': 'band-table' },
        h('thead', {}, h('tr', {}, h('th', {}, 'Health band'), h('th', { class: 'num' }, 'Customers'), h('th', { class: 'num' }, 'ARR'), h('th', { class: 'num' }, 'Share of ARR'))),
        h('tbody', {}, BANDS.map(([k, l, cls]) => { const b = bandByKey[k] || { accounts: 0, arr: 0 }; return h('tr', { 'data-band': k },
          h('td', {}, h('span', { class: 'pill ' + cls }, l)), h('td', { class: 'num' }, link(b.accounts, { band: k }, 'band-' + k, l)),
          h('td', { class: 'num' }, fmtMoney(b.arr)), h('td', { class: 'num' }, fmtPct(num(p.arr) ? num(b.arr) / num(p.arr) : 0))); }))));
      const breakdown = (title, groups, field, id) => panel(title, groups.length ? h('div', { class: 'table-wrap' }, h('table', { 'data-testid': id },
        h('thead', {}, h('tr', {}, h('th', {}, title.replace(/^By /, '')), h('th', { class: 'num' }, 'Customers'), h('th', { class: 'num' }, 'ARR'),
          h('th', { class: 'num' }, 'Healthy'), h('th', { class: 'num' }, 'Neutral'), h('th', { class: 'num' }, 'At risk'), h('th', { class: 'num' }, 'ARR at risk'), h('th', { class: 'num' }, 'Avg score'), h('th', { class: 'hide-sm' }, 'Mix'))),
        h('tbody', {}, groups.map((g) => {
          const f = { [field]: g.key };
          const nm = g.key === 'none' ? (field === 'owner' ? 'No owner' : 'Not set') : field === 'owner' ? (g.label || ownerName(g.key)) : label(g.key);
          return h('tr', { 'data-key': g.key },
            h('td', {}, nm), h('td', { class: 'num' }, link(g.accounts, f, null, nm)), h('td', { class: 'num' }, fmtMoney(g.arr)),
            h('td', { class: 'num' }, link(g.healthy, { ...f, band: 'healthy' }, null, nm + ', healthy')),
            h('td', { class: 'num' }, link(g.neutral, { ...f, band: 'neutral' }, null, nm + ', neutral')),
            h('td', { class: 'num' }, num(g.atRisk) ? h('span', { class: 'drop' }, link(g.atRisk, { ...f, band: 'at_risk' }, null, nm + ', at risk')) : link(0, { ...f, band: 'at_risk' }, null, nm + ', at risk')),
            h('td', { class: 'num' }, fmtMoney(g.atRiskArr)), h('td', { class: 'num' }, g.healthy + g.neutral + g.atRisk ? fmtScore(g.avgScore) : '—'),
            h('td', { class: 'hide-sm' }, miniStack(g)));
        })))) : empty('No paying customers yet.'));
      // The server counts them with the same filter the accounts page lists them with.
      const byWindow = Object.fromEntries((p.renewals || []).map((x) => [x.window, x]));
      const renew = [['overdue', 'Overdue'], ['30', '≤ 30 days'], ['90', '≤ 90 days']].map(([k, l]) => {
        const x = byWindow[k] || { accounts: 0, arr: 0 };
        return h('div', { class: 'kpi' }, h('div', { class: 'v' }, link(num(x.accounts), { renewal: k }, 'renewal-' + k, 'renewals ' + l)),
          h('div', { class: 'l' }, `${l}: ${fmtMoneyShort(x.arr)} ARR`));
      });
      return [h('section', { class: 'panel' }, kpis),
        h('div', { class: 'grid two' }, panel('Customers by health band', stack, bandTable),
          panel('Renewals', h('div', { class: 'kpis', 'data-testid': 'portfolio-renewals' }, renew),
            h('div', { class: 'sub', style: 'margin-top:10px' }, 'Contract ends of paying customers; overdue means the contract end has passed without a renewal recorded. ', h('a', { href: '#/lists' }, 'Renewal calendar')))),
        h('div', { style: 'margin-top:18px' }, trendEl, breakdown('By CSM / owner', p.byOwner || [], 'owner', 'by-owner'),
          breakdown('By segment', p.bySegment || [], 'segment', 'by-segment'), breakdown('By plan', p.byPlan || [], 'plan', 'by-plan'))];
    });
  }
  // healthTrend draws today's paying customers by band on each past day
  // (GET /v1/dashboard/health-trend) with uPlot, and the same figures as a
  // table for keyboards and screen readers.
  function healthTrend(el, days) {
    const range = h('select', { id: 'trend-days', 'aria-label': 'Period', onchange: (e) => go('portfolio', { days: e.target.value === '90' ? '' : e.target.value }) },
      [30, 90, 180, 365].map((d) => h('option', { value: d, selected: d === days }, `last ${d} days`)));
    const plot = h('div', { class: 'trend-plot', 'data-testid': 'trend-plot' });
    fill(el, 'health over time', async () => {
      const r = await api('/v1/dashboard/health-trend', { days });
      const ds = (r.days || []).filter((d) => d.healthy + d.neutral + d.atRisk > 0);
      if (!ds.length) return [h('h2', {}, 'Health over time'), empty('No daily scores recorded yet.')];
      const first = ds[0], last = ds[ds.length - 1];
      const change = (k) => { const d = num(last[k]) - num(first[k]); return (d > 0 ? '+' : '') + d; };
      drawTrend(plot, ds);
      return [h('div', { class: 'panel-head' }, h('h2', {}, 'Health over time'), h('div', { class: 'controls' }, h('label', { for: 'trend-days' }, 'Period'), range)),
        h('div', { class: 'sub', style: 'margin-bottom:8px' }, `Today's ${fmtInt(r.accounts)} paying customers by health band on each day (a day without a new score keeps the last one). Since ${fmtDate(first.day + 'T12:00:00Z')}: healthy ${change('healthy')}, neutral ${change('neutral')}, at risk ${change('atRisk')}; ARR at risk ${fmtMoney(first.atRiskArr)} → ${fmtMoney(last.atRiskArr)}.`),
        plot,
        h('details', { class: 'assignment' }, h('summary', {}, 'the figures by week'),
          h('div', { class: 'table-wrap' }, h('table', { 'data-testid': 'trend-table' }, h('thead', {}, h('tr', {}, h('th', {}, 'Day'), h('th', { class: 'num' }, 'Healthy'), h('th', { class: 'num' }, 'Neutral'), h('th', { class: 'num' }, 'At risk'), h('th', { class: 'num' }, 'ARR at risk'), h('th', { class: 'num' }, 'Avg score'))),
            h('tbody', {}, ds.filter((d, i) => (ds.length - 1 - i) % 7 === 0).map((d) => h('tr', {}, h('td', { class: 'nowrap' }, fmtDate(d.day + 'T12:00:00Z')), h('td', { class: 'num' }, d.healthy), h('td', { class: 'num' }, d.neutral),
              h('td', { class: 'num' }, d.atRisk), h('td', { class: 'num' }, fmtMoney(d.atRiskArr)), h('td', { class: 'num' }, fmtScore(d.avgScore))))))))];
    });
  }
  function drawTrend(el, ds) {
    mountChart(el, plot);
    function plot(size) {
    const xs = ds.map((d) => Date.parse(d.day + 'T00:00:00Z') / 1000);
    const chart = new window.uPlot({ ...size, tzDate: (ts) => window.uPlot.tzDate(new Date(ts * 1e3), 'Etc/UTC'),
      scales: { x: { time: true }, y: { range: (self, min, max) => [0, Math.max(5, Math.ceil(max * 1.1))] } },
      series: [{ label: 'Day', value: (self, v) => (v == null ? '—' : fmtDate(new Date(v * 1e3).toISOString())) },
        { label: 'Healthy', stroke: '#237032', width: 2, value: (self, v) => (v == null ? '—' : String(v)) },
        { label: 'Neutral', stroke: '#b35c00', width: 2, value: (self, v) => (v == null ? '—' : String(v)) },
        { label: 'At risk', stroke: '#c92a2a', width: 2.5, value: (self, v) => (v == null ? '—' : String(v)) }],
      axes: [{ stroke: '#667085', grid: { stroke: '#eef0f4' } }, { stroke: '#667085', grid: { stroke: '#eef0f4' }, label: 'customers', size: 50 }] },
    [xs, ds.map((d) => d.healthy), ds.map((d) => d.neutral), ds.map((d) => d.atRisk)], el);
    el.setAttribute('role', 'img');
    el.setAttribute('aria-label', `Customers by health band over ${ds.length} days; the figures are in the table below.`);
    return chart;
    }
  }
  function miniStack(g) {
    const n = Math.max(1, num(g.accounts));
    return h('div', { class: 'stack mini', 'aria-hidden': 'true' }, [['healthy', 'good'], ['neutral', 'neutral-c warn'], ['atRisk', 'bad'], ['unscored', 'muted']]
      .filter(([k]) => num(g[k])).map(([k, cls]) => h('span', { class: cls.split(' ').pop(), style: `flex:${num(g[k]) / n}` })));
  }

  // ---- accounts: every account with health, ARR, renewal and owner. The
  // gateway filters, sorts and pages (GET /v1/dashboard/accounts): the page
  // asks for one page of rows at a time, and the export streams every
  // matching row from the server.
  const GRID_PAGE = 100;
  // pageTrail remembers, per view, the pages before the one shown, so that
  // "Previous page" can go back without the server keeping state.
  const pageTrail = new Map();
  async function accountsPage(params) {
    const f = Object.fromEntries(FILTERS.map((k) => [k, params.get(k) || '']));
    const sort = params.get('sort') || 'name', dir = params.get('dir') === 'desc' ? 'desc' : 'asc';
    const token = params.get('page') || '';
    const set = (changes) => go('accounts', { ...f, sort: sort === 'name' ? '' : sort, dir: dir === 'asc' ? '' : dir, ...changes });
    const head = h('div', { class: 'page-head' }, h('div', {}, h('h1', {}, 'Accounts'), h('div', { class: 'sub', 'data-testid': 'accounts-sub' }, 'Loading accounts')));
    const controls = h('form', { class: 'controls filters', 'aria-label': 'Filter accounts', onsubmit: (e) => { e.preventDefault(); set({ q: e.target.querySelector('#q').value.trim() }); } });
    const body = h('div', {});
    const views = h('div', { class: 'saved-views', 'data-testid': 'saved-views' });
    const current = viewQuery({ ...f, sort: sort === 'name' ? '' : sort, dir: dir === 'asc' ? '' : dir });
    viewsBar(views, current);
    view.replaceChildren(head, h('section', { class: 'panel' }, controls, views, body));
    // The server's query: the page's filters, sort and page, as the
    // gateway names them ("won back" is won_back there).
    const query = { ...f, status: f.status === 'won back' ? 'won_back' : f.status, sort: sort === 'name' ? '' : sort, dir: dir === 'asc' ? '' : dir };
    await fill(body, 'accounts', async () => {
      const [rep] = await Promise.all([accountRows({ ...query, 'page.pageSize': GRID_PAGE, 'page.pageToken': token }), lookups()]);
      const fc = rep.facets || {};
      const select = (id, lbl, opts, value) => [h('label', { for: id }, lbl), h('select', { id, 'data-testid': id + '-filter', onchange: (e) => set({ [id]: e.target.value }) },
        opts.map(([v, t]) => h('option', { value: v, selected: v === value }, t)))];
      const owners = (fc.owners || []).map((o) => [o.id, o.name || o.id]);
      controls.replaceChildren(...[
        h('label', { for: 'q' }, 'Name or id'), h('input', { id: 'q', type: 'search', value: f.q, placeholder: 'e.g. Redgrid', autocomplete: 'off' }),
        select('status', 'Status', [['', 'Live (not churned)'], ['paying', 'Paying customers'], ['prospect', 'prospect'], ['trial', 'trial'], ['customer', 'customer'], ['won back', 'won back'], ['churned', 'churned'], ['all', 'All, churned included']], f.status),
        select('stage', 'Stage', [['', 'Any stage'], ...(fc.stages || []).map((x) => [x, stageName(x)])], f.stage),
        select('band', 'Health', [['', 'Any health'], ...BANDS.map(([k, l]) => [k, l])], f.band),
        select('owner', 'Owner', [['', 'Any owner'], ...owners, ['none', 'No owner']], f.owner),
        select('segment', 'Segment', [['', 'Any segment'], ...(fc.segments || []).map((x) => [x, label(x)]), ['none', 'Not set']], f.segment),
        select('plan', 'Plan', [['', 'Any plan'], ...(fc.plans || []).map((x) => [x, label(x)]), ['none', 'Not set']], f.plan),
        select('renewal', 'Renewal', [['', 'Any renewal'], ['overdue', 'Overdue'], ['30', 'In ≤ 30 days'], ['60', 'In ≤ 60 days'], ['90', 'In ≤ 90 days'], ['120', 'In ≤ 120 days'], ...(f.renewal.includes('-') ? [[f.renewal, `In ${f.renewal.replace('-', '–')} days`]] : [])], f.renewal),
        h('button', { type: 'submit' }, 'Search'),
        FILTERS.some((k) => f[k]) ? h('a', { href: '#/accounts', 'data-testid': 'clear-filters' }, 'Clear filters') : null].flat().filter(Boolean));
      const now = Date.now();
      const rows = rep.rows || [];
      const total = num((rep.page || {}).totalSize);
      const desc = [f.status === 'all' ? 'Every account, churned included' : f.status === 'paying' ? 'Paying customers' : f.status ? `Status ${f.status}` : 'Live accounts (churned excluded: choose “churned” to see them)',
        f.stage && 'stage ' + stageName(f.stage), f.band && 'health ' + BANDS.find((b) => b[0] === f.band)[1].toLowerCase(), f.owner && 'owner ' + (f.owner === 'none' ? 'none' : ownerName(f.owner)),
        f.segment && 'segment ' + label(f.segment), f.plan && 'plan ' + label(f.plan), f.renewal && (f.renewal === 'overdue' ? 'renewal overdue' : f.renewal.includes('-') ? `renewal in ${f.renewal.replace('-', '–')} days` : `renewal in ≤ ${f.renewal} days`), f.q && `matching “${f.q}”`].filter(Boolean).join(' · ');
      head.querySelector('[data-testid=accounts-sub]').textContent = desc;
      const th = (key, text, cls) => {
        const active = sort === key;
        return h('th', { class: cls, 'aria-sort': active ? (dir === 'asc' ? 'ascending' : 'descending') : 'none' },
          h('button', { type: 'button', class: 'sort', 'data-sort': key, onclick: () => set({ sort: key === 'name' ? '' : key, dir: active && dir === 'asc' ? 'desc' : '' }) },
            text, h('span', { 'aria-hidden': 'true' }, active ? (dir === 'asc' ? ' ▲' : ' ▼') : '')));
      };
      if (!total) {
        return h('div', { class: 'empty', 'data-testid': 'no-match' }, f.q ? `No account matches “${f.q}”` + (FILTERS.some((k) => k !== 'q' && f[k]) ? ' with these filters.' : '.') : 'No accounts match these filters.',
          FILTERS.some((k) => f[k]) ? h('div', {}, h('a', { href: '#/accounts' }, 'Show all accounts')) : null);
      }
      // Paging: trail holds this view's pages seen so far, each its token
      // ("" for the first) and the position of its first row, so that the
      // range and "Previous page" can be shown; a page opened from a link
      // starts a trail of its own, its position unknown.
      let trail = pageTrail.get(current) || [{ t: '', start: 1 }];
      let at = trail.findIndex((x) => x.t === token);
      if (at < 0) { trail = token ? [{ t: null, start: null }, { t: token, start: null }] : [{ t: '', start: 1 }]; at = trail.length - 1; pageTrail.set(current, trail); }
      const first = trail[at].start;
      const next = (rep.page || {}).nextPageToken;
      const pager = h('nav', { class: 'controls pager', 'aria-label': 'Pages of accounts', 'data-testid': 'accounts-pager' },
        h('span', { 'data-testid': 'accounts-range' }, first === null ? `${fmtInt(rows.length)} of ${fmtInt(total)}` : `${fmtInt(first)}–${fmtInt(first + rows.length - 1)} of ${fmtInt(total)}`),
        token ? h('button', { type: 'button', 'data-testid': 'accounts-prev', onclick: () => set({ page: (trail[at - 1] && trail[at - 1].t) || '' }) },
          trail[at - 1] && trail[at - 1].t === null ? 'First page' : 'Previous page') : null,
        next ? h('button', { type: 'button', 'data-testid': 'accounts-next', onclick: () => {
          pageTrail.set(current, [...trail.slice(0, at + 1), { t: next, start: first === null ? null : first + rows.length }]);
          set({ page: next });
        } }, 'Next page') : null);
      return [h('div', { class: 'sub', style: 'margin:8px 0', 'data-testid': 'accounts-count', 'data-count': total }, `${fmtInt(total)} account${total === 1 ? '' : 's'} · ${fmtMoney(rep.arr)} ARR `,
        h('button', { type: 'button', 'data-testid': 'export-csv', onclick: (e) => downloadCSV(query, e.currentTarget) }, `Export ${total === 1 ? 'this row' : `all ${fmtInt(total)} rows`} as CSV`)),
        pager,
        h('div', { class: 'table-wrap' }, h('table', { 'data-testid': 'account-table' },
          h('thead', {}, h('tr', {}, th('name', 'Account'), th('status', 'Status'), th('stage', 'Stage'), th('health', 'Health', 'num'), th('change', '30-day change', 'num'), th('arr', 'ARR', 'num'),
            th('renewal', 'Renewal'), th('owner', 'Owner'), th('segment', 'Segment'), th('signals', 'Signals', 'num'))),
          h('tbody', {}, rows.map((r) => {
            const days = r.contractEnd ? Math.round((new Date(r.contractEnd) - now) / 86400e3) : null;
            return h('tr', { 'data-account-row': r.accountId, 'data-status': RSTATUS[r.status] || 'unknown' },
              h('td', {}, accountLink(r.accountId, r.name || r.accountId), r.name && r.name !== r.accountId ? h('div', { class: 'when muted' }, r.accountId) : null),
              h('td', { class: 'nowrap' }, h('span', { class: 'pill ' + ({ customer: 'good', won_back: 'good', churned: 'bad', trial: 'warn' }[r.status] || 'muted'), 'data-status': RSTATUS[r.status] }, RSTATUS[r.status] || 'unknown')),
              h('td', {}, r.stage ? stageName(r.stage) : h('span', { class: 'muted' }, r.status === 'churned' ? 'none (churned)' : '—')),
              h('td', { class: 'num nowrap' }, r.band ? [h('b', {}, fmtScore(r.score)), ' ', bandWordPill(r.band)] : h('span', { class: 'muted', title: 'Health scores paying customers only' }, r.status === 'customer' || r.status === 'won_back' ? 'not scored yet' : 'n/a')),
              h('td', { class: 'num ' + (r.band && num(r.scoreChange30d) < 0 ? 'drop' : ''), 'data-testid': 'change-30d' }, r.band ? (num(r.scoreChange30d) > 0 ? '+' : '') + num(r.scoreChange30d).toFixed(1) : h('span', { class: 'muted' }, 'n/a')),
              h('td', { class: 'num' }, num(r.arr) ? fmtMoney(r.arr) : h('span', { class: 'muted' }, '—')),
              h('td', { class: 'nowrap' }, r.contractEnd ? [fmtDate(r.contractEnd), h('div', { class: 'when ' + (days < 0 ? 'drop' : 'muted') }, days < 0 ? `overdue by ${-days} days` : `in ${days} days`)] : h('span', { class: 'muted' }, '—')),
              h('td', {}, r.ownerId ? r.ownerName || r.ownerId : h('span', { class: 'muted' }, 'no owner')),
              h('td', {}, r.segment ? label(r.segment) : '—'),
              h('td', { class: 'num' }, num(r.openSignals) ? h('span', { class: 'pill warn' }, r.openSignals) : '0'));
          }))))];
    });
  }

  // downloadCSV saves every account that matches the grid's filters, in its
  // sort order, as a CSV file: the gateway streams it (format=csv), so the
  // export is not limited to the page shown. Cells that a spreadsheet would
  // run as a formula are defused by the server.
  async function downloadCSV(query, button) {
    const url = new URL('/v1/dashboard/accounts', location.origin);
    for (const [k, v] of Object.entries({ ...query, format: 'csv' })) if (v) url.searchParams.set(k, v);
    if (button) button.disabled = true;
    try {
      const resp = await fetch(url, { headers: { Authorization: 'Bearer ' + apiKey(), Accept: 'text/csv' } });
      if (!resp.ok) {
        let b = null;
        try { b = await resp.json(); } catch (e) { b = null; }
        throw new APIError(resp.status, b);
      }
      const blob = await resp.blob();
      const a = h('a', { href: URL.createObjectURL(blob), download: `cairn-accounts-${new Date().toISOString().slice(0, 10)}.csv` });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 1000);
    } catch (err) {
      alert('The export failed: ' + (err.message || err));
    } finally {
      if (button) button.disabled = false;
    }
  }

  // ---- saved views of the accounts grid: a name for a set of filters, a
  // sort and a search. The dashboard has no user accounts (a key is not a
  // person), so they are kept in this browser's local storage, not on the
  // server: other people and other browsers do not see them.
  const VIEWS_STORE = 'cairn.accountViews';
  const VIEW_KEYS = [...FILTERS, 'sort', 'dir'];
  // viewQuery is a view's query string, its keys always in the same order
  // so that the view being shown can be recognised.
  const viewQuery = (v) => new URLSearchParams(VIEW_KEYS.filter((k) => v[k]).map((k) => [k, v[k]])).toString();
  function savedViews() {
    try {
      const v = JSON.parse(localStorage.getItem(VIEWS_STORE) || '[]');
      return Array.isArray(v) ? v.filter((x) => x && typeof x.name === 'string' && x.name && typeof x.query === 'string') : [];
    } catch (e) {
      return [];
    }
  }
  function viewsBar(el, current) {
    const list = savedViews();
    const status = h('span', { class: 'muted', role: 'status', 'data-testid': 'saved-view-status' });
    const say = (msg) => { status.textContent = msg; };
    const store = (next, msg) => {
      try {
        localStorage.setItem(VIEWS_STORE, JSON.stringify(next));
      } catch (e) {
        say('This browser would not store the view (its local storage is full or turned off).');
        return;
      }
      viewsBar(el, current);
      el.querySelector('[data-testid=saved-view-status]').textContent = msg;
    };
    const name = h('input', { id: 'view-name', type: 'text', maxlength: 60, autocomplete: 'off', placeholder: 'e.g. My at-risk renewals', 'data-testid': 'saved-view-name' });
    const form = h('form', { class: 'controls', 'aria-label': 'Save the current view', onsubmit: (e) => {
      e.preventDefault();
      const n = name.value.trim();
      if (!n) { say('Give the view a name first.'); name.focus(); return; }
      const replaced = list.some((v) => v.name === n);
      store([...list.filter((v) => v.name !== n), { name: n, query: current }].sort((a, b) => a.name.localeCompare(b.name)),
        replaced ? `Saved view “${n}” updated.` : `Saved view “${n}”.`);
    } }, h('label', { for: 'view-name' }, 'Save these filters, sort and search as'), name, h('button', { type: 'submit', 'data-testid': 'saved-view-save' }, 'Save view'));
    el.replaceChildren(
      h('div', { class: 'controls' }, h('span', { class: 'views-label', id: 'saved-views-label' }, 'Saved views'),
        list.length ? h('ul', { class: 'views', 'aria-labelledby': 'saved-views-label' }, list.map((v) => h('li', { 'data-view': v.name },
          h('a', { href: '#/accounts' + (v.query ? '?' + v.query : ''), 'data-testid': 'saved-view-link', 'aria-current': v.query === current ? 'page' : null }, v.name),
          h('button', { type: 'button', class: 'small link', 'data-testid': 'saved-view-delete', 'aria-label': `Delete the saved view “${v.name}”`, title: 'Delete this saved view',
            onclick: () => store(list.filter((x) => x.name !== v.name), `Deleted the saved view “${v.name}”.`) }, '✕'))))
          : h('span', { class: 'muted', 'data-testid': 'saved-views-none' }, 'none yet')),
      form,
      h('div', { class: 'sub' }, 'Saved in this browser only (its local storage): other people and other browsers do not see them. Saving under an existing name replaces it. ', status));
  }

  // ---- routing: attainment, speed to lead, leaderboard and why each owner.
  async function routingPage(params) {
    const head = h('div', { class: 'page-head' }, h('div', {}, h('h1', {}, 'Routing'), h('div', { class: 'sub' }, 'SLA attainment and speed to lead by handoff type and owner, and why each open handoff went to its owner')));
    const board = h('section', { class: 'panel', 'data-testid': 'leaderboard' }), types = h('section', { class: 'panel', 'data-testid': 'routing-types' });
    const why = h('section', { class: 'panel', 'data-testid': 'decisions' });
    const trend = h('section', { class: 'panel', 'data-testid': 'routing-trend' });
    view.replaceChildren(head, board, types, trend, makeNotice(), why);
    await lookups();
    const report = api('/v1/routing/report');
    routingTrend(trend, params, report);
    const attRow = (x, name, rank) => h('tr', { 'data-key': x.key },
      rank ? h('td', { class: 'num' }, rank) : null, h('td', {}, name),
      h('td', { class: 'num' }, h('b', {}, judged(x) ? fmtPct(x.attainment) : '—'), judged(x) ? h('div', { class: 'bar ' + (num(x.attainment) >= 0.9 ? 'good' : num(x.attainment) >= 0.75 ? 'warn' : 'bad') }, h('span', { style: `width:${Math.round(num(x.attainment) * 100)}%` })) : null),
      h('td', { class: 'num' }, fmtInt(x.assignments)), h('td', { class: 'num' }, fmtInt(x.metOnTime)), h('td', { class: 'num' }, fmtInt(x.metLate)),
      h('td', { class: 'num ' + (num(x.breachedUntouched) ? 'drop' : '') }, fmtInt(x.breachedUntouched)),
      h('td', { class: 'num' }, fmtSpeed(x.medianSpeedToLead)), h('td', { class: 'num' }, fmtSpeed(x.p90SpeedToLead)));
    const judged = (x) => num(x.metOnTime) + num(x.metLate) + num(x.breachedUntouched) > 0;
    const headRow = (first, rank) => h('thead', {}, h('tr', {}, rank ? h('th', { class: 'num' }, '#') : null, h('th', {}, first), h('th', { class: 'num' }, 'Attainment'), h('th', { class: 'num' }, 'Handoffs'),
      h('th', { class: 'num' }, 'Met on time'), h('th', { class: 'num' }, 'Met late'), h('th', { class: 'num' }, 'Breached, untouched'), h('th', { class: 'num' }, 'Median speed to lead'), h('th', { class: 'num' }, 'p90')));
    fill(board, 'leaderboard', async () => {
      const r = await report;
      const owners = (r.rows || []).filter((x) => x.groupBy === 'owner').sort((a, b) => (judged(b) - judged(a)) || num(b.attainment) - num(a.attainment) || seconds(a.medianSpeedToLead) - seconds(b.medianSpeedToLead));
      return [h('h2', {}, 'Owner leaderboard'), h('div', { class: 'sub', style: 'margin-bottom:8px' }, 'Ranked by SLA attainment, then by median speed to lead. Attainment = met on time ÷ (met on time + met late + breached untouched).'),
        owners.length ? h('div', { class: 'table-wrap' }, h('table', { 'data-testid': 'leaderboard-table' }, headRow('Owner', true),
          h('tbody', {}, owners.map((x, i) => attRow(x, ownerName(x.key), i + 1))))) : empty('No SLA clock judged yet.')];
    });
    fill(types, 'attainment by type', async () => {
      const r = await report;
      const byType = (r.rows || []).filter((x) => x.groupBy === 'type'), byTeam = (r.rows || []).filter((x) => x.groupBy === 'team');
      return [h('h2', {}, 'By handoff type and team'),
        byType.length ? h('div', { class: 'table-wrap' }, h('table', { 'data-testid': 'routing-type-table' }, headRow('Handoff type'), h('tbody', {}, byType.map((x) => attRow(x, label(x.key)))))) : empty('No handoffs yet.'),
        byTeam.length ? h('div', { class: 'table-wrap', style: 'margin-top:14px' }, h('table', { 'data-testid': 'routing-team-table' }, headRow('Team'), h('tbody', {}, byTeam.map((x) => attRow(x, label(x.key)))))) : null];
    });
    const loadWhy = () => fill(why, 'decisions', async () => {
      // The open queue, then the paused handoffs (not in the queue) so that
      // they can be resumed from here.
      const [r, p, owners] = await Promise.all([api('/v1/assignments', { openQueue: true, 'page.pageSize': 40 }),
        optional(api('/v1/assignments', { state: 'ASSIGNMENT_STATE_PAUSED', 'page.pageSize': 40 })),
        optional(cached('owners', 60e3, () => api('/v1/owners', { 'page.pageSize': 1000 })))]);
      const rows = [...(r.assignments || []), ...((p && p.assignments) || [])];
      const item = (a) => decisionItem(a, assignmentActions(a, (owners && owners.owners) || [], loadWhy));
      return [h('h2', {}, 'Why this owner'), h('div', { class: 'sub', style: 'margin-bottom:8px' }, 'Open handoffs, soonest due first, then paused ones: the rule that matched, the rules that did not, and every candidate owner with why they were skipped. Reassign moves a handoff to another owner with a fresh SLA clock (admin key); Pause stops its clock while waiting on the customer.'),
        rows.length ? h('ul', { class: 'decisions' }, rows.map(item)) : empty('No open handoffs.')];
    });
    loadWhy();
  }
  // ---- routing trends: attainment and speed to lead by week, from the
  // routing report of the handoffs created in each week (GET
  // /v1/routing/report with a window per week, asked at once).
  const TREND_WEEK_CHOICES = [8, 12, 26];
  // weekStarts are the Mondays (00:00 UTC) of the last n weeks, this one last.
  function weekStarts(n, now) {
    const d = new Date(now);
    const monday = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()) - ((d.getUTCDay() + 6) % 7) * 86400e3;
    return Array.from({ length: n }, (_, i) => monday - (n - 1 - i) * 7 * 86400e3);
  }
  // weekFigures picks a group's row of one week's report; "all" adds up the
  // rows by handoff type (every handoff has exactly one type). A median
  // cannot be added up, so "all" has no speed to lead.
  function weekFigures(rows, group) {
    const judged = (x) => num(x.metOnTime) + num(x.metLate) + num(x.breachedUntouched);
    if (group === 'all') {
      const t = rows.filter((x) => x.groupBy === 'type');
      const sum = (k) => t.reduce((a, x) => a + num(x[k]), 0);
      const out = { assignments: sum('assignments'), metOnTime: sum('metOnTime'), metLate: sum('metLate'), breachedUntouched: sum('breachedUntouched') };
      out.judged = judged(out);
      out.attainment = out.judged ? out.metOnTime / out.judged : null;
      return out;
    }
    const [by, key] = [group.slice(0, group.indexOf(':')), group.slice(group.indexOf(':') + 1)];
    const x = rows.find((r) => r.groupBy === by && r.key === key) || {};
    const j = judged(x);
    return { assignments: num(x.assignments), metOnTime: num(x.metOnTime), metLate: num(x.metLate), breachedUntouched: num(x.breachedUntouched), judged: j,
      attainment: j ? num(x.attainment) : null, median: x.medianSpeedToLead, p90: x.p90SpeedToLead };
  }
  function routingTrend(el, params, reportP) {
    const weeks = TREND_WEEK_CHOICES.includes(Number(params.get('weeks'))) ? Number(params.get('weeks')) : 12;
    const group = params.get('trend') || 'all';
    const set = (changes) => go('routing', { weeks: weeks === 12 ? '' : weeks, trend: group === 'all' ? '' : group, ...changes });
    fill(el, 'attainment by week', async () => {
      const starts = weekStarts(weeks, Date.now());
      const [overall, ...reports] = await Promise.all([reportP, ...starts.map((st) => api('/v1/routing/report',
        { 'window.start': new Date(st).toISOString(), 'window.end': new Date(st + 7 * 86400e3).toISOString() }))]);
      const all = overall.rows || [];
      const groupName = (x) => (x.groupBy === 'owner' ? ownerName(x.key) : label(x.key));
      const choices = [['all', 'All handoffs'], ...['type', 'team', 'owner'].flatMap((by) => all.filter((x) => x.groupBy === by)
        .map((x) => [by + ':' + x.key, (by === 'type' ? 'Type: ' : by === 'team' ? 'Team: ' : 'Owner: ') + groupName(x)]))];
      if (!choices.some(([k]) => k === group)) choices.push([group, 'Unknown group']);
      const controls = h('div', { class: 'controls' },
        h('label', { for: 'routing-trend-group' }, 'Handoffs'), h('select', { id: 'routing-trend-group', 'data-testid': 'routing-trend-group', onchange: (e) => set({ trend: e.target.value === 'all' ? '' : e.target.value }) },
          choices.map(([k, t]) => h('option', { value: k, selected: k === group }, t))),
        h('label', { for: 'routing-trend-weeks' }, 'Period'), h('select', { id: 'routing-trend-weeks', 'data-testid': 'routing-trend-weeks', onchange: (e) => set({ weeks: e.target.value === '12' ? '' : e.target.value }) },
          TREND_WEEK_CHOICES.map((w) => h('option', { value: w, selected: w === weeks }, `last ${w} weeks`))));
      const ws = starts.map((st, i) => ({ start: st, ...weekFigures(reports[i].rows || [], group) }));
      const head = h('div', { class: 'panel-head' }, h('h2', {}, 'Attainment and speed to lead by week'), controls);
      const note = h('div', { class: 'sub', style: 'margin-bottom:8px' }, 'Handoffs by the week (Monday to Sunday, UTC) in which they were created; this week is not over yet. Attainment = met on time ÷ (met on time + met late + breached untouched). ' +
        (group === 'all' ? 'Speed to lead is a median per handoff type, team or owner: choose one to see it over time.' : 'Speed to lead: the median time from handoff to first touch.'));
      if (!ws.some((w) => w.assignments)) return [head, note, empty(`No handoffs were created in the last ${weeks} weeks.`)];
      const plot = h('div', { class: 'trend-plot', 'data-testid': 'routing-trend-plot' });
      drawRoutingTrend(plot, ws, group !== 'all');
      const weekLabel = (w) => fmtDate(new Date(w.start + 43200e3).toISOString());
      return [head, note, plot,
        h('details', { class: 'assignment', open: weeks <= 12 }, h('summary', {}, 'the figures by week'),
          h('div', { class: 'table-wrap' }, h('table', { 'data-testid': 'routing-trend-table' },
            h('thead', {}, h('tr', {}, h('th', {}, 'Week of'), h('th', { class: 'num' }, 'Handoffs'), h('th', { class: 'num' }, 'Met on time'), h('th', { class: 'num' }, 'Met late'),
              h('th', { class: 'num' }, 'Breached, untouched'), h('th', { class: 'num' }, 'Attainment'), group === 'all' ? null : [h('th', { class: 'num' }, 'Median speed to lead'), h('th', { class: 'num' }, 'p90')])),
            h('tbody', {}, ws.map((w) => h('tr', { 'data-week': new Date(w.start).toISOString().slice(0, 10) },
              h('td', { class: 'nowrap' }, weekLabel(w)), h('td', { class: 'num' }, fmtInt(w.assignments)), h('td', { class: 'num' }, fmtInt(w.metOnTime)), h('td', { class: 'num' }, fmtInt(w.metLate)),
              h('td', { class: 'num ' + (w.breachedUntouched ? 'drop' : '') }, fmtInt(w.breachedUntouched)),
              h('td', { class: 'num', 'data-testid': 'week-attainment' }, w.attainment === null ? h('span', { class: 'muted', title: 'No SLA clock of this week has been judged yet' }, 'none judged') : h('b', {}, fmtPct(w.attainment))),
              group === 'all' ? null : [h('td', { class: 'num' }, w.assignments ? fmtSpeed(w.median) : '—'), h('td', { class: 'num' }, w.assignments ? fmtSpeed(w.p90) : '—')]))))))];
    });
  }
  function drawRoutingTrend(el, ws, withSpeed) {
    mountChart(el, plot);
    function plot(size) {
      const xs = ws.map((w) => w.start / 1000);
      const hours = ws.map((w) => (w.assignments && w.median !== undefined && w.median !== null && w.median !== '' ? seconds(w.median) / 3600 : null));
      const series = [{ label: 'Week of', value: (self, v) => (v == null ? '—' : fmtDate(new Date(v * 1e3 + 43200e3).toISOString())) },
        { label: 'Attainment', stroke: '#3b5bdb', width: 2.5, scale: '%', spanGaps: false, points: { show: true }, value: (self, v) => (v == null ? '—' : Math.round(v) + '%') }];
      const axes = [{ stroke: '#667085', grid: { stroke: '#eef0f4' } }, { stroke: '#667085', grid: { stroke: '#eef0f4' }, scale: '%', label: 'attainment %', size: 50 }];
      const data = [xs, ws.map((w) => (w.attainment === null ? null : w.attainment * 100))];
      if (withSpeed) {
        series.push({ label: 'Median speed to lead', stroke: '#b35c00', width: 2, dash: [6, 4], scale: 'h', spanGaps: false, points: { show: true }, value: (self, v) => (v == null ? '—' : fmtSpeed(v * 3600 + 's')) });
        axes.push({ stroke: '#667085', scale: 'h', side: 1, grid: { show: false }, label: 'hours to first touch', size: 56 });
        data.push(hours);
      }
      const chart = new window.uPlot({ ...size, tzDate: (ts) => window.uPlot.tzDate(new Date(ts * 1e3), 'Etc/UTC'),
        scales: { x: { time: true }, '%': { range: [0, 100] }, h: { range: (self, min, max) => [0, Math.max(1, Math.ceil((max || 0) * 1.1))] } }, series, axes }, data, el);
      el.setAttribute('role', 'img');
      el.setAttribute('aria-label', `SLA attainment${withSpeed ? ' and median speed to lead' : ''} by week over ${ws.length} weeks; the figures are in the table below.`);
      return chart;
    }
  }

  const NEEDS_ADMIN = 'Reassigning needs an admin key; the key that may write here is a write key. Add an admin key under Key, top right.';
  // assignmentActions are the routing actions on an open or paused handoff:
  // Reassign to another owner (admin key), Pause or Resume its SLA clock
  // (write key). done redraws the list.
  function assignmentActions(a, owners, done) {
    const st = enumName(a.state, 'ASSIGNMENT_STATE_');
    const who = `${label(enumName(a.type, 'HANDOFF_TYPE_'))} handoff for ${a.accountId ? names.get(a.accountId) || a.accountId : (a.lead && (a.lead.email || a.lead.leadId)) || 'a lead'}`;
    const path = (verb) => '/v1/assignments/' + encodeURIComponent(a.assignmentId) + ':' + verb;
    const act = (verb, body, said) => async () => {
      await send('POST', path(verb), body);
      announce(`${cap1(said)}: ${who}.`);
      done();
    };
    const out = [];
    if (st === 'open' || st === 'breached') {
      const others = owners.filter((o) => o.ownerId !== a.ownerId);
      const pick = h('select', { class: 'small', 'aria-label': 'New owner for the ' + who, 'data-testid': 'reassign-owner' },
        h('option', { value: '' }, 'Reassign to…'), others.map((o) => h('option', { value: o.ownerId }, o.name || o.ownerId)));
      if (writeKey() && keyRole(writeKey()) === 'write') {
        // A write key cannot reassign: say so instead of letting it fail
        // (aria-disabled keeps the button focusable for its tooltip).
        pick.disabled = true;
        pick.title = NEEDS_ADMIN;
        out.push(pick, h('button', { type: 'button', class: 'small', 'aria-disabled': 'true', title: NEEDS_ADMIN, 'aria-label': 'Reassign: ' + who, 'data-action': 'reassign',
          onclick: () => announce(NEEDS_ADMIN, true) }, 'Reassign'));
      } else {
        out.push(pick, actionButton('Reassign', who, async () => {
          if (!pick.value) { announce('Pick the new owner first.', true); return; }
          await act('reassign', { ownerId: pick.value, reason: 'reassigned from the dashboard' }, 'reassigned to ' + ownerName(pick.value))();
        }, { 'data-action': 'reassign' }));
      }
    }
    if (st === 'open') out.push(actionButton('Pause', who, act('pause', {}, 'SLA paused'), { 'data-action': 'pause' }));
    if (st === 'paused') out.push(actionButton('Resume', who, act('resume', {}, 'SLA resumed'), { 'data-action': 'resume' }));
    return out.length ? h('div', { class: 'actions' }, out) : null;
  }
  const SKIP = { outside_working_hours: 'outside working hours', segment_mismatch: 'not in the account\'s segment', territory_mismatch: 'not in the territory', at_capacity: 'at capacity', out_of_office: 'out of office', inactive: 'inactive' };
  function decisionItem(a, actions) {
    const d = a.decision || {};
    const cands = d.candidates || [];
    const prev = a.previousOwnerIds || [];
    return h('li', { 'data-assignment': a.assignmentId },
      h('div', {}, h('b', {}, label(enumName(a.type, 'HANDOFF_TYPE_'))), ' · ', a.accountId ? accountLink(a.accountId) : ((a.lead && (a.lead.email || a.lead.leadId)) || 'lead'),
        ' → ', h('b', {}, a.ownerId ? ownerName(a.ownerId) : 'unassigned'), prev.length ? h('span', { class: 'muted' }, ' (was ' + prev.map(ownerName).join(', ') + ')') : null, ' ', statePill(a), ' ', countdown(a)),
      actions || null,
      h('details', { class: 'assignment why' }, h('summary', {}, 'why ' + (a.ownerId ? ownerName(a.ownerId) : 'nobody')),
        h('dl', { class: 'defs' },
          h('dt', {}, 'reason'), h('dd', {}, a.reason ? label(a.reason) : '—'),
          h('dt', {}, 'rule matched'), h('dd', {}, d.rule ? h('code', {}, d.rule) : 'none'),
          (d.rulesNotMatched || []).length ? [h('dt', {}, 'rules not matched'), h('dd', {}, d.rulesNotMatched.map((x, i) => [i ? ', ' : '', h('code', {}, x)]))] : null,
          d.poolId ? [h('dt', {}, 'pool'), h('dd', {}, d.poolId + (d.strategy ? ' · ' + enumName(d.strategy, 'STRATEGY_') : ''))] : null),
        cands.length ? h('table', { class: 'candidates', 'data-testid': 'candidates' }, h('thead', {}, h('tr', {}, h('th', {}, 'Candidate'), h('th', {}, 'Outcome'), h('th', { class: 'num' }, 'Open then'))),
          h('tbody', {}, cands.map((c) => h('tr', {}, h('td', {}, ownerName(c.ownerId)),
            h('td', {}, c.chosen ? h('span', { class: 'pill good' }, 'chosen') : h('span', { class: 'muted' }, 'skipped: ' + (SKIP[c.skippedBecause] || label(c.skippedBecause) || 'not chosen'))),
            h('td', { class: 'num' }, fmtInt(c.openAssignments)))))) : h('div', { class: 'sub' }, 'No pool candidates: the rule named the owner directly.')));
  }

  async function accountPage(id) {
    const statusEl = h('div', { class: 'status-line', 'data-testid': 'account-status-line' });
    const title = h('h1', { 'data-testid': 'account-name' }, names.get(id) || id);
    const head = h('div', { class: 'page-head' }, h('div', {}, title, h('div', { class: 'muted' }, 'id ', h('code', { 'data-testid': 'account-id' }, id)), statusEl, h('div', { class: 'traits', id: 'traits' })));
    const namesP = Promise.all([lookups(), namedRows([id])]).then(() => { title.textContent = names.get(id) || id; }, () => {});
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
    // The plays row: the account's tasks and playbooks, and what fired for it.
    const playsRow = h('div', { class: 'grid two', style: 'margin-top:18px' });
    const tasksEl = h('section', { class: 'panel', 'data-testid': 'account-tasks' }), firingsEl = h('section', { class: 'panel', 'data-testid': 'account-firings' });
    playsRow.append(tasksEl, firingsEl);
    view.replaceChildren(head, top, mid, playsRow, low);
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
        h('span', { class: 'n' }, label(c.name)),
        h('div', { class: 'bar ' + (num(c.points) >= 80 ? 'good' : num(c.points) >= 50 ? 'warn' : 'bad'), title: `${fmtScore(c.points)} of 100 points × weight ${tidy(num(c.weight))}` },
          h('span', { style: `width:${Math.max(0, Math.min(100, num(c.points)))}%` })),
        h('span', { class: 'num' }, '+' + fmtScore(c.contribution) + ' pts'),
        c.explanation || c.error ? h('div', { class: 'x' }, c.error ? 'Could not compute this component.' : tidy(c.explanation)) : null));
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
        (hl.changes || []).length ? h('div', { class: 'sub', style: 'margin-top:8px' }, 'Recent change: ', hl.changes.map((c) => tidy(label(c.reason))).join('; ')) : null];
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
      await namesP;
      if (j.traits && j.traits.name) title.textContent = j.traits.name;
      const traits = document.getElementById('traits');
      traits.replaceChildren(...Object.entries(j.traits || {}).filter(([k]) => k !== 'name').slice(0, 8).map(([k, v]) => h('span', {}, label(k) + ' ', h('b', {}, k === 'arr' && Number(v) ? fmtMoney(v) : v))));
      const hist = (j.history || []).slice().reverse();
      const lc = j.lifecycle || {};
      const churned = lc.status === 'ACCOUNT_STATUS_CHURNED';
      const changes = (lc.history || []).slice().reverse();
      return [h('h2', {}, 'Journey ', h('span', { class: 'asof', 'data-testid': 'journey-as-of' }, 'as of ' + fmtStamp(j.asOf))),
        h('div', { class: 'kpis', style: 'margin-bottom:14px' },
          h('div', { class: 'kpi' }, h('div', { class: 'v', 'data-testid': 'account-stage', 'data-stage': j.stage || '' }, j.stage ? stageName(j.stage) : (churned ? 'none' : '—')), h('div', { class: 'l' }, churned ? 'churned: in no stage until won back' : 'current stage')),
          j.stage ? h('div', { class: 'kpi' }, h('div', { class: 'v' }, fmtDuration(j.timeInStage)), h('div', { class: 'l' }, 'in stage since ' + fmtDate(j.enteredAt))) : null),
        h('h3', {}, 'Status history'),
        changes.length ? h('ul', { class: 'timeline', 'data-testid': 'status-history', style: 'margin-bottom:14px' }, changes.map((c) => h('li', {},
          h('div', {}, statusPill(c.status), c.event ? [' ', h('code', {}, c.event)] : null),
          h('div', { class: 'when' }, fmtDate(c.at)))))
          : empty('No status changes recorded.'),
        h('h3', {}, 'Stage history'),
        hist.length ? h('ul', { class: 'timeline' }, hist.map((t) => h('li', {},
          h('div', {}, h('b', {}, !t.toStage ? stageName(t.fromStage) + ' → left the journey' : (t.fromStage ? stageName(t.fromStage) + ' → ' : 'placed in ') + stageName(t.toStage)), ' ', h('span', { class: 'pill muted' }, label(t.cause || 'event'))),
          h('div', { class: 'when' }, fmtDateTime(t.at) + (t.triggerMessageId ? ' · ' + t.triggerMessageId : '')),
          (t.criteria || []).filter((c) => c.met).length ? h('div', { class: 'sub' }, 'moved by: ', (t.criteria || []).filter((c) => c.met).map((c) => label(c.name)).join(', ')) : null)))
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
      await namesP;
      return [h('h2', {}, "What's left in " + (j.stage ? stageName(j.stage) : 'this stage')),
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
        h('div', {}, h('div', {}, h('b', {}, enumName(a.type, 'HANDOFF_TYPE_').toUpperCase()), ' → ', a.ownerId ? ownerName(a.ownerId) : 'unassigned', ' ', statePill(a)),
          h('div', { class: 'sub', 'data-testid': 'handoff-sla' }, slaText(a)), assignmentDetails(a)))))
        : empty('No handoffs for this account.')];
    });
    accountPlays(id, tasksEl, firingsEl);
    fill(evEl, 'events', async () => {
      const r = await api(`/v1/accounts/${enc}/events`, { 'page.pageSize': 25 });
      const evs = r.events || [];
      return [h('h2', {}, 'Recent events'), evs.length ? h('ul', { class: 'timeline' }, evs.map((e) => h('li', {},
        h('div', {}, h('b', {}, e.event || e.name || enumName(e.type, 'EVENT_TYPE_')), e.source ? [' ', h('span', { class: 'pill muted' }, e.source)] : null),
        h('div', { class: 'when' }, fmtDateTime(e.timestamp) + (e.userId ? ' · ' + e.userId : '')))))
        : empty('No events for this account.')];
    });
    // An id nothing knows (a typo, or a name typed into the address): one
    // plain message instead of an error in every panel.
    const [jr, hr] = await Promise.allSettled([journeyP, healthP]);
    if (jr.status === 'rejected' && hr.status === 'rejected' && jr.reason.status === 404 && hr.reason.status === 404 && location.hash.startsWith('#/account/')) {
      view.replaceChildren(h('div', { class: 'page-head' }, h('h1', {}, 'No account matches')),
        h('div', { class: 'empty', 'data-testid': 'no-match' }, `No account matches “${id}”. `, h('a', { href: accountsHref({ status: 'all', q: id }) }, 'Search the accounts by name')));
    }
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
      (a.previousOwnerIds || []).length ? ['previous owners', a.previousOwnerIds.map(ownerName).join(', ')] : null,
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
    try { await lookups(); } catch (e) { /* each panel shows its own error */ }
    const scoreRows = (rows) => h('div', { class: 'table-wrap' }, h('table', {},
      h('thead', {}, h('tr', {}, h('th', {}, 'Account'), h('th', { class: 'num' }, 'Score'), h('th', { class: 'num' }, '30d'), h('th', { class: 'num' }, 'ARR'), h('th', {}, 'Stage'))),
      h('tbody', {}, rows.map((a) => h('tr', {}, h('td', {}, accountLink(a.accountId)), h('td', { class: 'num' }, h('span', { class: 'pill ' + scoreClass(a.score, a.band) }, fmtScore(a.score))),
        h('td', { class: 'num ' + (num(a.scoreChange30d) < 0 ? 'drop' : '') }, (num(a.scoreChange30d) > 0 ? '+' : '') + num(a.scoreChange30d).toFixed(1)),
        h('td', { class: 'num' }, fmtMoney(a.arr)), h('td', {}, a.stage ? stageName(a.stage) : '—'))))));
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
      // Every paying customer with a contract end in the next 120 days, or
      // past it without a renewal recorded (overdue), in its nearest window.
      // The renewal playbook's tasks come from plays (GET /v1/tasks, the
      // list the Plays page reads); the calendar still shows without them.
      const due = (renewal) => accountRows({ status: 'paying', renewal, sort: 'renewal', 'page.pageSize': 1000 });
      const [overdueRep, soonRep, tasks, info] = await Promise.all([due('overdue'), due('120'), optional(cached('tasks', 15e3, () => loadAll('/v1/tasks', {}, 'tasks', 5000))), optional(playsLookups())]);
      const rows = [...new Map([...(overdueRep.rows || []), ...(soonRep.rows || [])].map((r) => [r.accountId, r])).values()];
      const progress = renewalProgress(tasks && tasks.items, rows);
      const playsState = !info || !tasks ? 'unavailable' : info.state;
      const now = Date.now();
      const windows = ['overdue', '30', '30-60', '60-90', '90-120'];
      const byEnd = (a, b) => new Date(a.contractEnd) - new Date(b.contractEnd);
      const buckets = windows.map((w) => ({ w, rows: rows.filter((r) => matches(r, { status: 'paying', renewal: w }, now)).sort(byEnd) }));
      const listed = buckets.flatMap((b) => b.rows.map((r) => ({ r, w: b.w })));
      const shown = listed.slice(0, 40);
      const wLabel = (w) => (w === 'overdue' ? 'overdue' : w.includes('-') ? `${w.replace('-', '–')} days` : `≤ ${w} days`);
      return [h('h2', {}, 'Renewal calendar'), h('div', { class: 'sub', style: 'margin-bottom:8px' }, 'Paying customers by contract end, soonest first; overdue means the contract end has passed without a renewal recorded. Each count opens the accounts it counts.'),
        h('div', { class: 'renewals' }, buckets.map((b) => h('div', { class: 'bucket' + (b.w === 'overdue' && b.rows.length ? ' overdue' : ''), 'data-window': b.w },
          h('h4', {}, b.w === 'overdue' ? 'Overdue' : wLabel(b.w)),
          h('div', { class: 'kpi' }, h('div', { class: 'v' }, h('a', { href: accountsHref({ status: 'paying', renewal: b.w, sort: 'renewal' }), 'data-count': b.rows.length, 'aria-label': `${b.rows.length} renewals ${wLabel(b.w)}` }, b.rows.length)),
            h('div', { class: 'l' }, fmtMoneyShort(b.rows.reduce((t, r) => t + num(r.arr), 0)) + ' ARR'))))),
        shown.length ? h('div', { class: 'table-wrap', style: 'margin-top:12px' }, h('table', { 'data-testid': 'renewal-table' },
          h('thead', {}, h('tr', {}, h('th', {}, 'Contract end'), h('th', {}, 'Account'), h('th', { class: 'num' }, 'ARR'), h('th', {}, 'Health'), h('th', {}, 'Play and playbook progress'), h('th', {}, 'Owner'))),
          h('tbody', {}, shown.map(({ r, w }) => {
            const days = Math.round((new Date(r.contractEnd) - now) / 86400e3);
            return h('tr', { 'data-account-row': r.accountId, 'data-window': w },
              h('td', { class: 'nowrap' }, fmtDate(r.contractEnd), h('div', { class: 'when ' + (days < 0 ? 'drop' : 'muted') }, days < 0 ? `overdue by ${-days} days` : `in ${days} days`)),
              h('td', {}, accountLink(r.accountId, r.name)), h('td', { class: 'num' }, fmtMoney(r.arr)),
              h('td', { class: 'nowrap' }, r.band ? [h('b', {}, fmtScore(r.score)), ' ', bandWordPill(r.band)] : h('span', { class: 'muted' }, 'not scored yet')),
              h('td', { class: 'renewal-play', 'data-testid': 'renewal-play' }, renewalCell(r, progress.get(r.accountId), playsState)),
              h('td', {}, r.ownerName || h('span', { class: 'muted' }, 'no owner')));
          })),
          listed.length > shown.length ? h('tfoot', {}, h('tr', {}, h('td', { colspan: 6 }, h('a', { href: accountsHref({ status: 'paying', renewal: '120', sort: 'renewal' }) }, `${listed.length - shown.length} more: every renewal due in the next 120 days`)))) : null))
          : empty('No renewals in the next 120 days and none overdue.')];
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
            h('td', {}, a.ownerId ? ownerName(a.ownerId) : h('span', { class: 'pill bad' }, 'unassigned')),
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
          h('td', { class: 'num' }, fmtSpeed(x.medianSpeedToLead)), h('td', { class: 'num' }, fmtSpeed(x.p90SpeedToLead))))));
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

  // ---- renewal calendar: where each account's renewal playbook stands.
  // RENEWAL_LEAD is how long before a contract end the renewal playbook's
  // tasks for it can be made: the earliest renewal window opens 120 days
  // before, and a few days more cover a window noticed late. A task made
  // earlier belongs to a previous renewal of the account.
  const RENEWAL_LEAD = 125 * 86400e3;
  // renewalProgress gives, per account with a contract end, the steps the
  // built-in renewal playbook made for that renewal (every window's run, in
  // the order they were made), what is done and which open step is next.
  function renewalProgress(tasks, rows) {
    const ends = new Map(rows.map((r) => [r.accountId, new Date(r.contractEnd).getTime()]));
    const out = new Map();
    for (const t of tasks || []) {
      const end = ends.get(t.accountId);
      if (t.playbookId !== 'renewal' || end === undefined || !validTime(t.createdAt) || new Date(t.createdAt).getTime() < end - RENEWAL_LEAD) continue;
      if (!out.has(t.accountId)) out.set(t.accountId, { steps: [], playId: t.playId });
      out.get(t.accountId).steps.push(t);
    }
    for (const p of out.values()) {
      p.steps.sort((a, b) => new Date(a.createdAt) - new Date(b.createdAt) || num(a.step) - num(b.step));
      const count = (st) => p.steps.filter((t) => t.state === st).length;
      p.done = count('TASK_STATE_DONE');
      p.skipped = count('TASK_STATE_SKIPPED');
      p.expired = count('TASK_STATE_EXPIRED');
      p.next = p.steps.filter((t) => t.state === 'TASK_STATE_OPEN' || t.state === 'TASK_STATE_SCHEDULED').sort(soonestDue)[0] || null;
    }
    return out;
  }
  // renewalCell is the calendar's play column: the renewal playbook's steps
  // (done, open, next) when plays made any, else "no play" in words; and the
  // play health recommends for the renewal.
  function renewalCell(r, p, playsState) {
    const recommended = r.renewalPlay ? h('div', { class: 'when muted' }, 'recommended: ' + label(r.renewalPlay).toLowerCase()) : null;
    if (!p) {
      const why = playsState === 'absent' ? ' (plays is not running)' : playsState === 'unavailable' ? ' (playbook progress could not be read)' : playsState === 'none' ? ' (no plays applied)' : '';
      return [h('div', { 'data-testid': 'renewal-progress', 'data-steps': 0 }, 'no play', why ? h('span', { class: 'muted' }, why) : null), recommended];
    }
    const total = p.steps.length, now = Date.now();
    const rest = [p.skipped ? `${p.skipped} skipped` : '', p.expired ? `${p.expired} expired` : ''].filter(Boolean).join(', ');
    return [h('div', { 'data-testid': 'renewal-progress', 'data-steps': total, 'data-done': p.done },
      h('div', {}, h('b', {}, `${p.done} of ${total} step${total === 1 ? '' : 's'} done`), rest ? h('span', { class: 'muted' }, ' · ' + rest) : null),
      h('div', { class: 'when muted' }, playName(p.playId)),
      h('ol', { class: 'steps' }, p.steps.map((t) => {
        const st = taskState(t.state), next = p.next === t;
        return h('li', { class: 'step ' + st[0] + (next ? ' next' : ''), 'data-task-state': next ? 'next' : st[0] },
          h('span', { class: 'mark', 'aria-hidden': 'true' }, next ? '➜' : STEP_MARK[st[0]] || '?'),
          h('span', {}, h('span', { class: 'sr-only' }, (next ? 'next, ' : '') + st[2].toLowerCase() + ': '), t.title));
      })),
      p.next ? h('div', { class: 'when ' + (isOverdue(p.next, now) ? 'drop' : 'muted'), 'data-testid': 'renewal-next' }, 'next: ' + p.next.title +
        (validTime(p.next.dueAt) ? (isOverdue(p.next, now) ? ', overdue since ' : ', due ') + fmtDate(p.next.dueAt) : ''))
        : h('div', { class: 'when muted', 'data-testid': 'renewal-next' }, 'no step open')), recommended];
  }

  // ---- plays (cairn.plays.v1): tasks for owners, playbook runs, the plays
  // that make them, and the webhook and Slack deliveries they send.

  // send makes a change with the key that may write. A refused key does not
  // open the key dialog: the page stays as it is and says why.
  async function send(method, path, body) {
    const resp = await fetch(new URL(path, location.origin), {
      method, body: JSON.stringify(body || {}),
      headers: { Authorization: 'Bearer ' + writeKey(), Accept: 'application/json', 'Content-Type': 'application/json' },
    });
    let b = null;
    try { b = await resp.json(); } catch (e) { b = null; }
    if (!resp.ok) throw new APIError(resp.status, b);
    return b || {};
  }
  const NEEDS_WRITE = 'Needs a key that may write (a write or admin key); this dashboard reads with a read key. Add one under Key, top right.';
  // actionError is a refused change in words.
  function actionError(err) {
    if (err.status === 401) return 'The key that may write was not accepted: check it under Key, top right.';
    if (err.status === 403) return 'This key may not make changes: use a write or admin key (Key, top right).';
    if (err.status === 429) return 'Cairn is busy; try again in a moment.';
    if (err.status >= 500 || !err.status) return 'Cairn could not make the change right now; try again.' + (err.requestId ? ' (request ' + err.requestId + ')' : '');
    // The service's sentence, without the API's enum names.
    return String(err.message || 'The change was refused.').replace(/\s*\(state TASK_STATE_\w+\)/g, '')
      .replace(/\b(?:TASK|DELIVERY|ASSIGNMENT)_STATE_(\w+)\b/g, (m, w) => w.toLowerCase());
  }
  // notice is a page's status line for the outcome of an action (announced
  // to screen readers by role=status).
  let noticeEl = null;
  function makeNotice() {
    noticeEl = h('div', { class: 'notice', role: 'status', 'data-testid': 'action-status' });
    return noticeEl;
  }
  function announce(msg, bad) {
    if (!noticeEl) return;
    noticeEl.className = 'notice' + (bad ? ' bad' : '') + (msg ? ' shown' : '');
    noticeEl.textContent = msg;
  }
  // actionButton is a button that changes something. Without a key that may
  // write it stays visible, marked disabled (aria-disabled keeps it
  // focusable so that its tooltip can be read) and says what is missing.
  function actionButton(text, name, run, attrs) {
    const can = !!writeKey();
    const btn = h('button', { type: 'button', class: 'small', 'aria-disabled': can ? null : 'true', title: can ? name : NEEDS_WRITE, 'aria-label': text + ': ' + name, ...attrs }, text);
    btn.addEventListener('click', async () => {
      if (!can) { announce(NEEDS_WRITE, true); return; }
      if (btn.dataset.busy) return;
      btn.dataset.busy = '1';
      btn.setAttribute('aria-busy', 'true');
      try { await run(); } catch (err) { announce(actionError(err), true); } finally { delete btn.dataset.busy; btn.removeAttribute('aria-busy'); }
    });
    return btn;
  }

  // playsInfo says whether plays runs here and what is active: "active"
  // (with the version), "none" (the workspace has no plays file) or
  // "absent" (the gateway has no plays service). GetPlays answers 404 in
  // both of the last cases; the task list, which never does when the
  // service is there, tells them apart.
  function playsInfo() {
    return cached('plays', 30e3, async () => {
      try {
        const r = await api('/v1/plays');
        return { state: 'active', version: r.plays || {} };
      } catch (err) {
        if (err.status !== 404) throw err;
        try {
          await api('/v1/tasks', { 'page.pageSize': 1 });
          return { state: 'none' };
        } catch (e2) {
          if (e2.status === 404) return { state: 'absent' };
          throw e2;
        }
      }
    });
  }
  const playNames = new Map(), poolNames = new Map();
  async function playsLookups() {
    const [info, pools] = await Promise.all([playsInfo(), optional(cached('pools', 60e3, () => api('/v1/pools', { 'page.pageSize': 1000 })))]);
    for (const p of (info.version && info.version.plays) || []) if (p.name) playNames.set(p.playId, p.name);
    for (const p of (pools && pools.pools) || []) if (p.name) poolNames.set(p.poolId, p.name);
    return info;
  }
  const playName = (id) => playNames.get(id) || label(id);
  const playbookName = (id) => label(id) + ' playbook';
  function playsUnavailable(info, testid) {
    if (info.state === 'absent') {
      return h('div', { class: 'empty', 'data-testid': 'plays-absent' }, h('b', {}, 'Plays is not running.'),
        h('div', {}, 'This gateway has no plays service, so there are no tasks, playbooks or deliveries to show. ', h('code', {}, 'cairn run'),
          ' starts it with the suite; a deployment points the gateway at it with ', h('code', {}, '--plays-addr'), '.'));
    }
    return h('div', { class: 'empty', 'data-testid': testid || 'plays-empty' }, h('b', {}, 'No plays yet.'),
      h('div', {}, 'A play turns a stage change, a health signal, a handoff or an SLA event into tasks for owners, playbooks of tasks, and webhook or Slack messages. This workspace has no plays file: write one (see docs/plays.md) and apply it with ',
        h('code', {}, 'cairn apply -f plays.yaml'), '.'));
  }

  // loadAll pages through a list up to cap items.
  async function loadAll(path, params, field, cap) {
    const items = [];
    let token = '';
    do {
      const r = await api(path, { ...params, 'page.pageSize': Math.min(1000, cap - items.length), 'page.pageToken': token || undefined });
      items.push(...(r[field] || []));
      token = (r.page && r.page.nextPageToken) || '';
    } while (token && items.length < cap);
    return { items, more: !!token };
  }

  // ---- words for the plays service's ids and sentences
  const TASK_STATES = [['open', 'TASK_STATE_OPEN', 'Open', 'warn'], ['scheduled', 'TASK_STATE_SCHEDULED', 'Scheduled', 'muted'],
    ['done', 'TASK_STATE_DONE', 'Done', 'good'], ['skipped', 'TASK_STATE_SKIPPED', 'Skipped', 'muted'], ['expired', 'TASK_STATE_EXPIRED', 'Expired', 'bad']];
  const taskState = (v) => TASK_STATES.find((x) => x[1] === v) || ['unknown', v, 'Unknown', 'muted'];
  const taskPill = (t) => { const x = taskState(t.state); return h('span', { class: 'pill ' + x[3], 'data-task-state': x[0] }, x[2].toLowerCase()); };
  const TRIGGERS = { 'stage.entered': 'entered a stage', 'stage.exited': 'left a stage', 'status.churned': 'churned', 'status.won_back': 'won back',
    'signal.opened': 'a signal opened', 'signal.closed': 'a signal closed', 'health.band_changed': 'health band changed',
    'assignment.created': 'handoff assigned', 'assignment.reassigned': 'handoff reassigned', 'assignment.closed': 'handoff closed',
    'sla.warning': 'SLA warning', 'sla.breach': 'SLA breached', 'sla.escalation': 'SLA escalated', 'sla.met': 'SLA met' };
  const words = (id) => String(id || '').split(/[._\s]+/).filter(Boolean).map((w) => WORDS[w.toLowerCase()] || w.toLowerCase()).join(' ');
  const triggerWords = (k) => TRIGGERS[k] || words(k);
  const cap1 = (x) => (x ? x.charAt(0).toUpperCase() + x.slice(1) : x);
  // humanize puts the ids inside a service's sentence into words:
  // trigger kinds, and snake_case reasons such as renewal_window_90.
  function humanize(text) {
    return tidy(String(text || '')
      .replace(/\b(?:stage|status|signal|health|assignment|sla)\.[a-z_]+\b/g, (k) => triggerWords(k))
      // "renewal signal renewal_window_90 opened": the reason is a name.
      .replace(/\b(signal) ([a-z][a-z0-9]*(?:_[a-z0-9]+)+) (opened|closed)\b/g, (m, a, r, b) => `${a} “${humanize(r)}” ${b}`)
      .replace(/\b[a-z][a-z0-9]*(?:[._][a-z0-9]+)*_[a-z0-9]+(?:[._][a-z0-9]+)*\b/g, (x) => {
        const m = x.match(/^renewal_window_(\d+)$/);
        return m ? `renewal in ≤ ${m[1]} days` : words(x);
      }));
  }
  // whyText reads a task's why ('play "NAME" fired on KIND: SUMMARY').
  function whyText(why) {
    const m = String(why || '').match(/^play "(.*?)" fired on ([a-z_.]+): ([\s\S]*)$/);
    // The summary says what happened in full; the play is in its own column.
    return cap1(humanize(m ? m[3] : why));
  }
  // fmtSpan is a length of time in words ("3 days", "4 hours").
  function fmtSpan(sec) {
    const a = Math.abs(sec);
    const n = (v, unit) => `${v} ${unit}${v === 1 ? '' : 's'}`;
    if (a >= 2 * 86400) return n(Math.round(a / 86400), 'day');
    if (a >= 3600) return n(Math.round(a / 3600), 'hour');
    return n(Math.max(1, Math.round(a / 60)), 'minute');
  }
  // spanWords turns a plays file's duration ("2d", "4h", "90m") into words.
  const spanWords = (d) => { const m = String(d || '').trim().match(/^(\d+)\s*([dhmw])$/); return m ? `${m[1]} ${{ d: 'day', h: 'hour', m: 'minute', w: 'week' }[m[2]]}${m[1] === '1' ? '' : 's'}` : d; };
  function roleWords(r) {
    r = String(r || '');
    if (r.startsWith('pool:')) return 'pool ' + (poolNames.get(r.slice(5)) || label(r.slice(5)));
    if (r.startsWith('owner:')) return ownerName(r.slice(6));
    return { csm: 'the account\'s CSM', ae: 'the account\'s AE', sdr: 'the account\'s SDR' }[r] || words(r);
  }
  function ownerCell(t) {
    const r = String(t.ownerRole || '');
    if (t.ownerId) return [h('div', {}, ownerName(t.ownerId)), h('div', { class: 'when muted' }, r.startsWith('owner:') ? 'named in the play' : roleWords(r))];
    if (r.startsWith('pool:')) return [h('div', {}, 'Pool: ' + (poolNames.get(r.slice(5)) || label(r.slice(5)))), h('div', { class: 'when muted' }, 'anyone in the pool')];
    return [h('span', { class: 'pill warn' }, 'no owner yet'), h('div', { class: 'when muted' }, roleWords(r) + ', once assigned')];
  }
  // fmtLatency is a delivery's time to answer.
  function fmtLatency(d) {
    if (d === undefined || d === null || d === '') return '—';
    const sec = seconds(d);
    if (sec < 0.001) return '<1 ms';
    if (sec < 1) return Math.round(sec * 1000) + ' ms';
    return sec.toFixed(sec < 10 ? 1 : 0) + ' s';
  }
  const urlHost = (u) => { try { return new URL(u).host; } catch (e) { return '—'; } };
  const due = (t) => (validTime(t.dueAt) ? new Date(t.dueAt).getTime() : 8.64e15);
  const soonestDue = (a, b) => due(a) - due(b) || String(a.taskId).localeCompare(String(b.taskId), 'en', { numeric: true });
  const isOpen = (t) => t.state === 'TASK_STATE_OPEN';
  const isOverdue = (t, now) => isOpen(t) && validTime(t.dueAt) && new Date(t.dueAt).getTime() < now;
  function dueCell(t, now) {
    const st = taskState(t.state)[0];
    if (st === 'scheduled') {
      return [h('div', {}, 'starts ' + fmtStamp(t.startsAt)), validTime(t.dueAt) ? h('div', { class: 'when muted' }, 'due ' + fmtStamp(t.dueAt)) : null];
    }
    if (!validTime(t.dueAt)) return h('span', { class: 'muted' }, 'no due date');
    const left = (new Date(t.dueAt).getTime() - now) / 1000;
    return [h('div', {}, fmtStamp(t.dueAt)),
      st === 'open' ? h('div', { class: 'when countdown ' + (left < 0 ? 'late' : left < 86400 ? 'soon' : '') }, left < 0 ? 'overdue by ' + fmtSpan(left) : 'due in ' + fmtSpan(left)) : null];
  }
  // runs groups playbook tasks into runs: the steps one firing made for one
  // account, in step order.
  function playbookRuns(tasks) {
    const runs = new Map();
    for (const t of tasks) {
      if (!t.playbookId) continue;
      const k = t.accountId + '\u0000' + t.playbookId + '\u0000' + t.firingId;
      if (!runs.has(k)) runs.set(k, { key: k, accountId: t.accountId, playbookId: t.playbookId, playId: t.playId, why: t.why, started: t.createdAt, steps: [] });
      runs.get(k).steps.push(t);
    }
    for (const r of runs.values()) {
      r.steps.sort((a, b) => num(a.step) - num(b.step));
      const count = (s) => r.steps.filter((t) => t.state === s).length;
      r.done = count('TASK_STATE_DONE');
      r.skipped = count('TASK_STATE_SKIPPED');
      r.expired = count('TASK_STATE_EXPIRED');
      r.active = r.steps.filter((t) => t.state === 'TASK_STATE_OPEN' || t.state === 'TASK_STATE_SCHEDULED');
      r.next = r.active.slice().sort(soonestDue)[0] || null;
    }
    return runs;
  }
  const runKey = (t) => t.accountId + '\u0000' + t.playbookId + '\u0000' + t.firingId;
  const STEP_MARK = { open: '○', scheduled: '◷', done: '✓', skipped: '–', expired: '✕' };
  function runProgress(r, withAccount) {
    const total = r.steps.length;
    const rest = [r.skipped ? `${r.skipped} skipped` : '', r.expired ? `${r.expired} expired` : ''].filter(Boolean).join(' · ');
    return h('div', { class: 'run', 'data-testid': 'playbook-run', 'data-account': r.accountId, 'data-playbook': r.playbookId, 'data-done': r.done, 'data-steps': total },
      h('div', { class: 'run-head' }, withAccount ? [accountLink(r.accountId), ' · '] : null, h('b', {}, playbookName(r.playbookId)),
        ' ', h('span', { class: 'muted' }, 'started ' + fmtDate(r.started))),
      h('div', { class: 'run-bar' }, h('div', { class: 'bar good', role: 'img', 'aria-label': `${r.done} of ${total} steps done` }, h('span', { style: `width:${total ? (r.done / total) * 100 : 0}%` })),
        h('span', { class: 'nowrap' }, h('b', {}, `${r.done} of ${total}`), ' steps done', rest ? h('span', { class: 'muted' }, ' · ' + rest) : null)),
      h('ol', { class: 'steps' }, r.steps.map((t) => {
        const st = taskState(t.state);
        return h('li', { class: 'step ' + st[0], title: `Step ${t.step}: ${t.title} (${st[2].toLowerCase()})` },
          h('span', { class: 'mark', 'aria-hidden': 'true' }, STEP_MARK[st[0]] || '?'), h('span', { class: 'sr-only' }, st[2].toLowerCase() + ': '), t.title);
      })),
      r.next ? h('div', { class: 'when muted' }, 'next: ' + r.next.title + (validTime(r.next.dueAt) ? ', due ' + fmtDate(r.next.dueAt) : '')) : null);
  }

  // taskActions is what can be done with a task: Done or Skip while it is
  // open (or scheduled), Reopen once someone closed it, and who closed it.
  function taskActions(t, redraw) {
    const st = taskState(t.state)[0];
    const name = `“${t.title}” (${names.get(t.accountId) || t.accountId})`;
    const set = (state, verb) => async () => {
      const r = await send('PATCH', '/v1/tasks/' + encodeURIComponent(t.taskId), { state });
      Object.assign(t, r.task || { state });
      delete cache.tasks;
      announce(`${cap1(verb)}: ${name}.`);
      redraw();
    };
    if (st === 'open' || st === 'scheduled') {
      return h('div', { class: 'actions' }, actionButton('Done', name, set('TASK_STATE_DONE', 'marked done'), { 'data-action': 'done' }),
        actionButton('Skip', name, set('TASK_STATE_SKIPPED', 'skipped'), { 'data-action': 'skip' }));
    }
    const by = t.closedBy === 'plays' ? 'automatically' : t.closedBy ? 'by ' + String(t.closedBy).replace(/^key /, 'key ') : '';
    return h('div', { class: 'actions' },
      validTime(t.closedAt) ? h('div', { class: 'when muted' }, `${taskState(t.state)[2].toLowerCase()} ${fmtDate(t.closedAt)} ${by}`.trim()) : null,
      t.note ? h('div', { class: 'when muted' }, humanize(t.note)) : null,
      st === 'done' || st === 'skipped' ? actionButton('Reopen', name, set('TASK_STATE_OPEN', 'reopened'), { 'data-action': 'reopen', class: 'small link' }) : null);
  }

  function taskRow(t, now, runs) {
    const run = t.playbookId && runs ? runs.get(runKey(t)) : null;
    const tr = h('tr', { 'data-task': t.taskId, 'data-task-state': taskState(t.state)[0], 'data-due': t.dueAt || '', class: isOverdue(t, now) ? 'overdue' : null });
    const draw = () => {
      tr.dataset.taskState = taskState(t.state)[0];
      tr.classList.toggle('overdue', isOverdue(t, now));
      tr.replaceChildren(
        h('td', { class: 'nowrap' }, dueCell(t, now)),
        h('td', {}, accountLink(t.accountId)),
        h('td', {}, h('div', {}, h('b', {}, t.title)), ' ', taskPill(t)),
        h('td', {}, ownerCell(t)),
        h('td', {}, h('div', {}, playName(t.playId)),
          t.playbookId ? h('div', { class: 'when muted' }, `${playbookName(t.playbookId)} · step ${num(t.step)}` + (run ? ` of ${run.steps.length}` : '')) : null),
        h('td', { class: 'why' }, whyText(t.why)),
        h('td', {}, taskActions(t, draw)));
    };
    draw();
    return tr;
  }
  const taskHead = () => h('thead', {}, h('tr', {}, h('th', {}, 'Due'), h('th', {}, 'Account'), h('th', {}, 'Task'), h('th', {}, 'Owner'),
    h('th', {}, 'Play and step'), h('th', {}, 'Why'), h('th', {}, h('span', { class: 'sr-only' }, 'Actions'))));

  // more is a "Show more" row under a list: run adds the next rows and says
  // whether there are still more.
  function moreButton(text, run, testid) {
    const status = h('span', { class: 'muted' });
    const btn = h('button', { type: 'button', class: 'small', 'data-testid': testid }, text);
    const row = h('div', { class: 'more' }, btn, status);
    btn.addEventListener('click', async () => {
      btn.disabled = true;
      status.textContent = 'Loading…';
      try {
        const left = await run();
        status.textContent = '';
        if (!left) row.remove();
      } catch (err) {
        status.replaceChildren(failure(err));
      } finally {
        btn.disabled = false;
      }
    });
    return row;
  }

  async function playsPage(params) {
    const state = TASK_STATES.some((x) => x[0] === params.get('state')) || params.get('state') === 'all' ? params.get('state') : 'open';
    const owner = params.has('owner') ? params.get('owner') : localStorage.getItem('cairn.playsOwner') || '';
    const set = (changes) => go('plays', { state: state === 'open' ? '' : state, owner, ...changes });
    const head = h('div', { class: 'page-head' }, h('div', {}, h('h1', {}, 'Plays'),
      h('div', { class: 'sub', 'data-testid': 'plays-sub' }, 'Tasks for owners, playbooks, and the messages plays send')), makeNotice());
    const body = h('div', {});
    view.replaceChildren(head, body);
    await fill(body, 'plays', async () => {
      const [info] = await Promise.all([playsLookups(), lookups().catch(() => null)]);
      if (info.state !== 'active') return h('section', { class: 'panel' }, playsUnavailable(info));
      const v = info.version;
      head.querySelector('[data-testid=plays-sub]').textContent = `${fmtInt((v.plays || []).length)} active plays, version ${fmtInt(v.version)} applied ${fmtStamp(v.appliedAt)}. Tasks for owners, playbooks, and the messages plays send.`;
      const work = h('section', { class: 'panel', 'data-testid': 'plays-tasks' });
      const books = h('section', { class: 'panel', 'data-testid': 'plays-playbooks' });
      const firings = h('section', { class: 'panel', 'data-testid': 'plays-firings' });
      const list = h('section', { class: 'panel', 'data-testid': 'plays-list' });
      const dests = h('section', { class: 'panel', 'data-testid': 'plays-destinations' });
      const log = h('section', { class: 'panel', 'data-testid': 'plays-deliveries' });
      const dead = h('section', { class: 'panel', 'data-testid': 'plays-dead' });
      // Every task (to count states and group playbook runs), up to a cap.
      const allP = cached('tasks', 15e3, () => loadAll('/v1/tasks', {}, 'tasks', 5000));
      workPanel(work, allP, { state, owner, set });
      playbooksPanel(books, allP);
      firingsPanel(firings, v);
      playsList(list, v);
      deliveriesPanels(dests, log, dead, v);
      return [work, books, firings, list, dests, log, dead];
    });
  }

  function workPanel(el, allP, { state, owner, set }) {
    const PAGE = 50;
    fill(el, 'tasks', async () => {
      const all = await allP;
      const now = Date.now();
      const mine = all.items.filter((t) => !owner || (owner === 'none' ? !t.ownerId : t.ownerId === owner));
      const counts = Object.fromEntries(TASK_STATES.map(([k, e]) => [k, mine.filter((t) => t.state === e).length]));
      const overdue = mine.filter((t) => isOverdue(t, now)).length;
      // The list itself asks the service with the filters, so that it is
      // complete even past the cap of the counts above.
      const st = TASK_STATES.find((x) => x[0] === state);
      const r = await loadAll('/v1/tasks', { state: st ? st[1] : undefined, ownerId: owner && owner !== 'none' ? owner : undefined }, 'tasks', 5000);
      const rows = r.items.filter((t) => owner !== 'none' || !t.ownerId);
      // Soonest due first; closed tasks newest closed first.
      rows.sort(state === 'open' || state === 'scheduled' || state === 'all' ? soonestDue : (a, b) => new Date(b.closedAt || 0) - new Date(a.closedAt || 0));
      const runs = playbookRuns(all.items);
      const ownerOpts = [['', 'Everyone'], ...[...ownerNames.entries()].sort((a, b) => a[1].localeCompare(b[1])), ['none', 'No owner yet (pools, unassigned roles)']];
      if (owner && owner !== 'none' && !ownerNames.has(owner)) ownerOpts.push([owner, owner]);
      const controls = h('div', { class: 'controls filters' },
        h('label', { for: 'task-owner' }, 'Owner'), h('select', { id: 'task-owner', 'data-testid': 'task-owner-filter', onchange: (e) => { localStorage.setItem('cairn.playsOwner', e.target.value); set({ owner: e.target.value }); } },
          ownerOpts.map(([k, l]) => h('option', { value: k, selected: k === owner }, l))),
        h('label', { for: 'task-state' }, 'State'), h('select', { id: 'task-state', 'data-testid': 'task-state-filter', onchange: (e) => set({ state: e.target.value === 'open' ? '' : e.target.value }) },
          [...TASK_STATES.map(([k, , l]) => [k, `${l} (${fmtInt(counts[k])}${all.more ? '+' : ''})`]), ['all', 'Any state']].map(([k, l]) => h('option', { value: k, selected: k === state }, l))));
      const tbody = h('tbody', {});
      let shown = 0;
      const showMore = () => {
        const next = rows.slice(shown, shown + PAGE);
        tbody.append(...next.map((t) => taskRow(t, now, runs)));
        shown += next.length;
        return rows.length - shown;
      };
      showMore();
      const who = owner === 'none' ? 'with no owner yet' : owner ? 'for ' + ownerName(owner) : 'for everyone';
      return [h('div', { class: 'panel-head' }, h('h2', {}, 'My work ', h('span', { class: 'pill warn', 'data-testid': 'tasks-open-count' }, fmtInt(counts.open) + (all.more ? '+' : '') + ' open'), ' ',
        overdue ? h('span', { class: 'pill bad', 'data-testid': 'tasks-overdue-count' }, fmtInt(overdue) + (all.more ? '+' : '') + ' overdue') : null), controls),
      h('div', { class: 'sub', style: 'margin-bottom:8px' }, `${st ? st[2] : 'All'} tasks ${who}, ` + (state === 'open' || state === 'scheduled' || state === 'all' ? 'soonest due first.' : 'latest closed first.') +
        ' Pick yourself under Owner: this browser remembers it. Done and Skip close a task; a task left open past its due date expires after a while.'),
      rows.length ? [h('div', { class: 'table-wrap' }, h('table', { 'data-testid': 'tasks-table', class: 'tasks' }, taskHead(), tbody)),
        h('div', { class: 'sub', 'data-testid': 'tasks-count' }, `${fmtInt(rows.length)}${r.more ? '+' : ''} task${rows.length === 1 ? '' : 's'}`),
        rows.length > shown ? moreButton(`Show ${PAGE} more`, async () => showMore(), 'tasks-more') : null]
        : h('div', { class: 'empty', 'data-testid': 'tasks-empty' }, `No ${st ? st[2].toLowerCase() + ' ' : ''}tasks ${who}.`)];
    });
  }

  function playbooksPanel(el, allP) {
    const PAGE = 12;
    fill(el, 'playbooks', async () => {
      const all = await allP;
      const runs = [...playbookRuns(all.items).values()];
      const going = runs.filter((r) => r.active.length).sort((a, b) => soonestDue(a.next, b.next));
      const finished = runs.length - going.length;
      const box = h('div', { class: 'runs' });
      let shown = 0;
      const showMore = () => { const next = going.slice(shown, shown + PAGE); box.append(...next.map((r) => runProgress(r, true))); shown += next.length; return going.length - shown; };
      showMore();
      return [h('h2', {}, 'Playbook progress'),
        h('div', { class: 'sub', style: 'margin-bottom:8px' }, `Playbook runs with steps still to do, the one due soonest first: each run is the steps a play made for one account. ${fmtInt(finished)} run${finished === 1 ? '' : 's'} finished` + (all.more ? ' (counted over the latest 5,000 tasks).' : '.')),
        going.length ? [box, going.length > shown ? moreButton(`Show ${PAGE} more`, async () => showMore(), 'playbooks-more') : null]
          : h('div', { class: 'empty', 'data-testid': 'playbooks-empty' }, 'No playbook has steps to do.')];
    });
  }

  // heldText says why a play that matched did nothing.
  function heldText(held) {
    const m = String(held).match(/^cooldown until (\S+)$/);
    if (m && validTime(m[1])) return 'held: cooldown until ' + fmtStamp(m[1]);
    return 'held: ' + humanize(held);
  }
  function firingResult(f) {
    if (f.held) return h('span', { class: 'held', 'data-testid': 'held' }, heldText(f.held));
    const t = (f.taskIds || []).length, d = (f.deliveryIds || []).length;
    const parts = [t ? `${t} task${t === 1 ? '' : 's'}` : '', d ? `${d} message${d === 1 ? '' : 's'}` : ''].filter(Boolean);
    return h('span', {}, parts.length ? parts.join(' · ') : 'nothing to do');
  }
  function firingsPanel(el, v) {
    const SIZE = 25;
    const plays = v.plays || [];
    const draw = (playId) => fill(el, 'firings', async () => {
      const tbody = h('tbody', {});
      let token = '';
      const next = async () => {
        const r = await api('/v1/plays/firings', { playId: playId || undefined, 'page.pageSize': SIZE, 'page.pageToken': token || undefined });
        tbody.append(...(r.firings || []).map((f) => h('tr', { 'data-firing': f.firingId, 'data-held': f.held ? 'true' : 'false' },
          h('td', { class: 'nowrap' }, fmtStamp(f.at)), h('td', {}, accountLink(f.accountId)), h('td', {}, playName(f.playId)),
          h('td', {}, cap1(triggerWords(f.trigger)), h('div', { class: 'when muted' }, humanize(f.record))), h('td', {}, firingResult(f)))));
        token = (r.page && r.page.nextPageToken) || '';
        return (r.firings || []).length;
      };
      const n = await next();
      const sel = h('select', { id: 'firing-play', 'data-testid': 'firing-play-filter', onchange: (e) => draw(e.target.value) },
        h('option', { value: '' }, 'Every play'), plays.map((p) => h('option', { value: p.playId, selected: p.playId === playId }, p.name || label(p.playId))));
      return [h('div', { class: 'panel-head' }, h('h2', {}, 'Recent firings'), h('div', { class: 'controls' }, h('label', { for: 'firing-play' }, 'Play'), sel)),
        h('div', { class: 'sub', style: 'margin-bottom:8px' }, 'Each time a play matched an account, newest first, and what it did. A play held by its cooldown did nothing, so that one account is not asked twice.'),
        n ? [h('div', { class: 'table-wrap' }, h('table', { 'data-testid': 'firings-table' },
          h('thead', {}, h('tr', {}, h('th', {}, 'When'), h('th', {}, 'Account'), h('th', {}, 'Play'), h('th', {}, 'Trigger'), h('th', {}, 'Result'))), tbody)),
        token ? moreButton(`Show ${SIZE} more`, async () => { await next(); return token; }, 'firings-more') : null]
          : h('div', { class: 'empty' }, playId ? 'This play has not fired yet.' : 'No play has fired yet.')];
    });
    draw('');
  }

  // actionWords reads the service's action summary ("task: TITLE (csm,
  // due in 2d)", "playbook: renewal", "webhook: crm") as a sentence.
  function actionWords(a) {
    const m = String(a).match(/^(\w+):\s*([\s\S]*)$/);
    if (!m) return humanize(a);
    const [, kind, rest] = m;
    if (kind === 'task') {
      const t = rest.match(/^([\s\S]*) \(([^,()]+)(?:, due in ([^)]+))?\)$/);
      if (t) return ['Task ', h('b', {}, '“' + t[1] + '”'), ' for ' + roleWords(t[2].trim()) + (t[3] ? ', due in ' + spanWords(t[3]) : '')];
      return ['Task ', h('b', {}, '“' + rest + '”')];
    }
    if (kind === 'playbook') return ['Run the ', h('b', {}, playbookName(rest.trim())), ' (its steps become tasks as they fall due)'];
    const what = { webhook: 'Webhook to ', slack: 'Slack message to ', content: 'Content to ' }[kind];
    return what ? [what, h('b', {}, rest)] : cap1(words(kind)) + ': ' + rest;
  }
  function playsList(el, v) {
    const plays = v.plays || [];
    const dests = v.destinations || [];
    // The playbooks the plays run (the version lists those it defines).
    const books = [...new Set([...(v.playbooks || []), ...plays.flatMap((p) => (p.actions || []).map((a) => (String(a).match(/^playbook:\s*(\S+)/) || [])[1]).filter(Boolean))])];
    el.append(h('h2', {}, 'Active plays'),
      h('div', { class: 'sub', style: 'margin-bottom:8px' }, `Version ${fmtInt(v.version)}, applied ${fmtStamp(v.appliedAt)}. Playbooks: ${books.map(label).join(', ') || 'none'}. Destinations: ${dests.map((d) => d.destinationId).join(', ') || 'none'}.`),
      plays.length ? h('ul', { class: 'plays' }, plays.map((p) => h('li', { 'data-play': p.playId },
        h('div', {}, h('b', {}, p.name || label(p.playId)), ' ', h('span', { class: 'muted' }, 'id ', h('code', {}, p.playId))),
        h('dl', { class: 'defs' },
          h('dt', {}, 'on'), h('dd', {}, (p.on || []).map((k, i) => [i ? ', ' : '', triggerWords(k)])),
          p.when ? [h('dt', {}, 'when'), h('dd', {}, h('code', {}, p.when))] : null,
          p.conditions ? [h('dt', {}, 'and'), h('dd', {}, h('code', {}, p.conditions))] : null,
          h('dt', {}, 'cooldown'), h('dd', {}, seconds(p.cooldown) ? `at most once per account every ${fmtSpan(seconds(p.cooldown))}` : 'none: fires every time it matches'),
          h('dt', {}, 'does'), h('dd', {}, h('ul', { class: 'plain' }, (p.actions || []).map((a) => h('li', {}, actionWords(a)))))))))
        : empty('The plays file has no plays.'));
  }

  const DELIVERY_STATES = [['pending', 'DELIVERY_STATE_PENDING', 'pending', 'warn'], ['delivered', 'DELIVERY_STATE_DELIVERED', 'delivered', 'good'], ['dead', 'DELIVERY_STATE_DEAD', 'dead', 'bad']];
  const deliveryPill = (d) => { const x = DELIVERY_STATES.find((s) => s[1] === d.state) || ['unknown', '', 'unknown', 'muted']; return h('span', { class: 'pill ' + x[3], 'data-delivery-state': x[0] }, x[2]); };
  const BREAKER = { closed: ['sending', 'good', 'closed: sending normally'], open: ['paused', 'bad', 'open: paused after repeated failures; retries later'], 'half-open': ['trying again', 'warn', 'half-open: trying one delivery before sending the rest'] };
  const breakerPill = (b) => { const x = BREAKER[b]; return x ? h('span', { class: 'pill ' + x[1], title: 'Circuit breaker ' + x[2], 'data-breaker': b }, x[0]) : h('span', { class: 'muted' }, '—'); };
  const actionName = (a) => ({ webhook: 'webhook', slack: 'Slack message', content: 'content' }[a] || words(a));
  const statusCode = (d) => (num(d.lastStatus) ? 'HTTP ' + d.lastStatus : '—');

  function deliveriesPanels(destEl, logEl, deadEl, v) {
    const SIZE = 25;
    const redrawAll = () => { drawDests(); drawLog(logState); drawDead(); };
    const redeliver = async (body, what) => {
      const r = await send('POST', '/v1/deliveries:redeliver', body);
      announce(`Queued ${fmtInt(r.queued)} ${what} again.`);
      redrawAll();
    };
    const drawDests = () => fill(destEl, 'destinations', async () => {
      const r = await api('/v1/destinations');
      const ds = r.destinations || [];
      return [h('h2', {}, 'Destinations'),
        h('div', { class: 'sub', style: 'margin-bottom:8px' }, 'Where plays send webhooks and Slack messages, with figures since the plays service started. A destination that keeps failing is paused for a while (its breaker opens) so that retries do not pile up.'),
        ds.length ? h('div', { class: 'table-wrap' }, h('table', { 'data-testid': 'destinations-table' },
          h('thead', {}, h('tr', {}, h('th', {}, 'Destination'), h('th', {}, 'Type'), h('th', {}, 'Host'), h('th', { class: 'num' }, 'Pending'), h('th', { class: 'num' }, 'Delivered'),
            h('th', { class: 'num' }, 'Failed attempts'), h('th', { class: 'num' }, 'Dead'), h('th', {}, 'Breaker'), h('th', {}, 'Last error'), h('th', { class: 'num' }, 'p50'), h('th', { class: 'num' }, 'p99'),
            h('th', {}, h('span', { class: 'sr-only' }, 'Actions')))),
          h('tbody', {}, ds.map((x) => {
            const d = x.destination || {};
            return h('tr', { 'data-destination': d.destinationId },
              h('td', {}, h('b', {}, d.destinationId)), h('td', {}, d.type === 'slack' ? 'Slack' : d.type === 'webhook' ? 'webhook' : words(d.type), d.signed ? h('div', { class: 'when muted' }, 'signed') : null),
              h('td', { class: 'nowrap' }, h('code', {}, urlHost(d.url))),
              h('td', { class: 'num' }, fmtInt(x.pending), num(x.inFlight) ? h('div', { class: 'when muted' }, fmtInt(x.inFlight) + ' sending') : null),
              h('td', { class: 'num' }, fmtInt(x.delivered)), h('td', { class: 'num ' + (num(x.failedAttempts) ? 'drop' : '') }, fmtInt(x.failedAttempts)),
              h('td', { class: 'num ' + (num(x.dead) ? 'drop' : '') }, fmtInt(x.dead)), h('td', {}, breakerPill(x.breaker)),
              h('td', { class: 'why' }, x.lastError ? [num(x.lastStatus) ? h('b', {}, 'HTTP ' + x.lastStatus + ' ') : null, x.lastError] : h('span', { class: 'muted' }, 'none')),
              h('td', { class: 'num nowrap' }, fmtLatency(x.latencyP50)), h('td', { class: 'num nowrap' }, fmtLatency(x.latencyP99)),
              h('td', {}, num(x.dead) ? actionButton('Redeliver all dead', `the ${fmtInt(x.dead)} dead deliveries to ${d.destinationId}`,
                () => redeliver({ destinationId: d.destinationId }, `dead deliveries to ${d.destinationId}`), { 'data-action': 'redeliver-all' }) : null));
          }))))
          : h('div', { class: 'empty', 'data-testid': 'destinations-empty' }, 'No destinations: the plays file sends no webhook or Slack message. Add a destinations list and a webhook or slack action to a play to send them.')];
    });
    const deliveryRow = (d, withRedeliver) => h('tr', { 'data-delivery': d.deliveryId },
      h('td', { class: 'nowrap' }, fmtStamp(d.createdAt)), h('td', {}, deliveryPill(d)),
      h('td', {}, h('b', {}, d.destinationId), h('div', { class: 'when muted' }, actionName(d.action))),
      h('td', { class: 'num' }, fmtInt(d.attempts), d.state === 'DELIVERY_STATE_PENDING' && validTime(d.nextAttemptAt) ? h('div', { class: 'when muted' }, 'next ' + fmtStamp(d.nextAttemptAt)) : null),
      h('td', { class: 'num nowrap' }, statusCode(d)), h('td', { class: 'num nowrap' }, fmtLatency(d.lastLatency)),
      h('td', { class: 'why' }, d.lastError || h('span', { class: 'muted' }, '—')),
      h('td', {}, playName(d.playId)), h('td', {}, d.accountId ? accountLink(d.accountId) : '—'),
      withRedeliver ? h('td', {}, actionButton('Redeliver', `delivery ${d.deliveryId} to ${d.destinationId}`, () => redeliver({ deliveryIds: [d.deliveryId] }, 'the delivery'), { 'data-action': 'redeliver' })) : null);
    const deliveryHead = (withRedeliver) => h('thead', {}, h('tr', {}, h('th', {}, 'Created'), h('th', {}, 'State'), h('th', {}, 'Destination'), h('th', { class: 'num' }, 'Attempts'),
      h('th', { class: 'num' }, 'Last status'), h('th', { class: 'num' }, 'Latency'), h('th', {}, 'Last error'), h('th', {}, 'Play'), h('th', {}, 'Account'),
      withRedeliver ? h('th', {}, h('span', { class: 'sr-only' }, 'Actions')) : null));
    // deliveryList renders one page of deliveries and a "more" button.
    async function deliveryList(params, withRedeliver, testid, emptyMsg) {
      const tbody = h('tbody', {});
      let token = '';
      const next = async () => {
        const r = await api('/v1/deliveries', { ...params, 'page.pageSize': SIZE, 'page.pageToken': token || undefined });
        tbody.append(...(r.deliveries || []).map((d) => deliveryRow(d, withRedeliver)));
        token = (r.page && r.page.nextPageToken) || '';
        return (r.deliveries || []).length;
      };
      if (!(await next())) return h('div', { class: 'empty', 'data-testid': testid + '-empty' }, emptyMsg);
      return [h('div', { class: 'table-wrap' }, h('table', { 'data-testid': testid }, deliveryHead(withRedeliver), tbody)),
        token ? moreButton(`Show ${SIZE} more`, async () => { await next(); return token; }, testid + '-more') : null];
    }
    const destIds = (v.destinations || []).map((d) => d.destinationId);
    let logState = { destinationId: '', state: '' };
    const drawLog = (f) => {
      logState = f;
      fill(logEl, 'delivery log', async () => {
        const sel = (id, lbl, opts, value, key) => [h('label', { for: id }, lbl), h('select', { id, onchange: (e) => drawLog({ ...logState, [key]: e.target.value }) },
          opts.map(([k, l]) => h('option', { value: k, selected: k === value }, l)))];
        const list = await deliveryList({ destinationId: f.destinationId || undefined, state: f.state || undefined }, false, 'deliveries-table',
          f.destinationId || f.state ? 'No deliveries match these filters.' : 'Nothing sent yet.');
        return [h('div', { class: 'panel-head' }, h('h2', {}, 'Delivery log'), h('div', { class: 'controls' },
          sel('delivery-dest', 'Destination', [['', 'Every destination'], ...destIds.map((d) => [d, d])], f.destinationId, 'destinationId'),
          sel('delivery-state', 'State', [['', 'Any state'], ...DELIVERY_STATES.map(([, e, l]) => [e, l])], f.state, 'state'))),
        h('div', { class: 'sub', style: 'margin-bottom:8px' }, 'Every webhook and Slack message, newest first. A failed attempt is retried with backoff; one the receiver refuses, or still failing after the retry horizon, is dead.'),
        list];
      });
    };
    const drawDead = () => fill(deadEl, 'dead letters', async () => [h('h2', {}, 'Dead letters'),
      h('div', { class: 'sub', style: 'margin-bottom:8px' }, 'Deliveries that gave up, newest first. Redeliver queues one again with the same webhook-id, so a receiver that already has it can tell.'),
      await deliveryList({ state: 'DELIVERY_STATE_DEAD' }, true, 'dead-table', 'No dead deliveries.')]);
    // Without destinations there is nothing to log, unless an earlier
    // version had some: the log and dead letters show only then.
    drawDests();
    (destIds.length ? Promise.resolve(true) : api('/v1/deliveries', { 'page.pageSize': 1 }).then((r) => (r.deliveries || []).length > 0, () => true)).then((any) => {
      if (any) { drawLog(logState); drawDead(); } else { logEl.hidden = true; deadEl.hidden = true; }
    });
  }

  // accountPlays fills the account page's open tasks (with its playbook
  // runs) and the plays that fired for it.
  function accountPlays(id, tasksEl, firingsEl) {
    const infoP = playsLookups();
    fill(tasksEl, 'tasks', async () => {
      const info = await infoP;
      if (info.state !== 'active') return [h('h2', {}, 'Open tasks'), playsUnavailable(info, 'account-plays-empty')];
      await lookups().catch(() => null);
      const r = await loadAll('/v1/tasks', { accountId: id }, 'tasks', 2000);
      const now = Date.now();
      const active = r.items.filter((t) => t.state === 'TASK_STATE_OPEN' || t.state === 'TASK_STATE_SCHEDULED').sort(soonestDue);
      const runs = [...playbookRuns(r.items).values()].sort((a, b) => (b.active.length > 0) - (a.active.length > 0) || new Date(b.started) - new Date(a.started));
      const closed = r.items.length - active.length;
      const item = (t) => {
        const li = h('li', { 'data-task': t.taskId, class: isOverdue(t, now) ? 'overdue' : null });
        const draw = () => li.replaceChildren(h('div', { class: 'task-item' },
          h('div', {}, h('div', {}, h('b', {}, t.title), ' ', taskPill(t)),
            h('div', { class: 'sub' }, dueCell(t, now)),
            h('div', { class: 'when muted' }, [t.ownerId ? ownerName(t.ownerId) : roleWords(t.ownerRole), ' · ', playName(t.playId),
              t.playbookId ? ` · step ${num(t.step)}` : '']),
            h('div', { class: 'when muted' }, whyText(t.why))),
          taskActions(t, draw)));
        draw();
        return li;
      };
      const SHOW = 10;
      const ul = h('ul', { class: 'criteria tasks-list', 'data-testid': 'account-task-list' }, active.slice(0, SHOW).map(item));
      let shown = Math.min(SHOW, active.length);
      return [h('h2', {}, 'Open tasks ', h('span', { class: 'pill warn', 'data-testid': 'account-open-count' }, fmtInt(active.filter(isOpen).length) + ' open')), makeNotice(),
        active.length ? [ul, active.length > shown ? moreButton('Show more', async () => { ul.append(...active.slice(shown, shown + SHOW).map(item)); shown += SHOW; return active.length - shown; }, 'account-tasks-more') : null]
          : empty('No open or scheduled tasks for this account.'),
        runs.length ? [h('h3', { style: 'margin-top:14px' }, 'Playbooks'), runs.slice(0, 4).map((x) => runProgress(x, false)),
          runs.length > 4 ? h('div', { class: 'sub' }, `and ${runs.length - 4} earlier run${runs.length - 4 === 1 ? '' : 's'}`) : null] : null,
        closed ? h('div', { class: 'sub', style: 'margin-top:8px' }, `${fmtInt(closed)} closed task${closed === 1 ? '' : 's'} (done, skipped or expired): `, h('a', { href: '#/plays?state=all' }, 'every task, on the Plays page')) : null];
    });
    fill(firingsEl, 'firings', async () => {
      const info = await infoP;
      if (info.state !== 'active') return [h('h2', {}, 'Recent firings'), h('div', { class: 'empty' }, info.state === 'absent' ? 'Plays is not running.' : 'No plays applied.')];
      const ul = h('ul', { class: 'timeline', 'data-testid': 'account-firing-list' });
      let token = '';
      const next = async () => {
        const r = await api('/v1/plays/firings', { accountId: id, 'page.pageSize': 10, 'page.pageToken': token || undefined });
        ul.append(...(r.firings || []).map((f) => h('li', { 'data-firing': f.firingId },
          h('div', {}, h('b', {}, playName(f.playId)), ' ', f.held ? h('span', { class: 'pill muted' }, 'held') : null),
          h('div', { class: 'sub' }, cap1(humanize(f.record))),
          h('div', { class: 'when' }, fmtStamp(f.at) + ' · ', f.held ? heldText(f.held) : firingResult(f)))));
        token = (r.page && r.page.nextPageToken) || '';
        return (r.firings || []).length;
      };
      const n = await next();
      return [h('h2', {}, 'Recent firings'), n ? [ul, token ? moreButton('Show more', async () => { await next(); return token; }, 'account-firings-more') : null]
        : empty('No play has fired for this account.')];
    });
  }

  // ---- council KPIs (GET /v1/dashboard/kpis; definitions in docs/kpis.md)
  const KPI_UNITS = { ratio: (v) => (num(v) * 100).toFixed(1) + '%', days: (v) => num(v).toFixed(1) + ' days', hours: (v) => num(v).toFixed(1) + ' h',
    features: (v) => num(v).toFixed(1) + ' features' };
  const fmtArr = (v) => num(v) ? fmtMoney(v) : '$0';
  const fmtPart = (p) => p.unit === 'arr' ? fmtArr(p.value) : fmtInt(p.value);
  const fmtFigure = (f) => f.unit === 'arr' ? fmtArr(f.value) : KPI_UNITS[f.unit] ? KPI_UNITS[f.unit](f.value) : fmtInt(f.value) + (f.unit === 'accounts' ? (num(f.value) === 1 ? ' account' : ' accounts') : '');
  async function councilPage(params) {
    const f = { from: params.get('from') || '', to: params.get('to') || '', segment: params.get('segment') || '' };
    const head = h('div', { class: 'page-head' }, h('div', {}, h('h1', {}, 'Council KPIs'),
      h('div', { class: 'sub', 'data-testid': 'kpis-sub' }, 'Activation, time to value, adoption, revenue retention, renewals and speed to contact')));
    const controls = h('form', { class: 'controls filters', 'aria-label': 'Period and segment', onsubmit: (e) => {
      e.preventDefault();
      const v = (id) => e.target.querySelector('#' + id).value;
      go('council', { from: v('kpi-from'), to: v('kpi-to'), segment: v('kpi-segment') });
    } });
    const body = h('div', { class: 'kpi-grid', 'data-testid': 'kpi-cards' });
    view.replaceChildren(head, h('section', { class: 'panel' }, controls), body);
    await fill(body, 'KPIs', async () => {
      const rep = await api('/v1/dashboard/kpis', f);
      const day = (t, back) => new Date(new Date(t).getTime() - (back ? 86400e3 : 0)).toISOString().slice(0, 10);
      const from = day(rep.from), to = day(rep.to, true);
      controls.replaceChildren(
        h('label', { for: 'kpi-from' }, 'From'), h('input', { id: 'kpi-from', type: 'date', value: from, required: true }),
        h('label', { for: 'kpi-to' }, 'To'), h('input', { id: 'kpi-to', type: 'date', value: to, required: true }),
        h('label', { for: 'kpi-segment' }, 'Segment'), h('select', { id: 'kpi-segment', 'data-testid': 'kpi-segment' },
          [['', 'All segments'], ...(rep.segments || []).map((x) => [x, label(x)])].map(([v, t]) => h('option', { value: v, selected: v === (rep.segment || '') }, t))),
        h('button', { type: 'submit' }, 'Show'));
      const utcDay = (t) => new Date(t).toLocaleDateString('en-US', { year: 'numeric', month: 'short', day: 'numeric', timeZone: 'UTC' });
      head.querySelector('[data-testid=kpis-sub]').textContent = `${utcDay(rep.from)} – ${utcDay(to)}` +
        (rep.segment ? ` · segment ${label(rep.segment)}` : ' · all segments') + ` · as of ${fmtStamp(rep.asOf)}. Every count opens the accounts it counts.`;
      return (rep.kpis || []).map((k) => {
        const list = h('div', { class: 'kpi-accounts', 'data-testid': 'kpi-accounts', hidden: true, tabindex: '0', role: 'region', 'aria-label': k.name + ': accounts counted' });
        const part = (p, which) => {
          const btn = h('button', { type: 'button', class: 'small link', 'aria-expanded': 'false', 'data-testid': 'kpi-' + which,
            'aria-label': `${fmtPart(p)} ${p.label}: show the ${(p.accounts || []).length} accounts` }, fmtPart(p) + ' ' + p.label);
          btn.addEventListener('click', () => {
            const open = btn.getAttribute('aria-expanded') !== 'true';
            body.querySelectorAll(`[data-kpi="${k.id}"] [aria-expanded]`).forEach((b) => b.setAttribute('aria-expanded', 'false'));
            btn.setAttribute('aria-expanded', String(open));
            list.hidden = !open;
            const accts = p.accounts || [];
            list.replaceChildren(h('div', { class: 'sub' }, `${cap1(p.label)}: ${fmtInt(accts.length)} account${accts.length === 1 ? '' : 's'}`),
              accts.length ? h('ul', { class: 'plain' }, accts.map((a) => h('li', {}, h('a', { href: '#/account/' + encodeURIComponent(a.id), 'data-account': a.id }, a.name || a.id))))
                : empty('No accounts.'));
          });
          return btn;
        };
        const has = k.value !== undefined && k.value !== null;
        return h('section', { class: 'panel kpi-card', 'data-kpi': k.id, 'aria-labelledby': 'kpi-h-' + k.id },
          h('h2', { id: 'kpi-h-' + k.id }, k.name),
          h('div', { class: 'kpi-value', 'data-testid': 'kpi-value' }, has ? KPI_UNITS[k.unit](k.value) : '—'),
          h('div', { class: 'sub' }, has ? (k.period ? 'Over ' + k.period : 'Over the period') : 'Nothing to measure: ' + k.denominator.label + ' is 0 in this period.'),
          h('div', { class: 'kpi-parts' }, part(k.numerator, 'numerator'), h('span', { 'aria-hidden': 'true' }, ' of '), part(k.denominator, 'denominator')),
          (k.figures || []).length ? h('div', { class: 'sub kpi-figures' }, k.figures.map((x) => `${x.label}: ${fmtFigure(x)}`).join(' · ')) : null,
          list,
          h('details', { class: 'kpi-def', 'data-testid': 'kpi-definition' }, h('summary', {}, 'Definition'), h('p', {}, k.definition)));
      });
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
      case 'portfolio': portfolioPage(params); break;
      case 'routing': routingPage(params); break;
      case 'plays': playsPage(params); break;
      case 'council': councilPage(params); break;
      default: journeyPage(params);
    }
    window.scrollTo(0, 0);
  }

  document.getElementById('key-form').addEventListener('submit', () => {
    const v = document.getElementById('key-input').value.trim();
    const w = document.getElementById('write-key-input').value.trim();
    if (v) localStorage.setItem(KEY_STORE, v);
    if (w) localStorage.setItem(WRITE_STORE, w);
    if (v || w) route();
  });
  document.getElementById('key-forget').addEventListener('click', () => {
    localStorage.removeItem(KEY_STORE);
    localStorage.removeItem(WRITE_STORE);
    document.getElementById('key-dialog').close();
    route();
  });
  document.getElementById('key-button').addEventListener('click', askKey);
  document.getElementById('search').addEventListener('submit', (e) => {
    e.preventDefault();
    const v = document.getElementById('search-input').value.trim();
    if (v) search(v);
  });
  // search opens the account whose id or name is v, or the one account
  // whose id or name contains it; otherwise it lists the matches (or says
  // that none matches).
  async function search(v) {
    let rows = [], failed = false;
    try { rows = (await accountRows({ status: 'all', q: v, 'page.pageSize': 1000 })).rows || []; } catch (e) { failed = true; /* fall back to the id */ }
    const q = v.toLowerCase();
    const exact = rows.filter((r) => r.accountId.toLowerCase() === q || (r.name || '').toLowerCase() === q);
    const partial = rows.filter((r) => matches(r, { status: 'all', q: v }, Date.now()));
    const one = exact.length === 1 ? exact[0] : partial.length === 1 ? partial[0] : null;
    if (one) go('account/' + encodeURIComponent(one.accountId));
    else if (failed) go('account/' + encodeURIComponent(v));
    else go('accounts', { status: 'all', q: v });
  }
  window.addEventListener('hashchange', route);
  // The banner under the top bar says when the numbers may not be final.
  // The gateway's /readyz says whether every service can answer truthfully
  // (ADR 0016); while one cannot, figures may be stale or moving. A service
  // that is ready may still be working through a backlog (after `make run`,
  // an import, an outage): /v1/dashboard/status counts the records the
  // services have still to process, and while there are some the banner
  // says how many. Polled every few seconds; hidden once caught up.
  const POLL_MS = 5000;
  const banner = document.getElementById('processing');
  let bannerState = '';
  // showBanner sets what the banner says: its state (a sentence, announced
  // by the role=status region when it changes) and a count updated in
  // place, outside the announcement, so a screen reader is not told every
  // few seconds that a number moved.
  function showBanner(state, before, count, after) {
    if (!state) {
      banner.hidden = true;
      banner.removeAttribute('title');
      banner.replaceChildren();
      bannerState = '';
      return;
    }
    banner.hidden = false;
    if (state === bannerState) {
      const el = banner.querySelector('[data-testid=processing-count]');
      if (el && count !== undefined) el.textContent = count;
      return;
    }
    bannerState = state;
    banner.removeAttribute('title');
    banner.replaceChildren(before, count === undefined ? '' : h('strong', { 'data-testid': 'processing-count', 'aria-live': 'off' }, count), after || '');
  }
  async function backlog() {
    if (!apiKey()) return null;
    // A plain fetch, not api(): a refused key must not open the key dialog
    // (nor a success close it) behind the page's back.
    const resp = await fetch('/v1/dashboard/status', { headers: { Authorization: 'Bearer ' + apiKey(), Accept: 'application/json' } });
    if (!resp.ok) return null;
    return resp.json();
  }
  let polling = false; // one poll at a time, however slow the answers
  async function processing() {
    if (document.hidden || polling) return; // polled again when the tab is shown
    polling = true;
    try {
      const resp = await fetch('/readyz', { headers: { Accept: 'application/json' } });
      const body = await resp.json().catch(() => ({}));
      if (!resp.ok) {
        const waiting = Object.entries(body.upstreams || {}).filter(([, v]) => v !== 'SERVING').map(([k]) => k).sort();
        const text = 'Processing: ' + (waiting.length ? waiting.join(', ') + (waiting.length > 1 ? ' are' : ' is') : 'some services are') +
          ' still catching up or cannot reach an upstream service, so figures may change.';
        showBanner('ready:' + text, text);
        return;
      }
      const st = await backlog().catch(() => null);
      // A service that cannot write (a full disk) comes first: its figures
      // stop moving although events keep arriving.
      const troubled = ((st && st.services) || []).filter((x) => x.storage);
      if (troubled.length) {
        const text = 'Storage: ' + troubled.map((x) => x.service + ': ' + x.storage).join('; ') + '. New data cannot be saved until space is freed.';
        showBanner('storage:' + text, text);
        return;
      }
      // Each record behind is counted once, however many services have
      // still to read it: events (what was sent to Cairn) and updates (stage
      // changes, scores, signals and handoffs the services pass on).
      const behind = st ? num(st.behind) : 0;
      if (behind > 0) {
        const events = st.events === undefined ? behind : num(st.events), updates = st.events === undefined ? 0 : num(st.updates);
        const which = (st.services || []).filter((x) => num(x.behind) > 0).map((x) => x.service);
        const count = [events ? fmtInt(events) + (events === 1 ? ' event' : ' events') : '', updates ? fmtInt(updates) + (updates === 1 ? ' update' : ' updates') : ''].filter(Boolean).join(' and ') + ' behind';
        showBanner('behind:' + which.join(','), 'Processing: ', count,
          ' — numbers are still moving' + (which.length ? ' (' + which.join(', ') + ')' : '') + '.');
        banner.title = 'Events: what was sent to Cairn. Updates: the stage changes, scores, signals and handoffs the services pass on to each other. Each is counted once, however many services still have to read it.';
        return;
      }
      showBanner('');
    } catch (e) {
      showBanner('down', 'Cannot reach the gateway; figures may be out of date.');
    } finally {
      polling = false;
    }
  }
  processing();
  setInterval(processing, POLL_MS);
  document.addEventListener('visibilitychange', () => { if (!document.hidden) processing(); });
  route();
})();
