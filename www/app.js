// app.js -- the elearn course catalogue: a list with search, filters, sort
// and pages (GET /api/courses) and a detail view (GET /api/courses/{id}).
//
// Every response's X-Cache header (L1, L2, MISS) is shown as a badge next to
// the request, with its status and time: that is what the product is about.
// Error bodies are JSON {"detail": ...} and are shown as they are.
//
// All text from the API is put in the page with textContent (el() below),
// never parsed as HTML.
'use strict';

(function () {
  const PAGE_SIZE = 12;
  const state = { search: '', category: '', difficulty: '', sort: 'recent', page: 1 };
  let listSeq = 0; // only the newest list request may render

  const $ = (id) => document.getElementById(id);

  // el('li', {class: 'x'}, 'text', child...) -- an element; strings become text nodes.
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') node.className = v;
      else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children) {
      if (c === null || c === undefined || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  // One API request: never throws; returns {status, layer, ms, body, detail}.
  async function api(path) {
    const t0 = performance.now();
    let res;
    try {
      res = await fetch(path, { headers: { Accept: 'application/json' }, cache: 'no-cache' });
    } catch (e) {
      return { status: 0, layer: null, ms: performance.now() - t0, body: null,
               detail: 'Network error: ' + e.message };
    }
    const out = { status: res.status, layer: res.headers.get('X-Cache'), body: null, detail: null };
    const text = await res.text();
    out.ms = performance.now() - t0;
    try {
      out.body = text ? JSON.parse(text) : null;
    } catch (e) {
      out.detail = 'Unexpected response (not JSON): ' + text.slice(0, 200);
    }
    if (!res.ok && !out.detail) {
      out.detail = out.body && typeof out.body.detail === 'string' ? out.body.detail
        : JSON.stringify(out.body && out.body.detail !== undefined ? out.body.detail : out.body);
    }
    return out;
  }

  function badge(layer) {
    return el('span', { class: 'badge badge-' + (layer || 'none'), title: layerTitle(layer) },
              layer || 'no X-Cache');
  }

  function layerTitle(layer) {
    return { L1: 'served from the in-process cache',
             L2: 'served from Redis, shared by all responders',
             MISS: 'read from the database' }[layer] || 'no cache header';
  }

  function showStatus(node, path, r) {
    node.replaceChildren(
      el('span', null, 'GET ', el('code', null, path), ' \u2192 ', String(r.status || 'failed')),
      badge(r.layer),
      el('span', null, r.ms.toFixed(1) + ' ms'));
  }

  function showError(node, r) {
    if (!r.detail) {
      node.hidden = true;
      node.replaceChildren();
      return;
    }
    node.replaceChildren(el('strong', null, r.status ? 'Error ' + r.status : 'Error'), r.detail);
    node.hidden = false;
  }

  function minutes(m) {
    if (typeof m !== 'number') return '';
    return m >= 60 ? Math.floor(m / 60) + ' h ' + (m % 60 ? (m % 60) + ' min' : '') : m + ' min';
  }

  function meta(c) {
    return el('div', { class: 'meta' },
      el('span', { class: 'pill ' + (c.difficulty || '') }, c.difficulty),
      el('span', null, c.category),
      el('span', { title: (c.rating_count || 0) + ' ratings' },
         '\u2605 ' + (typeof c.rating === 'number' ? c.rating.toFixed(1) : '-')),
      el('span', null, minutes(c.duration_minutes)),
      el('span', null, (c.enrollment_count || 0).toLocaleString() + ' enrolled'));
  }

  // ---- catalogue ----------------------------------------------------------

  function listPath() {
    const q = new URLSearchParams();
    if (state.search) q.set('search', state.search);
    if (state.category) q.set('category', state.category);
    if (state.difficulty) q.set('difficulty', state.difficulty);
    if (state.sort !== 'recent') q.set('sort_by', state.sort);
    if (state.page > 1) q.set('page', String(state.page));
    q.set('page_size', String(PAGE_SIZE));
    return '/api/courses?' + q.toString();
  }

  async function loadList() {
    const seq = ++listSeq;
    const path = listPath();
    const r = await api(path);
    if (seq !== listSeq) return;
    showStatus($('list-status'), path, r);
    showError($('list-error'), r);
    const ul = $('courses');
    if (r.status !== 200 || !r.body) {
      ul.replaceChildren();
      pager(0);
      return;
    }
    const items = Array.isArray(r.body.items) ? r.body.items : [];
    items.forEach((c) => addCategory(c.category));
    if (items.length === 0) {
      ul.replaceChildren(el('li', { class: 'empty' }, 'No course matches.'));
    } else {
      ul.replaceChildren(...items.map((c) => el('li', null,
        el('button', { class: 'card', type: 'button',
                       onclick: () => { location.hash = '#/courses/' + encodeURIComponent(c._id); } },
           el('h2', null, c.title),
           meta(c)))));
    }
    pager(r.body.total || 0);
  }

  function pager(total) {
    const pages = Math.max(1, Math.ceil(total / PAGE_SIZE));
    $('page-info').textContent = 'Page ' + state.page + ' of ' + pages + ' \u00b7 ' + total + ' courses';
    $('prev').disabled = state.page <= 1;
    $('next').disabled = state.page >= pages;
  }

  const knownCategories = new Set();
  function addCategory(cat) {
    if (!cat || knownCategories.has(cat)) return;
    knownCategories.add(cat);
    const sel = $('category');
    const opts = [...sel.options].slice(1).map((o) => o.value).concat(cat).sort();
    const current = sel.value;
    sel.replaceChildren(el('option', { value: '' }, 'All categories'),
                        ...opts.map((v) => el('option', { value: v }, v)));
    sel.value = current;
  }

  // The category select is filled from the catalogue itself (there is no
  // categories endpoint): up to 5 pages of 100.
  async function loadCategories() {
    for (let page = 1; page <= 5; page++) {
      const r = await api('/api/courses?page_size=100&page=' + page);
      if (r.status !== 200 || !r.body || !Array.isArray(r.body.items)) return;
      r.body.items.forEach((c) => addCategory(c.category));
      if (page * 100 >= (r.body.total || 0)) return;
    }
  }

  // ---- detail -------------------------------------------------------------

  async function loadCourse(id) {
    const path = '/api/courses/' + encodeURIComponent(id);
    const art = $('course');
    art.replaceChildren(el('p', { class: 'empty' }, 'Loading\u2026'));
    const r = await api(path);
    showStatus($('detail-status'), path, r);
    showError($('detail-error'), r);
    if (r.status !== 200 || !r.body) {
      art.replaceChildren();
      return;
    }
    const c = r.body;
    const modules = Array.isArray(c.modules) ? [...c.modules] : [];
    modules.sort((a, b) => (a.order || 0) - (b.order || 0));
    art.replaceChildren(
      el('h2', null, c.title),
      meta(c),
      el('ul', { class: 'tags' }, ...(c.tags || []).map((t) => el('li', null, t))),
      el('p', { class: 'desc' }, c.description),
      el('p', { class: 'meta' },
         'Updated ' + (c.updated_at || '').slice(0, 10) + ' \u00b7 course id ', el('code', null, c._id),
         c.published === false ? ' \u00b7 not published' : null),
      el('h3', null, modules.length + (modules.length === 1 ? ' module' : ' modules')),
      el('ol', { class: 'modules' }, ...modules.map((m) => el('li', null,
        el('h3', null, m.title),
        el('div', { class: 'meta' }, minutes(m.duration_minutes)),
        el('p', null, m.content)))));
  }

  // ---- wiring -------------------------------------------------------------

  function route() {
    const m = location.hash.match(/^#\/courses\/([^/?#]+)$/);
    $('catalogue').hidden = !!m;
    $('detail').hidden = !m;
    if (m) {
      loadCourse(decodeURIComponent(m[1]));
      window.scrollTo(0, 0);
    }
  }

  function changed(reset) {
    if (reset) state.page = 1;
    loadList();
  }

  let debounce = null;
  $('search').addEventListener('input', (e) => {
    clearTimeout(debounce);
    debounce = setTimeout(() => { state.search = e.target.value.trim(); changed(true); }, 250);
  });
  $('filters').addEventListener('submit', (e) => e.preventDefault());
  $('category').addEventListener('change', (e) => { state.category = e.target.value; changed(true); });
  $('difficulty').addEventListener('change', (e) => { state.difficulty = e.target.value; changed(true); });
  $('sort').addEventListener('change', (e) => { state.sort = e.target.value; changed(true); });
  $('prev').addEventListener('click', () => { if (state.page > 1) { state.page--; changed(false); } });
  $('next').addEventListener('click', () => { state.page++; changed(false); });
  window.addEventListener('hashchange', route);

  route();
  loadList();
  loadCategories();
})();
