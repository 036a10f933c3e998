// wharf's dashboard: the pages beside Apps — images, image requests, nodes, host, sources and
// audit. Loaded before app.js, whose helpers and API calls these use.
'use strict';
async function imagesPage(main, signal) {
  const items = new Map();
  const place = h('div', { id: 'images-table' }, h('p', { class: 'muted' }, 'Loading…'));
  const out = h('div', { id: 'image-error' });
  const editor = can('editor');
  let sort = { key: 'name', desc: false };
  main.append(h('h1', null, 'Images'),
    h('div', { class: 'actions' }, h('button', {
      type: 'button', id: 'update-all', disabled: !editor,
      onclick: () => act(out, async () => {
        const r = await call('POST', '/images:update-all');
        notice(`Update all: ${(r.items || []).length} image(s) checked.`);
      }),
    }, 'Update all')), out, place);
  const name = (i) => i.metadata.name;
  const columns = [
    { key: 'name', label: 'Image', value: name, cell: (i) => name(i) },
    { key: 'managed', label: 'Declared', value: (i) => (i.managed ? 1 : 0), cell: (i) => (i.managed ? `yes (${i.metadata.namespace || ''})` : 'no') },
    { key: 'phase', label: 'Phase', value: (i) => i.status?.phase || '', cell: (i) => phase(i.status?.phase) },
    { key: 'size', label: 'Size', num: true, narrow: true, value: (i) => i.status?.size || 0, cell: (i) => bytes(i.status?.size) },
    { key: 'users', label: 'Used by', value: (i) => (i.status?.usedByApps || []).length,
      cell: (i) => (i.status?.usedByApps || i.status?.usedBy || []).map((u) => (typeof u === 'string' ? u : `${u.namespace}/${u.name}`)).join(', ') || '–' },
    { key: 'pull', label: 'Pull', narrow: true, value: (i) => i.status?.pull?.state || '', cell: pullCell },
    { key: 'do', label: '', value: () => 0, cell: (i) => h('div', { class: 'actions' },
      // Only declared Images are wharf's to pull and delete; the engine's others are shown.
      i.managed ? h('button', { type: 'button', disabled: !editor, onclick: () => act(out, () => call('POST', `/images/${enc(name(i))}/pull`)) }, 'Pull') : null,
      i.managed ? h('button', { type: 'button', class: 'danger', disabled: !editor, onclick: async () => {
        if (!(await confirmAction(`Delete image ${name(i)} (the Image and the engine's image)?`))) return;
        await act(out, () => call('DELETE', `/images/${enc(name(i))}`));
      } }, 'Delete') : null) },
  ];
  const draw = () => place.replaceChildren(items.size
    ? sortable(columns, [...items.values()], sort, (x) => { sort = x; draw(); })
    : h('p', { class: 'muted' }, 'No images.'));
  let synced = false;
  watch('images', '', (type, data) => {
    if (type === 'ADDED' || type === 'MODIFIED') items.set(keyOf(data.object), data.object);
    else if (type === 'DELETED') items.delete(keyOf(data.object));
    else if (type === 'SYNCED') synced = true;
    else if (type === 'FAILED') { place.replaceChildren(errorBox(data)); return; }
    if (synced) draw();
  }, signal);
}
const keyOf = (o) => `${o.metadata.namespace || ''}/${o.metadata.name}`;
function pullCell(i) {
  const p = i.status?.pull;
  if (!p) return '–';
  const layers = p.layers || [];
  const total = layers.reduce((n, l) => n + (l.total || 0), 0);
  const done = layers.reduce((n, l) => n + (l.current || 0), 0);
  return h('div', null, `${p.state}${p.message ? `: ${p.message}` : ''}`,
    total ? h('div', { class: 'bar' }, h('span', { style: `width:${((100 * done) / total).toFixed(0)}%` })) : null);
}

async function requestsPage(main, signal) {
  const place = h('div', { id: 'requests' });
  const out = h('div', { id: 'request-error' });
  const ref = h('input', { id: 'req-ref', required: true, placeholder: 'registry.example/app:1.2' });
  const reason = h('input', { id: 'req-reason', required: true, placeholder: 'why it is needed' });
  const admin = isAdmin();
  async function load() {
    try {
      const r = await get('/image-requests', signal);
      place.replaceChildren(r.items.length ? h('div', { class: 'table-wrap' }, h('table', null,
        h('thead', null, h('tr', null, ['Image', 'Reason', 'By', 'When', 'State', ''].map((x) => h('th', { scope: 'col' }, x)))),
        h('tbody', null, r.items.map((q) => h('tr', null, h('td', null, q.ref), h('td', null, q.reason),
          h('td', null, q.requestedBy), h('td', null, when(q.requestedAt)),
          h('td', null, phase(q.state), q.message ? ` ${q.message}` : ''),
          h('td', null, admin && q.state === 'pending' ? h('div', { class: 'actions' },
            h('button', { type: 'button', onclick: () => act(out, async () => { await call('POST', `/image-requests/${enc(q.id)}/approve`); load(); }) }, 'Approve'),
            h('button', { type: 'button', class: 'danger', onclick: () => act(out, async () => {
              const message = prompt('Why is it rejected?') || '';
              await call('POST', `/image-requests/${enc(q.id)}/reject`, { type: 'application/json', body: JSON.stringify({ message }) });
              load();
            }) }, 'Reject')) : null)))))) : h('p', { class: 'muted' }, 'No image requests.'));
    } catch (e) {
      place.replaceChildren(errorBox(e));
    }
  }
  main.append(h('h1', null, 'Image requests'),
    h('form', { class: 'filters', onsubmit: (e) => { e.preventDefault(); act(out, async () => {
      await call('POST', '/image-requests', { type: 'application/json', body: JSON.stringify({ ref: ref.value, reason: reason.value }) });
      ref.value = ''; reason.value = ''; load();
    }); } }, h('label', { for: 'req-ref' }, 'Image', ref), h('label', { for: 'req-reason' }, 'Reason', reason),
    h('button', { type: 'submit', disabled: !can('editor') }, 'Request')), out, place);
  load();
}

async function nodesPage(main, signal) {
  const items = new Map();
  const place = h('div', { id: 'nodes' }, h('p', { class: 'muted' }, 'Loading…'));
  main.append(h('h1', null, 'Nodes'), place);
  let sort = { key: 'host', desc: false };
  const columns = [
    { key: 'host', label: 'Host', value: (n) => n.hostname, cell: (n) => n.hostname },
    { key: 'role', label: 'Role', value: (n) => n.role, cell: (n) => n.role },
    { key: 'status', label: 'Status', value: (n) => n.status, cell: (n) => phase(n.status === 'ready' ? 'Ready' : n.status) },
    { key: 'avail', label: 'Availability', value: (n) => n.availability, cell: (n) => n.availability },
    { key: 'tasks', label: 'Tasks', num: true, value: (n) => n.tasks ?? 0, cell: (n) => n.tasks ?? 0 },
    { key: 'cpus', label: 'CPUs', num: true, narrow: true, value: (n) => n.cpus ?? 0, cell: (n) => n.cpus ?? '–' },
    { key: 'mem', label: 'Memory', num: true, narrow: true, value: (n) => n.memory ?? 0, cell: (n) => bytes(n.memory) },
    { key: 'engine', label: 'Engine', narrow: true, value: (n) => n.engineVersion || '', cell: (n) => n.engineVersion || '–' },
  ];
  const draw = () => place.replaceChildren(items.size
    ? sortable(columns, [...items.values()], sort, (x) => { sort = x; draw(); }) : h('p', { class: 'muted' }, 'No nodes.'));
  let synced = false;
  watch('nodes', '', (type, data) => {
    if (type === 'ADDED' || type === 'MODIFIED') items.set(data.object.id, data.object);
    else if (type === 'DELETED') items.delete(data.object.id);
    else if (type === 'SYNCED') synced = true;
    else if (type === 'FAILED') { place.replaceChildren(errorBox(data)); return; }
    if (synced) draw();
  }, signal);
}

async function hostPage(main, signal) {
  const charts = h('div', { class: 'grid', id: 'host-charts' });
  let range = '1h';
  main.append(h('h1', null, 'Host'), segmented('Window', Object.keys(RANGES), range, (r) => { range = r; draw(); }), charts);
  async function draw() {
    const now = Date.now();
    const since = now - RANGES[range] * 1000;
    try {
      const r = await get(`/host/stats/history?since=${Math.floor(since / 1000)}`, signal);
      const cpu = [];
      const net = [[], []];
      const disk = [[], []];
      for (let i = 1; i < r.items.length; i += 1) {
        const a = r.items[i - 1];
        const b = r.items[i];
        const secs = Math.max((b.t - a.t) / 1000, 0.001);
        const total = b.cpu.total - a.cpu.total;
        if (total > 0) cpu.push([b.t, Math.max(0, 100 * (1 - (b.cpu.idle + b.cpu.iowait - a.cpu.idle - a.cpu.iowait) / total))]);
        net[0].push([b.t, Math.max(0, (b.network.bytesReceived - a.network.bytesReceived) / secs)]);
        net[1].push([b.t, Math.max(0, (b.network.bytesSent - a.network.bytesSent) / secs)]);
        disk[0].push([b.t, Math.max(0, ((b.disk.sectorsRead - a.disk.sectorsRead) * 512) / secs)]);
        disk[1].push([b.t, Math.max(0, ((b.disk.sectorsWritten - a.disk.sectorsWritten) * 512) / secs)]);
      }
      const load = r.items.map((x) => [x.t, x.loadAverage.one]);
      const rate = (v) => `${bytes(v)}/s`;
      charts.replaceChildren(
        chart('Host CPU', [{ label: 'busy %', points: cpu }], { since, until: now, max: 100, unit: percentLabel }),
        chart('Load average', [{ label: '1 min', points: load }], { since, until: now, unit: (v) => v.toFixed(2) }),
        chart('Host network', [{ label: 'received', points: net[0] }, { label: 'sent', points: net[1], cls: 'line2' }], { since, until: now, unit: rate }),
        chart('Host disk', [{ label: 'read', points: disk[0] }, { label: 'written', points: disk[1], cls: 'line2' }], { since, until: now, unit: rate }),
      );
    } catch (e) {
      if (!signal.aborted) charts.replaceChildren(errorBox(e));
    }
  }
  await draw();
  const timer = setInterval(draw, 15000);
  signal.addEventListener('abort', () => clearInterval(timer));
}

async function sourcesPage(main, signal) {
  main.append(h('h1', null, 'Sources'));
  try {
    const r = await get('/sources', signal);
    if (r.git) {
      const g = r.git;
      main.append(h('section', { class: 'card', id: 'git' }, h('h2', null, 'Git'),
        h('p', null, `${g.url} · branch ${g.branch}${g.path ? ` · ${g.path}` : ''}`),
        g.commit ? h('p', null, `Applied ${g.commit.sha.slice(0, 12)} “${g.commit.subject}” (${when(g.commit.time)})`) : h('p', { class: 'muted' }, 'No commit applied yet.'),
        g.rejected ? h('div', { class: 'error' }, `Refused: ${JSON.stringify(g.rejected)}`) : null,
        g.error ? h('div', { class: 'error' }, g.error) : null,
        g.lastFetch ? h('p', { class: 'muted' }, `Last fetch ${when(g.lastFetch)}`) : null));
    }
    main.append(r.errors.length ? h('div', { class: 'table-wrap', id: 'source-errors' }, h('table', null,
      h('thead', null, h('tr', null, ['File', 'Problem', 'Since'].map((x) => h('th', { scope: 'col' }, x)))),
      h('tbody', null, r.errors.map((e) => h('tr', null, h('td', null, e.source), h('td', null, h('pre', null, e.message)), h('td', null, when(e.time)))))))
      : h('p', { class: 'muted', id: 'source-errors' }, 'Every spec file is valid.'));
  } catch (e) {
    main.append(errorBox(e));
  }
}

async function auditPage(main, signal) {
  main.append(h('h1', null, 'Audit'));
  const body = h('tbody');
  const more = h('button', { type: 'button' }, 'Older');
  main.append(h('div', { class: 'table-wrap' }, h('table', { id: 'audit' },
    h('thead', null, h('tr', null, ['Time', 'Token', 'Request', 'Status', 'Result'].map((x) => h('th', { scope: 'col' }, x)))), body)), more);
  let before = null;
  async function load() {
    try {
      const r = await get(`/audit?limit=100${before ? `&before=${before}` : ''}`, signal);
      for (const e of r.items) {
        body.append(h('tr', null, h('td', null, when(e.time)), h('td', null, e.tokenId),
          h('td', null, `${e.method} ${e.path}`), h('td', null, e.status), h('td', null, e.result)));
      }
      before = r.nextBefore;
      more.hidden = !before;
    } catch (e) {
      main.append(errorBox(e));
    }
  }
  more.addEventListener('click', load);
  load();
}
