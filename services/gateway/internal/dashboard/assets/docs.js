// Renders /openapi.json (Swagger 2.0) as a browsable reference without any
// third-party code: operations grouped by service, with parameters and
// request/response schemas expanded from the definitions.
'use strict';

(function () {
  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) el.setAttribute(k, v);
    for (const k of kids.flat(Infinity)) if (k !== undefined && k !== null && k !== false) el.appendChild(k instanceof Node ? k : document.createTextNode(String(k)));
    return el;
  }
  let defs = {};
  const refName = (ref) => ref.replace('#/definitions/', '');
  // sketch renders a schema as a JSON-like outline, two levels of nesting deep.
  function sketch(schema, depth, seen) {
    if (!schema) return 'any';
    if (schema.$ref) {
      const name = refName(schema.$ref);
      if (seen.has(name) || depth > 2) return name;
      return sketch(defs[name], depth, new Set([...seen, name]));
    }
    if (schema.type === 'array') return '[' + sketch(schema.items, depth, seen) + ']';
    if (schema.type === 'object' || schema.properties) {
      const props = Object.entries(schema.properties || {});
      if (!props.length) return schema.additionalProperties ? '{string: ' + sketch(schema.additionalProperties, depth + 1, seen) + '}' : '{}';
      const pad = '  '.repeat(depth + 1);
      return '{\n' + props.map(([k, v]) => pad + k + ': ' + sketch(v, depth + 1, seen) + (v.title || v.description ? '  // ' + String(v.title || v.description).split('\n')[0] : '')).join(',\n') + '\n' + '  '.repeat(depth) + '}';
    }
    if (schema.enum) return schema.enum.join(' | ');
    return schema.format ? schema.type + ' (' + schema.format + ')' : schema.type || 'any';
  }
  function operation(path, method, op) {
    const params = op.parameters || [];
    const bodyParam = params.find((p) => p.in === 'body');
    const other = params.filter((p) => p.in !== 'body');
    const ok = (op.responses || {})['200'];
    return h('details', { class: 'op', 'data-path': path },
      h('summary', {}, h('span', { class: 'method ' + method }, method.toUpperCase()), h('span', { class: 'path' }, path), h('span', { class: 'summary' }, op.summary || op.operationId || '')),
      h('div', { class: 'body' },
        op.description ? h('p', {}, op.description) : null,
        other.length ? h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'Parameter'), h('th', {}, 'In'), h('th', {}, 'Type'), h('th', {}, 'Description'))),
          h('tbody', {}, other.map((p) => h('tr', {}, h('td', {}, h('code', {}, p.name), p.required ? ' *' : ''), h('td', {}, p.in),
            h('td', {}, p.type === 'array' ? '[' + ((p.items && p.items.type) || '') + ']' : (p.enum ? p.enum.join(' | ') : p.format || p.type || '')), h('td', {}, p.description || ''))))) : null,
        bodyParam ? [h('h3', {}, 'Request body'), h('div', { class: 'schema' }, sketch(bodyParam.schema, 0, new Set()))] : null,
        ok ? [h('h3', {}, 'Response 200'), h('div', { class: 'schema' }, sketch(ok.schema, 0, new Set()))] : null));
  }
  async function main() {
    const ops = document.getElementById('ops');
    let doc;
    try {
      const r = await fetch('/openapi.json');
      if (!r.ok) throw new Error('HTTP ' + r.status);
      doc = await r.json();
    } catch (e) {
      ops.replaceChildren(h('div', { class: 'error' }, 'Could not load /openapi.json: ' + e.message));
      return;
    }
    defs = doc.definitions || {};
    const groups = new Map();
    let count = 0;
    for (const [path, item] of Object.entries(doc.paths || {})) {
      for (const [method, op] of Object.entries(item)) {
        if (!['get', 'post', 'put', 'patch', 'delete'].includes(method)) continue;
        const tag = (op.tags && op.tags[0]) || 'Other';
        if (!groups.has(tag)) groups.set(tag, []);
        groups.get(tag).push(operation(path, method, op));
        count++;
      }
    }
    document.getElementById('summary').textContent = `${count} operations in ${groups.size} services · Swagger ${doc.swagger || ''}`;
    ops.replaceChildren(...[...groups.entries()].map(([tag, list]) => h('section', { class: 'panel tag-group' }, h('h2', {}, tag), list)));
    document.getElementById('filter').addEventListener('input', (e) => {
      const q = e.target.value.toLowerCase();
      document.querySelectorAll('.op').forEach((el) => { el.style.display = el.textContent.toLowerCase().includes(q) ? '' : 'none'; });
    });
  }
  document.querySelector('form.search').addEventListener('submit', (e) => e.preventDefault());
  main();
})();
