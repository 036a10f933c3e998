// wharf's dashboard: one page, no dependencies, every byte served by wharf itself. This file
// holds the helpers, the API, the login, Apps and App pages and the routing; draw.js and
// pages.js, loaded before it, hold the drawing and the other pages.
//
// The token lives in sessionStorage and travels only as a Bearer header. Lists and details
// follow `GET /api/v1/watch` (server-sent events read with fetch, since EventSource cannot send
// the header). Charts are SVG drawn here from the stats API.
'use strict';

const API = '/api/v1';
const TOKEN_KEY = 'wharf.token';
const ROLES = ['agent', 'viewer', 'editor', 'admin'];

const session = { who: null, info: null };
let page = null; // { abort: AbortController } of the page on screen

// ---------- small helpers ----------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    // Through the CSSOM: the policy refuses style attributes, not style properties.
    else if (k === 'style') el.style.cssText = v;
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const SVG = 'http://www.w3.org/2000/svg';
function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

const enc = encodeURIComponent;
const token = () => sessionStorage.getItem(TOKEN_KEY);

function bytes(n) {
  if (n === undefined || n === null || Number.isNaN(n)) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = Number(n);
  while (Math.abs(v) >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
  return `${v.toFixed(v >= 100 || i === 0 ? 0 : 1)} ${units[i]}`;
}
const pct = (n) => (n === undefined || n === null ? '–' : `${Number(n).toFixed(1)} %`);
function when(t) {
  if (!t) return '–';
  const d = typeof t === 'number' ? new Date(t) : new Date(t);
  return Number.isNaN(d.getTime()) ? String(t) : d.toLocaleString();
}
function duration(secs) {
  secs = Math.round(secs);
  if (secs < 60) return `${secs}s`;
  if (secs < 3600) return `${Math.floor(secs / 60)}m${secs % 60 ? ` ${secs % 60}s` : ''}`;
  if (secs < 86400) return `${Math.floor(secs / 3600)}h ${Math.floor((secs % 3600) / 60)}m`;
  return `${Math.floor(secs / 86400)}d ${Math.floor((secs % 86400) / 3600)}h`;
}
const percentLabel = (v) => `${v < 10 ? v.toFixed(1) : v.toFixed(0)}%`;
const phase = (p) => h('span', { class: `phase phase-${p || 'Pending'}` }, p || 'Pending');

// ---------- the API ----------

class ApiError extends Error {
  constructor(status, reason, message) {
    super(message);
    this.status = status;
    this.reason = reason;
  }
  toString() { return `${this.reason} (${this.status}): ${this.message}`; }
}

async function failure(r) {
  const text = await r.text();
  try {
    const body = JSON.parse(text);
    if (body && body.message) {
      const details = body.details ? `\n${JSON.stringify(body.details, null, 2)}` : '';
      return new ApiError(r.status, body.reason || r.statusText, body.message + details);
    }
  } catch (_) { /* not the error shape */ }
  return new ApiError(r.status, r.statusText, text || r.statusText);
}

async function call(method, path, opts = {}) {
  const headers = { Authorization: `Bearer ${token()}` };
  if (opts.type) headers['Content-Type'] = opts.type;
  const r = await fetch(API + path, { method, headers, body: opts.body, signal: opts.signal });
  if (r.status === 401) {
    const e = await failure(r);
    if (!opts.login) logout(`Your token was refused: ${e.message}`);
    throw e;
  }
  if (!r.ok) throw await failure(r);
  if (opts.raw) return r;
  const type = r.headers.get('content-type') || '';
  return type.includes('json') ? r.json() : r.text();
}
const get = (path, signal) => call('GET', path, { signal });

// Follows `GET /api/v1/watch`: every event goes to `on(type, data)`; reconnects with backoff
// until the page goes away.
async function watch(kind, namespace, on, signal) {
  let delay = 500;
  let failed = false;
  while (!signal.aborted) {
    try {
      const q = `kind=${kind}${namespace ? `&namespace=${enc(namespace)}` : ''}`;
      const r = await call('GET', `/watch?${q}`, { raw: true, signal });
      delay = 500;
      const reader = r.body.getReader();
      const decoder = new TextDecoder();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, cut);
          buf = buf.slice(cut + 2);
          let type = 'message';
          let data = '';
          for (const line of block.split('\n')) {
            if (line.startsWith('event:')) type = line.slice(6).trim();
            else if (line.startsWith('data:')) data += line.slice(5).trim();
          }
          if (!data) continue;
          const parsed = JSON.parse(data);
          if (type === 'ERROR') {
            // The token was revoked or expired: the stream ends and so does the session.
            if (parsed.error?.code === 401) { logout(`Your token was refused: ${parsed.error.message}`); return; }
            notice(`Could not refresh this list: ${parsed.error?.message}; retrying.`);
            failed = true;
            continue;
          }
          if (failed) { notice(''); failed = false; }
          on(type, parsed);
        }
      }
    } catch (e) {
      if (signal.aborted) return;
      if (e instanceof ApiError && e.status !== 503) { on('FAILED', e); return; }
    }
    on('RECONNECTING', null);
    await new Promise((ok) => setTimeout(ok, delay));
    delay = Math.min(delay * 2, 10000);
  }
}

// ---------- roles ----------

function can(role, namespace) {
  const need = ROLES.indexOf(role);
  return (session.who?.grants || []).some((g) => ROLES.indexOf(g.role) >= need
    && (g.namespace === '*' || namespace === undefined || g.namespace === namespace));
}
// A role on every namespace (`*`): what the host, sources, nodes and audit pages need.
const everywhere = (role) => (session.who?.grants || []).some((g) => g.namespace === '*'
  && ROLES.indexOf(g.role) >= ROLES.indexOf(role));
const isAdmin = () => (session.who?.grants || []).some((g) => g.role === 'admin' && g.namespace === '*');

// ---------- chrome ----------

function notice(text) {
  const el = document.getElementById('notice');
  el.textContent = text || '';
  el.hidden = !text;
}

function logout(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  session.who = null;
  session.info = null;
  document.getElementById('nav').hidden = true;
  document.getElementById('who').hidden = true;
  location.hash = '#/login';
  render().then(() => { if (message) showLoginError(message); });
}

function confirmAction(text) {
  const dialog = document.getElementById('confirm');
  document.getElementById('confirm-text').textContent = text;
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true });
    dialog.returnValue = 'cancel';
    dialog.showModal();
    document.getElementById('confirm-ok').focus();
  });
}

function errorBox(e) {
  return h('div', { class: 'error', role: 'alert' }, e instanceof ApiError ? e.toString() : String(e));
}

// Runs `work`, showing its failure in `place` (the API's error as it is).
async function act(place, work) {
  place.replaceChildren();
  try {
    await work();
  } catch (e) {
    place.replaceChildren(errorBox(e));
  }
}

// Sortable table: `columns` are { key, label, value(item) -> sortable, cell(item) -> node, num }.
function sortable(columns, rows, sort, onSort) {
  const col = columns.find((c) => c.key === sort.key) || columns[0];
  const sorted = [...rows].sort((a, b) => {
    const x = col.value(a);
    const y = col.value(b);
    const order = x < y ? -1 : x > y ? 1 : 0;
    return sort.desc ? -order : order;
  });
  const head = h('tr', null, columns.map((c) => h('th', {
    scope: 'col',
    class: [c.num ? 'num' : '', c.narrow ? 'hide-narrow' : ''].join(' '),
    'aria-sort': c.key === col.key ? (sort.desc ? 'descending' : 'ascending') : 'none',
  }, h('button', {
    type: 'button',
    onclick: () => onSort({ key: c.key, desc: c.key === col.key ? !sort.desc : false }),
  }, c.label))));
  const body = sorted.map((r) => h('tr', null, columns.map((c) => h('td', {
    class: [c.num ? 'num' : '', c.narrow ? 'hide-narrow' : ''].join(' '),
  }, c.cell(r)))));
  return h('div', { class: 'table-wrap' }, h('table', null, h('thead', null, head), h('tbody', null, body)));
}

// ---------- pages ----------

function showLoginError(text) {
  const place = document.getElementById('login-error');
  if (place) place.replaceChildren(h('div', { class: 'error', role: 'alert' }, text));
}

async function loginPage(main) {
  const input = h('input', { id: 'token', type: 'password', autocomplete: 'off', required: true });
  const form = h('form', {
    onsubmit: async (e) => {
      e.preventDefault();
      sessionStorage.setItem(TOKEN_KEY, input.value.trim());
      // Another token may have been in use in this tab: its roles go with it.
      session.who = null;
      session.info = null;
      try {
        await call('GET', '/whoami', { login: true });
        location.hash = '#/apps';
      } catch (err) {
        sessionStorage.removeItem(TOKEN_KEY);
        showLoginError(err.status === 401
          ? `That token was refused: ${err.message}`
          : `wharf did not answer: ${err}`);
      }
    },
  }, h('label', { for: 'token' }, 'API token', input),
  h('button', { type: 'submit', class: 'primary', id: 'login' }, 'Log in'),
  h('p', { class: 'muted' }, 'The token stays in this tab (sessionStorage) and is sent only as an Authorization header to this server.'));
  main.append(h('section', { class: 'card login' }, h('h1', null, 'Log in to wharf'), form,
    h('div', { id: 'login-error' })));
  input.focus();
}

// The editor of an App document: edit → dry-run diff → apply, each answer shown as it is.
function specEditor(text, id, applied) {
  const area = h('textarea', { id: `${id}-text`, 'aria-label': 'App document (YAML)', spellcheck: 'false' }, text);
  const out = h('div', { id: `${id}-result` });
  const applyButton = h('button', { type: 'button', class: 'primary', id: `${id}-apply`, disabled: true, onclick: () => act(out, async () => {
    const res = await call('POST', '/apply', { type: 'application/yaml', body: area.value });
    out.replaceChildren(h('p', { role: 'status' }, `Applied: ${res.items.map((i) => `${i.kind} ${i.namespace}/${i.name} ${i.result}`).join(', ')}`));
    applyButton.disabled = true;
    if (applied) applied(res);
  }) }, 'Apply');
  const preview = h('button', { type: 'button', id: `${id}-preview`, onclick: () => act(out, async () => {
    const res = await call('POST', '/apply?dryRun=true', { type: 'application/yaml', body: area.value });
    out.replaceChildren(...res.items.map((i) => h('div', null, h('p', null, `${i.kind} ${i.namespace}/${i.name}: ${i.result} (dry run)`),
      i.diff ? h('pre', { class: 'diff' }, i.diff.split('\n').map((l) => h('span', {
        class: l.startsWith('+') ? 'diff-add' : l.startsWith('-') ? 'diff-del' : '',
      }, `${l}\n`))) : null)));
    applyButton.disabled = false;
  }) }, 'Preview (dry run)');
  area.addEventListener('input', () => { applyButton.disabled = true; });
  return h('div', null, area, h('div', { class: 'actions' }, preview, applyButton), out);
}

const NEW_APP = `apiVersion: wharf/v1
kind: App
metadata:
  name: web
  namespace: default
spec:
  image: nginx:1.27
  ports:
    - "8080:80"
  resources:
    memory: 256Mi
`;

async function appsPage(main, signal) {
  const items = new Map();
  const avail = new Map();
  const view = { ns: '', labels: '', text: '', sort: { key: 'name', desc: false } };
  const place = h('div', { id: 'apps-table' }, h('p', { class: 'muted' }, 'Loading…'));
  const status = h('p', { class: 'muted', role: 'status' });
  const nsSelect = h('select', { id: 'ns', onchange: () => { view.ns = nsSelect.value; draw(); } },
    h('option', { value: '' }, 'all namespaces'));
  const labelInput = h('input', { id: 'labels', placeholder: 'team=web,tier', oninput: () => { view.labels = labelInput.value; draw(); } });
  const textInput = h('input', { id: 'filter', type: 'search', placeholder: 'name, image, owner', oninput: () => { view.text = textInput.value.toLowerCase(); draw(); } });
  const creator = h('div', { id: 'new-app' });
  const newButton = h('button', { type: 'button', id: 'new-app-open', disabled: !can('editor'), onclick: () => {
    creator.replaceChildren(h('h2', null, 'New app'), specEditor(NEW_APP, 'new-app'));
    newButton.hidden = true;
    creator.querySelector('textarea').focus();
  } }, 'New app');
  main.append(h('h1', null, 'Apps'), h('div', { class: 'actions' }, newButton), creator,
    h('div', { class: 'filters' },
      h('label', { for: 'ns' }, 'Namespace', nsSelect),
      h('label', { for: 'labels' }, 'Labels', labelInput),
      h('label', { for: 'filter' }, 'Filter', textInput)),
    status, place);

  const labelMatch = (labels) => view.labels.split(',').map((x) => x.trim()).filter(Boolean).every((want) => {
    const [k, v] = want.split('=').map((x) => x.trim());
    return v === undefined ? k in (labels || {}) : (labels || {})[k] === v;
  });
  const swarm = session.info?.mode === 'swarm';
  const columns = [
    { key: 'name', label: 'Name', value: (a) => a.metadata.name,
      cell: (a) => h('a', { href: `#/apps/${enc(a.metadata.namespace)}/${enc(a.metadata.name)}` }, a.metadata.name) },
    { key: 'ns', label: 'Namespace', value: (a) => a.metadata.namespace, cell: (a) => a.metadata.namespace },
    { key: 'owner', label: 'Owner', narrow: true, value: (a) => a.spec.owner || '', cell: (a) => a.spec.owner || '–' },
    { key: 'image', label: 'Image', narrow: true, value: (a) => a.spec.image, cell: (a) => a.spec.image },
    { key: 'phase', label: 'Phase', value: (a) => a.status?.phase || 'Pending', cell: (a) => phase(a.status?.phase) },
    { key: 'ready', label: 'Ready', value: (a) => ready(a), cell: (a) => (ready(a) ? 'yes' : 'no') },
    { key: 'cpu', label: 'CPU', num: true, value: (a) => a.status?.cpuPercent ?? -1, cell: (a) => pct(a.status?.cpuPercent) },
    { key: 'mem', label: 'Memory', value: (a) => a.status?.memUsage ?? -1, cell: (a) => memCell(a.status) },
    { key: 'avail', label: 'Today', num: true, narrow: true, value: (a) => avail.get(a.metadata.uid) ?? -1,
      cell: (a) => (avail.has(a.metadata.uid) ? pct(avail.get(a.metadata.uid)) : '–') },
    { key: 'restarts', label: 'Restarts', num: true, narrow: true, value: (a) => a.status?.restartCount ?? 0, cell: (a) => a.status?.restartCount ?? 0 },
  ];
  if (swarm) {
    columns.push(
      { key: 'replicas', label: 'Replicas', num: true, value: (a) => a.status?.replicas?.running ?? 0,
        cell: (a) => (a.status?.replicas ? `${a.status.replicas.running}/${a.status.replicas.desired}` : '–') },
      { key: 'nodes', label: 'Nodes', narrow: true, value: (a) => nodesOf(a), cell: (a) => nodesOf(a) || '–' },
    );
  }
  let first = true;
  let scheduled = false;
  function draw() {
    if (scheduled) return;
    scheduled = true;
    requestAnimationFrame(() => {
      scheduled = false;
      const namespaces = [...new Set([...items.values()].map((a) => a.metadata.namespace))].sort();
      const have = [...nsSelect.options].map((o) => o.value);
      for (const ns of namespaces) if (!have.includes(ns)) nsSelect.append(h('option', { value: ns }, ns));
      const rows = [...items.values()].filter((a) => (!view.ns || a.metadata.namespace === view.ns)
        && labelMatch(a.metadata.labels)
        && (!view.text || [a.metadata.name, a.spec.image, a.spec.owner || '', a.metadata.namespace]
          .some((x) => x.toLowerCase().includes(view.text))));
      place.replaceChildren(rows.length ? sortable(columns, rows, view.sort, (sort) => { view.sort = sort; draw(); })
        : h('p', { class: 'muted' }, items.size ? 'No app matches the filters.' : 'No apps yet.'));
      if (first) {
        first = false;
        document.body.dataset.appsRendered = String(Math.round(performance.now()));
      }
    });
  }
  let synced = false;
  watch('apps', '', (type, data) => {
    if (type === 'ADDED' || type === 'MODIFIED') items.set(data.object.metadata.uid, data.object);
    else if (type === 'DELETED') items.delete(data.object.metadata.uid);
    else if (type === 'SYNCED') { synced = true; status.textContent = ''; loadAvailability(); }
    else if (type === 'RECONNECTING') status.textContent = 'Connection lost; reconnecting…';
    else if (type === 'FAILED') { place.replaceChildren(errorBox(data)); return; }
    if (synced) draw();
  }, signal);

  async function loadAvailability() {
    const queue = [...items.values()];
    const worker = async () => {
      while (queue.length && !signal.aborted) {
        const a = queue.shift();
        try {
          const u = await get(`/namespaces/${enc(a.metadata.namespace)}/apps/${enc(a.metadata.name)}/uptime?duration=day`, signal);
          avail.set(a.metadata.uid, u.availabilityPercent);
        } catch (_) { /* shown as – */ }
      }
      draw();
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
  }
  const timer = setInterval(loadAvailability, 60000);
  signal.addEventListener('abort', () => clearInterval(timer));
}

const ready = (a) => (a.status?.conditions || []).some((c) => c.type === 'Ready' && c.status === 'True');
const nodesOf = (a) => [...new Set((a.status?.tasks || []).map((t) => t.node).filter(Boolean))].join(', ');
function memCell(st) {
  if (!st || st.memUsage === undefined) return '–';
  const limit = st.memLimit || 0;
  const text = limit ? `${bytes(st.memUsage)} / ${bytes(limit)}` : bytes(st.memUsage);
  return h('div', null, text, limit ? h('div', { class: 'bar', title: text },
    h('span', { style: `width:${Math.min(100, (100 * st.memUsage) / limit).toFixed(1)}%` })) : null);
}

const RANGES = { '1h': 3600, '6h': 6 * 3600, '24h': 86400, '7d': 7 * 86400 };
const UPTIMES = ['hour', 'day', 'week', 'month'];

function segmented(name, options, current, pick) {
  return h('div', { class: 'segmented', role: 'group', 'aria-label': name }, options.map((o) => h('button', {
    type: 'button', 'aria-pressed': String(o === current), onclick: () => pick(o),
  }, o)));
}

async function appPage(main, signal, ns, name) {
  const base = `/namespaces/${enc(ns)}/apps/${enc(name)}`;
  const head = h('div');
  const actionsError = h('div', { id: 'action-error' });
  const conditions = h('div');
  const charts = h('div', { class: 'grid', id: 'charts' });
  const uptime = h('div', { id: 'uptime' });
  const events = h('div', { id: 'events' });
  const logs = h('pre', { id: 'logs', tabindex: '0', 'aria-label': 'log' });
  const spec = h('div', { id: 'spec' });
  let range = '1h';
  let upRange = 'day';
  let app = null;
  let statsEvery = 10000;

  const editor = can('editor', ns);
  const patchState = (state) => call('PATCH', base, {
    type: 'application/merge-patch+json', body: JSON.stringify({ spec: { state } }),
  });
  const ACTIONS = [
    ['Start', () => patchState('running'), false],
    ['Stop', () => patchState('stopped'), true],
    ['Pause', () => patchState('paused'), true],
    ['Unpause', () => patchState('running'), false],
    ['Restart', () => call('POST', `${base}/restart`), true],
    ['Kill', () => call('POST', `${base}/kill`), true],
    ['Hard reset', () => call('POST', `${base}/hard-reset`), true],
  ];
  const actionBar = h('div', { class: 'actions', role: 'group', 'aria-label': 'Actions' },
    editor ? ACTIONS.map(([label, run, ask]) => h('button', {
      type: 'button', 'data-action': label.toLowerCase().replace(' ', '-'),
      onclick: async () => {
        if (ask && !(await confirmAction(`${label} ${ns}/${name}?`))) return;
        await act(actionsError, async () => { await run(); notice(`${label}: done.`); });
      },
    }, label)) : h('span', { class: 'muted' }, 'Your token may only view this namespace.'));

  main.append(h('p', null, h('a', { href: '#/apps' }, '← Apps')), head, actionBar, actionsError,
    h('h2', null, 'Conditions'), conditions,
    h('h2', null, 'Usage'), segmented('Window', Object.keys(RANGES), range, (r) => { range = r; drawCharts(); }), charts,
    h('h2', null, 'Availability'), segmented('Uptime window', UPTIMES, upRange, (r) => { upRange = r; drawUptime(); }), uptime,
    h('h2', null, 'Events'), events,
    h('h2', null, 'Logs'), logControls(), logs,
    h('h2', null, 'Spec'), spec);

  function drawHead() {
    const st = app.status || {};
    const file = app.metadata.source && app.metadata.source !== 'api' ? app.metadata.source : null;
    head.replaceChildren(h('div', null, h('h1', null, `${ns}/${name} `, phase(st.phase)),
      h('p', null, `Image ${app.spec.image} · `, ready(app) ? 'Ready' : 'not Ready',
        ` · restarts ${st.restartCount ?? 0} · CPU ${pct(st.cpuPercent)} · memory `, memCell(st)),
      st.message ? h('p', { class: 'muted' }, st.message) : null,
      file ? h('p', { class: 'muted' }, `Owned by ${file}: change it in that file.`) : null));
    conditions.replaceChildren(h('table', null, h('thead', null, h('tr', null,
      ['Type', 'Status', 'Reason', 'Message', 'Since'].map((x) => h('th', { scope: 'col' }, x)))),
    h('tbody', null, (st.conditions || []).map((c) => h('tr', null, h('td', null, c.type), h('td', null, c.status),
      h('td', null, c.reason || ''), h('td', null, c.message || ''), h('td', null, when(c.lastTransitionTime)))))));
  }

  async function drawCharts() {
    const now = Date.now();
    const since = now - RANGES[range] * 1000;
    try {
      const st = await get(`${base}/stats?since=${Math.floor(since / 1000)}`, signal);
      statsEvery = Math.max(2, st.intervalSeconds || 10) * 1000;
      const p = (k) => st.items.map((x) => [x.t, x[k]]);
      charts.replaceChildren(
        chart('CPU', [{ label: 'cpu %', points: p('cpuPercent') }], { since, until: now, unit: percentLabel }),
        chart('Memory', [{ label: 'used', points: p('memUsage') }, { label: 'limit', points: p('memLimit').filter((x) => x[1] > 0), cls: 'line2' }],
          { since, until: now, unit: bytes }),
        chart('Network', [{ label: 'received', points: p('netRx') }, { label: 'sent', points: p('netTx'), cls: 'line2' }], { since, until: now, unit: bytes }),
        chart('Block I/O', [{ label: 'read', points: p('blkRead') }, { label: 'written', points: p('blkWrite'), cls: 'line2' }], { since, until: now, unit: bytes }),
      );
    } catch (e) {
      if (!signal.aborted) charts.replaceChildren(errorBox(e));
    }
  }

  async function drawUptime() {
    try {
      const u = await get(`${base}/uptime?duration=${upRange}`, signal);
      uptime.replaceChildren(h('p', null, `${pct(u.availabilityPercent)} available over the last ${upRange} · `,
        `down ${duration(u.downSeconds)} · unknown ${duration(u.unknownSeconds)} · restarts ${u.restarts} · OOM kills ${u.ooms}`),
      uptimeBar(u),
      u.downtime.length ? h('table', null, h('thead', null, h('tr', null, ['From', 'To', 'Lasted', 'Reason'].map((x) => h('th', { scope: 'col' }, x)))),
        h('tbody', null, u.downtime.map((d) => h('tr', null, h('td', null, when(d.from)), h('td', null, when(d.to)),
          h('td', null, duration(d.seconds)), h('td', null, d.reason))))) : h('p', { class: 'muted' }, 'No downtime in this window.'));
    } catch (e) {
      if (!signal.aborted) uptime.replaceChildren(errorBox(e));
    }
  }

  async function drawEvents() {
    try {
      const ev = await get(`${base}/events`, signal);
      events.replaceChildren(ev.items.length ? h('ol', { class: 'timeline' }, [...ev.items].reverse().map((e) => h('li', null,
        h('span', { class: 'muted' }, when(e.time)), ' ', h('strong', null, e.reason), ` (${e.type}) `, e.message))) : h('p', { class: 'muted' }, 'No events.'));
    } catch (e) {
      if (!signal.aborted) events.replaceChildren(errorBox(e));
    }
  }

  let follow = null;
  function logControls() {
    const box = h('input', { type: 'checkbox', id: 'follow', onchange: () => (box.checked ? startFollow() : stopFollow()) });
    return h('div', { class: 'actions' }, h('button', { type: 'button', onclick: tailLogs }, 'Reload'),
      h('label', { for: 'follow', style: 'flex-direction:row;gap:6px;align-items:center' }, box, 'Follow'));
  }
  async function tailLogs() {
    try {
      logs.textContent = await get(`${base}/logs?tail=200`, signal);
      logs.scrollTop = logs.scrollHeight;
    } catch (e) {
      logs.textContent = e.toString();
    }
  }
  async function startFollow() {
    stopFollow();
    follow = new AbortController();
    signal.addEventListener('abort', stopFollow);
    try {
      const r = await call('GET', `${base}/logs?follow=true&tail=0`, { raw: true, signal: follow.signal });
      const reader = r.body.getReader();
      const decoder = new TextDecoder();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        logs.textContent += decoder.decode(value, { stream: true });
        logs.scrollTop = logs.scrollHeight;
      }
    } catch (e) {
      if (follow && !follow.signal.aborted) logs.textContent += `\n${e}`;
    }
  }
  function stopFollow() { if (follow) follow.abort(); follow = null; }

  function drawSpec() {
    const text = documentOf(app);
    const apiOwned = !app.metadata.source || app.metadata.source === 'api';
    if (!apiOwned || !editor) {
      spec.replaceChildren(h('pre', null, text), h('p', { class: 'muted' }, apiOwned
        ? 'Your token may not change this app.' : `Read-only: this app comes from ${app.metadata.source}.`));
      return;
    }
    spec.replaceChildren(specEditor(text, 'spec'));
  }

  try {
    app = await get(base, signal);
  } catch (e) {
    main.replaceChildren(h('p', null, h('a', { href: '#/apps' }, '← Apps')), errorBox(e));
    return;
  }
  drawHead();
  drawSpec();
  drawCharts();
  drawUptime();
  drawEvents();
  tailLogs();
  watch('apps', ns, (type, data) => {
    if ((type === 'ADDED' || type === 'MODIFIED') && data.object.metadata.name === name) {
      const specChanged = JSON.stringify(data.object.spec) !== JSON.stringify(app.spec);
      app = data.object;
      drawHead();
      if (specChanged && !document.activeElement?.closest('#spec')) drawSpec();
      if (type === 'MODIFIED') drawEvents();
    } else if (type === 'DELETED' && data.object.metadata.name === name) {
      head.append(h('p', { class: 'error' }, 'This app was deleted.'));
    }
  }, signal);
  const refresh = async () => {
    while (!signal.aborted) {
      await new Promise((ok) => setTimeout(ok, statsEvery));
      if (!signal.aborted) { drawCharts(); drawUptime(); }
    }
  };
  refresh();
}

// ---------- routing ----------

const PAGES = {
  apps: appsPage, images: imagesPage, 'image-requests': requestsPage, nodes: nodesPage,
  host: hostPage, sources: sourcesPage, audit: auditPage,
};

async function render() {
  if (page) page.abort.abort();
  const abort = new AbortController();
  page = { abort };
  const main = document.getElementById('main');
  main.replaceChildren();
  notice('');
  const parts = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  if (!token() || parts[0] === 'login') {
    document.getElementById('nav').hidden = true;
    document.getElementById('who').hidden = true;
    return loginPage(main);
  }
  if (!session.who) {
    try {
      session.who = await call('GET', '/whoami', { login: true });
      session.info = await call('GET', '/info').catch(() => null);
    } catch (e) {
      if (e.status === 401) return logout(`Your token was refused: ${e.message}`);
      main.replaceChildren(errorBox(e));
      return undefined;
    }
  }
  const nav = document.getElementById('nav');
  nav.hidden = false;
  document.getElementById('who').hidden = false;
  document.getElementById('who-name').textContent = `${session.who.tokenId} (${session.who.grants.map((g) => `${g.role} in ${g.namespace}`).join(', ')})`;
  for (const a of nav.querySelectorAll('[data-page]')) {
    a.hidden = (a.hasAttribute('data-admin') && !isAdmin())
      || (a.hasAttribute('data-everywhere') && !everywhere('viewer'))
      || (a.hasAttribute('data-swarm') && session.info?.mode !== 'swarm');
  }
  const name = parts[0] || 'apps';
  for (const a of nav.querySelectorAll('a')) {
    if (a.dataset.page === name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  document.title = `wharf · ${name}`;
  if (name === 'apps' && parts.length >= 3) return appPage(main, abort.signal, parts[1], parts[2]);
  const show = PAGES[name];
  if (!show) {
    main.append(h('p', null, `No page ${name}.`));
    return undefined;
  }
  return show(main, abort.signal);
}

// Anything the Content-Security-Policy blocks is a bug of this page: counted where the tests
// look, and logged.
document.addEventListener('securitypolicyviolation', (e) => {
  document.body.dataset.cspViolations = String(Number(document.body.dataset.cspViolations || 0) + 1);
  console.error(`blocked by the Content-Security-Policy: ${e.violatedDirective} ${e.blockedURI}`);
});
document.getElementById('logout').addEventListener('click', () => logout());
window.addEventListener('hashchange', render);
render();
