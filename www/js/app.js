// app.js -- the elearn browser app: routing, navigation, and the learner's
// pages (catalogue, course, log in, register, My learning). The
// instructor's pages are in teach.js, the admin's dashboard in admin.js.
//
// Routes live in the URL hash, with the catalogue's filters, search, sort
// and page as its query (#/?search=go&sort_by=popular&page=2), so back,
// forward and reload all work.
import * as api from './api.js';
import { $, el, statusBox, errorBox, meta, minutes, show, loading, field, fieldError,
         clearFieldErrors, requestLine, navigated, pageView } from './ui.js';
import { teachingPage, editorPage } from './teach.js';
import { adminPage, stopAdmin } from './admin.js';

const PAGE_SIZE = 12;
let flash = null; // a message for the next page (after a redirect)

// ---- chrome -------------------------------------------------------------

function nav() {
  const u = api.currentUser();
  const link = (href, text) => el('a', { href, 'aria-current': isCurrent(href) ? 'page' : null },
                                  text);
  const items = [link('#/', 'Catalogue')];
  if (u) {
    items.push(link('#/learning', 'My learning'));
    if (api.hasRole('instructor', 'admin')) items.push(link('#/teaching', 'My teaching'));
    if (api.hasRole('admin')) items.push(link('#/admin', 'Cache'));
    items.push(el('span', { class: 'who' }, u.name + ' (' + u.role + ')'),
               el('button', { type: 'button', class: 'link', id: 'logout', onclick: doLogout },
                  'Log out'));
  } else {
    items.push(link('#/login', 'Log in'), link('#/register', 'Register'));
  }
  $('nav').replaceChildren(el('ul', null, ...items.map((i) => el('li', null, i))));
}

function isCurrent(href) {
  const h = location.hash || '#/';
  return href === '#/' ? h === '#/' || h.startsWith('#/?') : h.startsWith(href);
}

function banner(text, kind) {
  const b = $('banner');
  if (!text) {
    b.hidden = true;
    b.replaceChildren();
    return;
  }
  b.className = 'banner ' + (kind || 'warn');
  b.replaceChildren(el('span', null, text),
    el('button', { type: 'button', class: 'link', onclick: () => banner(null) }, 'Dismiss'));
  b.hidden = false;
}

// Every response: the footer shows the last one with its X-Cache badge;
// trouble a person should know about goes in the banner.
api.onSession((event, detail) => {
  if (event === 'request') {
    $('last-request').replaceChildren('Last request: ', requestLine(detail));
    if (detail.status === 0 || detail.status === 502 || detail.status === 504 ||
        detail.status === 503 || detail.status === 429) {
      banner(detail.detail, 'error');
    } else if (detail.status && detail.status < 500 && !$('banner').hidden &&
               $('banner').classList.contains('error')) {
      banner(null); // the server answers again
    }
  } else if (event === 'ended') {
    flash = detail;
    nav();
    location.hash = '#/login';
  } else if (event === 'changed') {
    nav();
  }
});

async function doLogout() {
  await api.logout();
  flash = 'You are logged out.';
  location.hash = '#/login';
}

// ---- catalogue ----------------------------------------------------------

function catalogueState() {
  const q = new URLSearchParams((location.hash.split('?')[1]) || '');
  const page = parseInt(q.get('page') || '1', 10);
  return {
    search: q.get('search') || '', category: q.get('category') || '',
    difficulty: q.get('difficulty') || '', sort: q.get('sort_by') || 'recent',
    page: Number.isFinite(page) && page > 0 ? page : 1,
  };
}

function catalogueHash(s) {
  const q = new URLSearchParams();
  if (s.search) q.set('search', s.search);
  if (s.category) q.set('category', s.category);
  if (s.difficulty) q.set('difficulty', s.difficulty);
  if (s.sort && s.sort !== 'recent') q.set('sort_by', s.sort);
  if (s.page > 1) q.set('page', String(s.page));
  const qs = q.toString();
  return '#/' + (qs ? '?' + qs : '');
}

const categories = new Set();
let categoriesLoaded = false;

function select(options, value) {
  const s = el('select', null, ...options.map(([v, t]) => el('option', { value: v }, t)));
  s.value = value;
  return s;
}

let catalogueSeq = 0;

function catalogueForm(s) {
  const search = el('input', { type: 'search', maxlength: 200, autocomplete: 'off',
                               placeholder: 'title, description or tag', value: s.search });
  const cat = select([['', 'All categories'], ...[...categories].sort().map((c) => [c, c])],
                     s.category);
  if (s.category && !categories.has(s.category)) cat.append(el('option', { value: s.category },
                                                                s.category));
  cat.value = s.category;
  const diff = select([['', 'Any difficulty'], ['beginner', 'Beginner'],
                       ['intermediate', 'Intermediate'], ['advanced', 'Advanced']], s.difficulty);
  const sort = select([['recent', 'Most recent'], ['popular', 'Most popular'],
                       ['top_rated', 'Top rated'], ['duration', 'Shortest first']], s.sort);
  const form = el('form', { class: 'filters', role: 'search', id: 'filters' },
    field('Search', search, 'search'), field('Category', cat, 'category'),
    field('Difficulty', diff, 'difficulty'), field('Sort by', sort, 'sort_by'));
  const go = (reset) => {
    const cur = catalogueState();
    const next = { search: search.value.trim(), category: cat.value, difficulty: diff.value,
                   sort: sort.value, page: reset ? 1 : cur.page };
    location.hash = catalogueHash(next);
  };
  let t = null;
  search.addEventListener('input', () => { clearTimeout(t); t = setTimeout(() => go(true), 300); });
  form.addEventListener('submit', (e) => { e.preventDefault(); clearTimeout(t); go(true); });
  for (const c of [cat, diff, sort]) c.addEventListener('change', () => go(true));
  return form;
}

async function loadCategories() {
  if (categoriesLoaded) return;
  categoriesLoaded = true;
  for (let page = 1; page <= 5; page++) {
    const r = await api.get('/courses?page_size=100&page=' + page);
    if (r.status !== 200 || !r.body || !Array.isArray(r.body.items)) return;
    r.body.items.forEach((c) => c.category && categories.add(c.category));
    if (page * 100 >= (r.body.total || 0)) break;
  }
  const sel = $('f-category');
  if (sel) {
    const v = sel.value;
    sel.replaceChildren(el('option', { value: '' }, 'All categories'),
                        ...[...categories].sort().map((c) => el('option', { value: c }, c)));
    sel.value = v;
  }
}

function courseCard(c) {
  return el('li', null,
    el('a', { class: 'card', href: '#/courses/' + encodeURIComponent(c._id) },
      el('h2', null, c.title), meta(c)));
}

async function cataloguePage() {
  const show = pageView();
  const s = catalogueState();
  let results = $('results');
  if (!results || !$('filters')) {
    show('Courses', el('h1', null, 'Courses'), catalogueForm(s),
         el('section', { id: 'results', 'aria-live': 'polite', 'aria-busy': 'true' },
            loading('courses')));
    results = $('results');
    loadCategories();
  } else {
    // Back/forward within the catalogue: keep the form (and focus), sync it.
    for (const [f, v] of [['search', s.search], ['category', s.category],
                          ['difficulty', s.difficulty], ['sort_by', s.sort]]) {
      const c = $('f-' + f.replace('_', '-'));
      if (c && document.activeElement !== c) c.value = v;
    }
    results.setAttribute('aria-busy', 'true');
  }
  const q = new URLSearchParams();
  if (s.search) q.set('search', s.search);
  if (s.category) q.set('category', s.category);
  if (s.difficulty) q.set('difficulty', s.difficulty);
  if (s.sort !== 'recent') q.set('sort_by', s.sort);
  if (s.page > 1) q.set('page', String(s.page));
  q.set('page_size', String(PAGE_SIZE));
  const seq = ++catalogueSeq;
  const r = await api.get('/courses?' + q);
  if (seq !== catalogueSeq || !show.current() || !$('results')) return;
  results.removeAttribute('aria-busy');
  if (r.status !== 200) {
    results.replaceChildren(statusBox(r), errorBox(r,
      el('button', { type: 'button', onclick: () => cataloguePage() }, 'Retry')));
    return;
  }
  const items = r.body.items || [];
  const pages = Math.max(1, Math.ceil((r.body.total || 0) / PAGE_SIZE));
  const pageLink = (p, text, rel) => p < 1 || p > pages
    ? el('span', { class: 'disabled', 'aria-disabled': 'true' }, text)
    : el('a', { href: catalogueHash({ ...s, page: p }), rel }, text);
  results.replaceChildren(
    statusBox(r),
    items.length ? el('ul', { class: 'courses' }, ...items.map(courseCard))
      : el('p', { class: 'empty' }, 'No course matches.'),
    el('nav', { class: 'pager', 'aria-label': 'Pages' },
      pageLink(s.page - 1, '\u2190 Previous', 'prev'),
      el('span', { id: 'page-info' }, 'Page ' + s.page + ' of ' + pages + ' \u00b7 ' +
         (r.body.total || 0) + ' courses'),
      pageLink(s.page + 1, 'Next \u2192', 'next')));
}

// ---- one course ---------------------------------------------------------

async function enrolledIn(id) {
  // The first 100 of the caller's enrollments; enough for the course page.
  const r = await api.get('/users/me/enrollments?page_size=100');
  return r.status === 200 && r.body.items.some((c) => c._id === id);
}

async function coursePage(id) {
  const show = pageView();
  show('Course', el('p', null, el('a', { href: '#/' }, '\u2190 Back to the catalogue')),
       loading('the course'));
  const r = await api.get('/courses/' + encodeURIComponent(id));
  if (r.status !== 200) {
    show('Course', el('h1', null, r.status === 404 ? 'Course not found' : 'Course'),
         statusBox(r), errorBox(r), el('p', null, el('a', { href: '#/' }, 'Back to the catalogue')));
    return;
  }
  const c = r.body;
  const modules = [...(c.modules || [])].sort((a, b) => (a.order - b.order));
  const actions = el('div', { class: 'actions', id: 'course-actions' });
  if (!show.current()) return;
  const canEdit = api.hasRole('admin') ||
    (api.hasRole('instructor') && api.currentUser()._id === c.instructor_id);
  show(c.title,
    el('p', null, el('a', { href: '#/' }, '\u2190 Back to the catalogue')),
    statusBox(r),
    el('article', { class: 'course' },
      el('h1', null, c.title), meta(c),
      el('ul', { class: 'tags', 'aria-label': 'Tags' }, ...(c.tags || []).map((t) => el('li', null, t))),
      el('p', { class: 'desc' }, c.description),
      canEdit ? el('p', null, el('a', { href: '#/teaching/' + c._id }, 'Edit this course')) : null,
      actions,
      el('h2', null, modules.length + (modules.length === 1 ? ' module' : ' modules') + ' \u00b7 ' +
         minutes(c.duration_minutes)),
      el('ol', { class: 'modules' }, ...modules.map((m) => el('li', null,
        el('h3', null, m.title), el('div', { class: 'meta' }, minutes(m.duration_minutes)),
        el('p', null, m.content))))));
  await courseActions(c, actions);
}

async function courseActions(c, box) {
  if (!api.currentUser()) {
    box.replaceChildren(el('p', null, el('a', { href: '#/login' }, 'Log in'),
                           ' to enroll in this course.'));
    return;
  }
  if (c.published === false) {
    box.replaceChildren(el('p', { class: 'hint' }, 'A draft: publish it to let learners enroll.'));
    return;
  }
  const enrolled = await enrolledIn(c._id);
  const msg = el('p', { class: 'result', role: 'status', id: 'action-result' });
  const act = async (method, path, body, done) => {
    const r = await api.request(method, path, body);
    if (r.status === 200) {
      done(r);
    } else {
      msg.replaceChildren(errorBox(r) || '');
    }
  };
  if (!enrolled) {
    box.replaceChildren(el('button', { type: 'button', id: 'enroll', class: 'primary', onclick: () =>
      act('POST', '/courses/' + c._id + '/enroll', undefined, (r) => {
        c.enrollment_count = r.body.enrollment_count;
        courseActions(c, box).then(() => {
          $('action-result').textContent = 'You are enrolled. It is in My learning.';
        });
      }) }, 'Enroll'), msg);
    return;
  }
  const stars = el('select', null, ...[5, 4, 3, 2, 1].map((n) =>
    el('option', { value: n }, n + (n === 1 ? ' star' : ' stars'))));
  const rateForm = el('form', { class: 'rate', id: 'rate-form' },
    field('Your rating', stars, 'stars'),
    el('button', { type: 'submit' }, 'Rate'));
  rateForm.addEventListener('submit', (e) => {
    e.preventDefault();
    clearFieldErrors(rateForm);
    act('PUT', '/courses/' + c._id + '/rating', { stars: Number(stars.value) }, (r) => {
      msg.textContent = 'Thanks! The course is now rated ' + r.body.rating.toFixed(1) +
        ' from ' + r.body.rating_count + ' ratings.';
    });
  });
  box.replaceChildren(
    el('p', null, 'You are enrolled in this course.'),
    rateForm,
    el('button', { type: 'button', id: 'unenroll', onclick: () =>
      act('DELETE', '/courses/' + c._id + '/enroll', undefined, () => {
        courseActions(c, box).then(() => {
          $('action-result').textContent = 'You left this course.';
        });
      }) }, 'Unenroll'),
    msg);
}

// ---- log in, register ----------------------------------------------------

function loginPage() {
  const email = el('input', { type: 'email', autocomplete: 'username', required: true });
  const pw = el('input', { type: 'password', autocomplete: 'current-password', required: true });
  const out = el('div', { id: 'form-result' });
  const form = el('form', { class: 'card-form', id: 'login-form', novalidate: true },
    field('Email', email, 'email'), field('Password', pw, 'password'),
    el('button', { type: 'submit', class: 'primary' }, 'Log in'), out);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    out.replaceChildren(el('p', { role: 'status' }, 'Logging in\u2026'));
    const r = await api.login(email.value.trim(), pw.value);
    if (r.status === 200) {
      flash = null;
      location.hash = '#/learning';
    } else {
      out.replaceChildren(errorBox(r));
      if (r.status === 422) fieldError(form, r.detail);
    }
  });
  const note = flash;
  flash = null;
  show('Log in', el('h1', null, 'Log in'),
       note ? el('p', { class: 'notice', role: 'alert', id: 'login-notice' }, note) : null, form,
       el('p', null, 'New here? ', el('a', { href: '#/register' }, 'Create an account'), '.'));
}

function registerPage() {
  const name = el('input', { type: 'text', autocomplete: 'name', required: true });
  const email = el('input', { type: 'email', autocomplete: 'email', required: true });
  const pw = el('input', { type: 'password', autocomplete: 'new-password', required: true,
                           minlength: 10 });
  const out = el('div', { id: 'form-result' });
  const form = el('form', { class: 'card-form', id: 'register-form', novalidate: true },
    field('Name', name, 'name'), field('Email', email, 'email'),
    field('Password', pw, 'password', 'At least 10 characters.'),
    el('button', { type: 'submit', class: 'primary' }, 'Create account'), out);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearFieldErrors(form);
    out.replaceChildren(el('p', { role: 'status' }, 'Creating your account\u2026'));
    const r = await api.register(email.value.trim(), pw.value, name.value.trim());
    if (r.status !== 201) {
      out.replaceChildren(errorBox(r));
      if (r.status === 422) fieldError(form, r.detail);
      return;
    }
    const l = await api.login(email.value.trim(), pw.value);
    if (l.status === 200) location.hash = '#/';
    else out.replaceChildren(errorBox(l));
  });
  show('Register', el('h1', null, 'Create an account'), form,
       el('p', null, 'Already have one? ', el('a', { href: '#/login' }, 'Log in'), '.'));
}

// ---- My learning -----------------------------------------------------------

async function learningPage() {
  if (!api.currentUser()) {
    flash = 'Log in to see your courses.';
    location.hash = '#/login';
    return;
  }
  const show = pageView();
  const q = new URLSearchParams((location.hash.split('?')[1]) || '');
  const page = Math.max(1, parseInt(q.get('page') || '1', 10) || 1);
  show('My learning', el('h1', null, 'My learning'), loading('your courses'));
  const r = await api.get('/users/me/enrollments?page_size=' + PAGE_SIZE + '&page=' + page);
  if (r.status !== 200) {
    show('My learning', el('h1', null, 'My learning'), statusBox(r), errorBox(r));
    return;
  }
  const pages = Math.max(1, Math.ceil(r.body.total / PAGE_SIZE));
  show('My learning', el('h1', null, 'My learning'), statusBox(r),
    r.body.items.length
      ? el('ul', { class: 'courses', id: 'my-courses' }, ...r.body.items.map((c) => el('li', null,
          el('a', { class: 'card', href: '#/courses/' + encodeURIComponent(c._id) },
            el('h2', null, c.title), meta(c),
            el('p', { class: 'hint' }, 'Enrolled ' + c.enrolled_at.slice(0, 10))))))
      : el('p', { class: 'empty' }, 'You are not enrolled in any course yet. ',
           el('a', { href: '#/' }, 'Browse the catalogue'), '.'),
    pages > 1 ? el('nav', { class: 'pager', 'aria-label': 'Pages' },
      page > 1 ? el('a', { href: '#/learning?page=' + (page - 1) }, '\u2190 Previous') : null,
      el('span', null, 'Page ' + page + ' of ' + pages),
      page < pages ? el('a', { href: '#/learning?page=' + (page + 1) }, 'Next \u2192') : null)
      : null);
}

// ---- routing ----------------------------------------------------------------

function route() {
  const h = location.hash || '#/';
  const path = h.slice(1).split('?')[0];
  let m;
  navigated();
  nav();
  if (!path.startsWith('/admin')) stopAdmin();
  if (path === '/' || path === '') return cataloguePage();
  if ((m = /^\/courses\/([^/]+)$/.exec(path))) return coursePage(decodeURIComponent(m[1]));
  if (path === '/login') return loginPage();
  if (path === '/register') return registerPage();
  if (path === '/learning') return learningPage();
  if (path === '/teaching') return teachingPage();
  if (path === '/teaching/new') return editorPage(null);
  if ((m = /^\/teaching\/([^/]+)$/.exec(path))) return editorPage(decodeURIComponent(m[1]));
  if (path === '/admin') return adminPage();
  show('Not found', el('h1', null, 'Page not found'),
       el('p', null, el('a', { href: '#/' }, 'Go to the catalogue')));
}

// Pages that need a role send others to log in.
export function requireRole(roles, what) {
  if (api.hasRole(...roles)) return true;
  flash = api.currentUser() ? 'Your account cannot open ' + what + '.'
    : 'Log in to open ' + what + '.';
  location.hash = '#/login';
  return false;
}

window.addEventListener('hashchange', route);
api.restore().finally(() => {
  nav();
  route();
});
