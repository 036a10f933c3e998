// wharf's dashboard: the drawing — SVG charts, the uptime bar, and the YAML writer of the spec
// editor. Loaded before app.js, whose helpers (h, s, when) these call.
'use strict';
// ---------- charts ----------

// A line chart of `series` ([{ label, points: [[t, v]], cls }]) over [since, until] ms.
function chart(title, series, { since: from, until, unit = (v) => v.toFixed(1), max } = {}) {
  let since = from;
  const W = 420;
  const H = 170;
  const L = 64;
  const B = 18;
  const all = series.flatMap((x) => x.points);
  // A window longer than the history starts at the first sample, so a young app's chart is
  // not a line at its right edge.
  if (all.length) since = Math.max(since, Math.min(...all.map((p) => p[0])));
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': title });
  svg.append(s('line', { class: 'axis', x1: L, y1: H - B, x2: W, y2: H - B }));
  if (all.length === 0) {
    svg.append(s('text', { class: 'empty', x: W / 2, y: H / 2, 'text-anchor': 'middle' }, 'no samples in this window'));
  } else {
    const top = Math.max(max ?? 0, ...all.map((p) => p[1])) || 1;
    const x = (t) => L + ((t - since) / Math.max(until - since, 1)) * (W - L);
    const y = (v) => (H - B) - (v / top) * (H - B - 8);
    svg.append(s('text', { x: L - 4, y: 12, 'text-anchor': 'end' }, unit(top)));
    svg.append(s('text', { x: L - 4, y: H - B, 'text-anchor': 'end' }, unit(0)));
    svg.append(s('text', { x: L, y: H - 4 }, new Date(since).toLocaleTimeString()));
    svg.append(s('text', { x: W, y: H - 4, 'text-anchor': 'end' }, new Date(until).toLocaleTimeString()));
    for (const line of series) {
      if (line.points.length === 0) continue;
      const d = line.points.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(' ');
      svg.append(s('polyline', { class: line.cls || 'line', points: d, 'data-points': line.points.length }));
    }
  }
  const legend = h('div', { class: 'legend' }, series.map((x, i) => h('span', { class: `k${i + 1}` },
    `${i ? ' · ' : ''}— ${x.label}`)));
  return h('figure', { class: 'chart card', 'data-chart': title, 'data-points': all.length },
    h('figcaption', null, h('strong', null, title)), svg, legend);
}

// The up/down bar of an uptime answer.
function uptimeBar(u) {
  const W = 1000;
  const svg = s('svg', { viewBox: `0 0 ${W} 20`, preserveAspectRatio: 'none', role: 'img',
    'aria-label': `availability ${u.availabilityPercent.toFixed(2)} %` });
  const span = Math.max(u.until - u.since, 1);
  const points = u.series.filter((p) => p.t < u.until);
  for (let i = 0; i < points.length; i += 1) {
    const from = Math.max(points[i].t, u.since);
    const to = i + 1 < points.length ? points[i + 1].t : u.until;
    if (to <= from) continue;
    svg.append(s('rect', {
      class: points[i].state, x: ((from - u.since) / span) * W, y: 0,
      width: Math.max(((to - from) / span) * W, 0.5), height: 20,
    }, s('title', {}, `${points[i].state} from ${when(from)}${points[i].detail ? `: ${points[i].detail}` : ''}`)));
  }
  return h('div', { class: 'uptime' }, svg);
}

// ---------- a tiny YAML writer for the spec editor ----------

function yaml(value, indent = '') {
  const scalar = (v) => {
    if (v === null || v === undefined) return 'null';
    if (typeof v === 'number' || typeof v === 'boolean') return String(v);
    const plain = /^[A-Za-z0-9_./@-][A-Za-z0-9 _./@:=+-]*$/.test(v)
      && !/^(true|false|null|yes|no|on|off|~|[0-9.+-].*)$/i.test(v) && !/:\s|\s$|:$/.test(v);
    return plain ? v : JSON.stringify(v);
  };
  const isObj = (v) => v && typeof v === 'object';
  if (Array.isArray(value)) {
    if (value.length === 0) return '[]';
    return value.map((v) => {
      if (isObj(v) && Object.keys(v).length) {
        const inner = yaml(v, `${indent}  `);
        return `${indent}- ${inner.slice(indent.length + 2)}`;
      }
      return `${indent}- ${isObj(v) ? (Array.isArray(v) ? '[]' : '{}') : scalar(v)}`;
    }).join('\n');
  }
  if (isObj(value)) {
    const keys = Object.keys(value);
    if (keys.length === 0) return '{}';
    return keys.map((k) => {
      const v = value[k];
      const key = scalar(k);
      if (isObj(v) && (Array.isArray(v) ? v.length : Object.keys(v).length)) {
        return `${indent}${key}:\n${yaml(v, Array.isArray(v) ? indent : `${indent}  `)}`;
      }
      return `${indent}${key}: ${isObj(v) ? (Array.isArray(v) ? '[]' : '{}') : scalar(v)}`;
    }).join('\n');
  }
  return indent + scalar(value);
}

function documentOf(app) {
  const m = app.metadata;
  const metadata = { name: m.name, namespace: m.namespace };
  if (m.labels && Object.keys(m.labels).length) metadata.labels = m.labels;
  return `${yaml({ apiVersion: app.apiVersion, kind: app.kind, metadata, spec: app.spec })}\n`;
}
