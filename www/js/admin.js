// admin.js -- the cache dashboard (admins): GET /cache/stats and GET
// /health every 2 s, drawn as live SVG line charts (no library): hit ratio
// per layer (L1, L2, store) for the cluster and for each process that
// answered, requests/s, store queries/s and latency, L1 bytes, entries and
// evictions; Redis and store health. Rates come from the difference of two
// samples of the same counters. One button invalidates a course
// (DELETE /cache/invalidate/{id}) and reads it back to show the MISS.
import * as api from './api.js';
import { $, el, badge, statusBox, errorBox, show } from './ui.js';
import { requireRole } from './app.js';

const PERIOD_MS = 2000; // #/admin?every=MS (500 or more) polls faster
const KEEP = 60; // samples per series (2 minutes)
let timer = null;
let series = null;

function period() {
  const q = new URLSearchParams((location.hash.split('?')[1]) || '');
  const ms = parseInt(q.get('every') || '', 10);
  return Number.isFinite(ms) && ms >= 500 ? ms : PERIOD_MS;
}

export function stopAdmin() {
  if (timer) clearTimeout(timer);
  timer = null;
}

function newSeries() {
  return { cluster: { raw: [], pts: [] }, procs: new Map(), l1: [], started: Date.now() };
}

// Rates and shares between two samples of one counter set
// ({l1_hits, l2_hits, misses, stale, requests} and {queries, mean_latency_us}).
function derive(prev, cur, dt) {
  const d = (k) => Math.max(0, cur.all[k] - prev.all[k]);
  const req = d('requests');
  const q = Math.max(0, cur.store.queries - prev.store.queries);
  const micros = cur.store.mean_latency_us * cur.store.queries -
    prev.store.mean_latency_us * prev.store.queries;
  return {
    l1: req ? d('l1_hits') / req : null,
    l2: req ? d('l2_hits') / req : null,
    store: req ? (d('misses') + d('stale')) / req : null,
    rps: req / dt,
    qps: q / dt,
    latency_ms: q ? Math.max(0, micros / q / 1000) : null,
  };
}

// Add a sample to a series: rates over the last interval, hit ratios over
// the last few (WINDOW) so a quiet interval does not make them jump.
const WINDOW = 5;
function sample(series_, v, t) {
  const raw = series_.raw;
  raw.push({ v, t });
  if (raw.length > WINDOW + 1) raw.shift();
  if (raw.length < 2) return;
  const last = raw[raw.length - 2], first = raw[0];
  const now = derive(last.v, v, (t - last.t) / 1000);
  const wide = derive(first.v, v, (t - first.t) / 1000);
  push(series_.pts, { ...now, l1: wide.l1, l2: wide.l2, store: wide.store });
}

function push(arr, v) {
  arr.push(v);
  if (arr.length > KEEP) arr.shift();
}

// One SVG line chart: lines = [{name, cls, values[]}], y from 0 to max
// (fixed max for ratios).
function chart(title, lines, opts = {}) {
  const W = 320, H = 120, P = 4;
  const all = lines.flatMap((l) => l.values.filter((v) => v !== null && Number.isFinite(v)));
  const max = opts.max || Math.max(1e-9, ...all) * 1.1;
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  svg.setAttribute('role', 'img');
  const last = lines.map((l) => {
    const v = l.values.length ? l.values[l.values.length - 1] : null;
    return l.name + ' ' + (v === null || v === undefined ? '-' : fmt(v, opts));
  }).join(', ');
  svg.setAttribute('aria-label', title + ': ' + last);
  const grid = document.createElementNS(ns, 'path');
  grid.setAttribute('d', `M${P} ${H - P}H${W - P}M${P} ${P}H${W - P}`);
  grid.setAttribute('class', 'grid');
  svg.append(grid);
  for (const l of lines) {
    // The newest sample at the right edge; a gap where a value is missing.
    let d = '';
    const n = l.values.length;
    l.values.forEach((v, i) => {
      if (v === null || !Number.isFinite(v)) return;
      const x = W - P - (W - 2 * P) * ((n - 1 - i) / (KEEP - 1));
      const y = H - P - (H - 2 * P) * Math.min(1, v / max);
      const joined = i > 0 && l.values[i - 1] !== null && Number.isFinite(l.values[i - 1]);
      d += (joined ? 'L' : 'M') + x.toFixed(1) + ' ' + y.toFixed(1) + (joined ? '' : 'h0.1');
    });
    const path = document.createElementNS(ns, 'path');
    path.setAttribute('d', d || `M${P} ${H - P}`);
    path.setAttribute('class', 'line ' + l.cls);
    svg.append(path);
  }
  return el('figure', { class: 'chart', 'data-chart': opts.id || title },
    el('figcaption', null, title, el('span', { class: 'max' }, ' (max ' + fmt(max, opts) + ')')),
    svg,
    el('ul', { class: 'legend' }, ...lines.map((l) => {
      const v = l.values.length ? l.values[l.values.length - 1] : null;
      return el('li', { class: l.cls }, l.name + ': ',
                el('strong', { 'data-value': l.name }, v === null || v === undefined ? '-' : fmt(v, opts)));
    })));
}

function fmt(v, opts) {
  if (opts.pct) return (100 * v).toFixed(0) + ' %';
  if (opts.bytes) return v >= 1048576 ? (v / 1048576).toFixed(1) + ' MiB' : (v / 1024).toFixed(0) + ' KiB';
  return v >= 100 ? v.toFixed(0) : v.toFixed(v >= 10 ? 1 : 2);
}

function ratioLines(pts) {
  return [
    { name: 'L1', cls: 'l1', values: pts.map((p) => p.l1) },
    { name: 'L2', cls: 'l2', values: pts.map((p) => p.l2) },
    { name: 'store', cls: 'miss', values: pts.map((p) => p.store) },
  ];
}

function render(stats, health, r) {
  const c = series.cluster.pts;
  const procs = [...series.procs.entries()].sort((a, b) => a[0] - b[0]);
  const l1 = series.l1;
  $('dash').replaceChildren(
    el('p', { class: 'health', id: 'health' },
      'Redis: ', el('strong', { class: 'state-' + stats.redis, id: 'redis-state' }, stats.redis),
      ' \u00b7 store: ', el('strong', { class: 'state-' + (health ? health.db : 'unknown'),
                                         id: 'db-state' }, health ? health.db : 'unknown'),
      ' \u00b7 answered by process ', el('code', null, String(stats.pid)),
      ' \u00b7 cluster requests ', el('strong', { id: 'cluster-requests' },
        String(stats.cluster ? stats.cluster.all.requests : stats.process.all.requests))),
    statusBox(r),
    el('div', { class: 'charts' },
      chart('Hit ratio, cluster', ratioLines(c), { pct: true, max: 1, id: 'ratio-cluster' }),
      chart('Requests/s, cluster', [{ name: 'req/s', cls: 'l1',
                                      values: c.map((p) => p.rps) }], { id: 'rps' }),
      chart('Store queries/s', [{ name: 'queries/s', cls: 'miss', values: c.map((p) => p.qps) }],
            { id: 'qps' }),
      chart('Store latency (ms)', [{ name: 'mean ms', cls: 'l2',
                                     values: c.map((p) => p.latency_ms) }], { id: 'latency' }),
      chart('L1 bytes (process ' + stats.pid + ')', [{ name: 'bytes', cls: 'l1',
                                                       values: l1.map((p) => p.bytes) }],
            { bytes: true, id: 'l1-bytes' }),
      chart('L1 entries and evictions', [
        { name: 'entries', cls: 'l1', values: l1.map((p) => p.entries) },
        { name: 'evictions', cls: 'miss', values: l1.map((p) => p.evictions) }], { id: 'l1-entries' }),
      ...procs.map(([pid, s]) => chart('Hit ratio, process ' + pid, ratioLines(s.pts),
                                       { pct: true, max: 1, id: 'ratio-' + pid }))));
}

async function poll() {
  timer = null;
  const [r, h] = await Promise.all([api.get('/cache/stats'), api.get('/health')]);
  if (!$('dash')) return; // left the page meanwhile
  if (r.status !== 200) {
    $('dash').replaceChildren(statusBox(r), errorBox(r));
  } else {
    const s = r.body;
    const now = performance.now();
    const clusterNow = s.cluster || s.process;
    sample(series.cluster, clusterNow, now);
    let ps = series.procs.get(s.pid);
    if (!ps) series.procs.set(s.pid, ps = { raw: [], pts: [] });
    sample(ps, s.process, now);
    push(series.l1, { bytes: s.l1.bytes, entries: s.l1.entries, evictions: s.l1.evictions });
    render(s, h.status === 200 || h.status === 503 ? h.body : null, r);
  }
  if ($('dash')) timer = setTimeout(poll, period());
}

export function adminPage() {
  if (!requireRole(['admin'], 'the cache dashboard')) return;
  stopAdmin();
  series = newSeries();
  const id = el('input', { type: 'text', id: 'invalidate-id', maxlength: 24, pattern: '[0-9a-fA-F]{24}',
                           autocomplete: 'off', 'aria-describedby': 'invalidate-hint' });
  const out = el('div', { id: 'invalidate-result', role: 'status' });
  const form = el('form', { class: 'inline-form', id: 'invalidate-form' },
    el('label', { for: 'invalidate-id' }, 'Course id'), id,
    el('button', { type: 'submit', class: 'danger' }, 'Invalidate'),
    el('p', { class: 'hint', id: 'invalidate-hint' },
       'Drops the course from every cache layer of every process; the next read is a MISS.'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const v = id.value.trim();
    const r = await api.request('DELETE', '/cache/invalidate/' + encodeURIComponent(v));
    if (r.status !== 200) {
      out.replaceChildren(errorBox(r));
      return;
    }
    const g = await api.get('/courses/' + encodeURIComponent(v));
    out.replaceChildren(el('p', { class: 'ok' }, r.body.message + '. Next read: ',
                           badge(g.layer), ' (HTTP ' + g.status + ')'));
  });
  show('Cache dashboard', el('h1', null, 'Cache dashboard'),
       el('p', { class: 'hint' }, 'Live: refreshed every ' + period() / 1000 + ' s from ',
          el('code', null, '/api/cache/stats'),
          ' and ', el('code', null, '/api/health'), '. Rates are over each interval, hit ratios over the last ' + WINDOW + '.'),
       form, out, el('div', { id: 'dash', 'aria-live': 'off' }, el('p', { class: 'empty' }, 'Loading\u2026')));
  poll();
}
