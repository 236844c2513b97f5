// ui.js -- building the page. Everything from the API or the user goes in
// as text (el() makes text nodes; no innerHTML anywhere), so a course
// titled <img src=x onerror=alert(1)> shows exactly those characters.

export const $ = (id) => document.getElementById(id);

// el('li', {class: 'x', onclick: fn}, 'text', child...) -- an element;
// strings become text nodes.
export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

const LAYER_TITLES = {
  L1: 'served from the in-process cache',
  L2: 'served from Redis, shared by all responders',
  MISS: 'read from the database',
  STALE: 'a stale copy, served while the database was unavailable',
  BYPASS: 'private to you: read from the database, never cached',
};

export function badge(layer) {
  return el('span', { class: 'badge badge-' + (layer || 'none'),
                      title: LAYER_TITLES[layer] || 'no cache header' },
            layer || 'no X-Cache');
}

// "GET /courses?... -> 200 [L1] 1.2 ms": the request behind what is shown.
export function requestLine(r) {
  return el('span', { class: 'reqline' },
    el('code', null, r.method + ' /api' + r.path), ' \u2192 ',
    el('span', { class: 'code' }, String(r.status || 'failed')), ' ',
    badge(r.layer), ' ', el('span', { class: 'ms' }, r.ms.toFixed(1) + ' ms'));
}

export function statusBox(r) {
  return el('p', { class: 'status', 'data-testid': 'status' }, requestLine(r));
}

export function errorBox(r, extra) {
  if (!r || !r.detail) return null;
  return el('div', { class: 'error', role: 'alert' },
    el('strong', null, r.status ? 'Error ' + r.status + ': ' : 'Error: '), r.detail, extra || null);
}

export function minutes(m) {
  if (typeof m !== 'number') return '';
  if (m < 60) return m + ' min';
  return Math.floor(m / 60) + ' h' + (m % 60 ? ' ' + (m % 60) + ' min' : '');
}

export function meta(c) {
  return el('div', { class: 'meta' },
    el('span', { class: 'pill ' + (c.difficulty || '') }, c.difficulty),
    el('span', null, c.category),
    el('span', { title: (c.rating_count || 0) + ' ratings' },
       '\u2605 ' + (typeof c.rating === 'number' ? c.rating.toFixed(1) : '-'),
       ' (' + (c.rating_count || 0) + ')'),
    el('span', null, minutes(c.duration_minutes)),
    el('span', null, (c.enrollment_count || 0).toLocaleString('en') + ' enrolled'),
    c.published === false ? el('span', { class: 'pill draft' }, 'draft') : null);
}

// Navigation: route() starts a new one; a page that awaits the API renders
// through pageView(), whose show() does nothing once the user has moved on
// (an answer that arrives late must not overwrite the page now shown).
let navigation = 0;

export function navigated() {
  navigation++;
}

export function pageView() {
  const mine = navigation;
  const view = (title, ...nodes) => {
    if (mine === navigation) show(title, ...nodes);
  };
  view.current = () => mine === navigation;
  return view;
}

// Show a page: replace main's content and move focus there (keyboard and
// screen-reader users land on the new content).
export function show(title, ...nodes) {
  const main = $('main');
  document.title = title + ' \u2014 elearn';
  main.replaceChildren(...nodes.flat().filter(Boolean));
  const h = main.querySelector('h1');
  if (h) {
    h.setAttribute('tabindex', '-1');
    h.focus({ preventScroll: false });
  }
}

export function loading(what) {
  return el('p', { class: 'empty', role: 'status' }, 'Loading ' + what + '\u2026');
}

// A labelled form control. field names the API field (422 messages that
// begin with "<field>:" are shown next to it).
export function field(label, control, field, hint) {
  const id = 'f-' + field.replace(/[^a-z0-9]+/gi, '-');
  control.id = id;
  control.setAttribute('data-field', field);
  control.name = field;
  const err = el('p', { class: 'field-error', id: id + '-error', hidden: true });
  control.setAttribute('aria-describedby', id + '-error' + (hint ? ' ' + id + '-hint' : ''));
  return el('div', { class: 'field' },
    el('label', { for: id }, label), control,
    hint ? el('p', { class: 'hint', id: id + '-hint' }, hint) : null, err);
}

// Put a 422 detail next to the field it names, in form. Returns true when
// a field took it.
export function fieldError(form, detail) {
  clearFieldErrors(form);
  const m = /^([A-Za-z_][\w.[\]]*): (.*)$/.exec(detail || '');
  if (!m) return false;
  const control = [...form.querySelectorAll('[data-field]')]
    .find((c) => c.getAttribute('data-field') === m[1]);
  if (!control) return false;
  const err = document.getElementById(control.id + '-error');
  err.textContent = m[2];
  err.hidden = false;
  control.setAttribute('aria-invalid', 'true');
  control.focus();
  return true;
}

export function clearFieldErrors(form) {
  for (const c of form.querySelectorAll('[aria-invalid]')) c.removeAttribute('aria-invalid');
  for (const e of form.querySelectorAll('.field-error')) {
    e.hidden = true;
    e.textContent = '';
  }
}
