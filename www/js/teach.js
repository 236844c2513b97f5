// teach.js -- the instructor's pages: My teaching (own courses, drafts
// included: GET /courses?instructor_id=me), the course editor (create with
// modules; edit fields; add, edit, remove and reorder modules; publish and
// unpublish). A 422 from the API names a field ("title: ...",
// "modules[1].title: ..."); it is shown next to that field.
import * as api from './api.js';
import { $, el, statusBox, errorBox, meta, minutes, show, loading, field, fieldError,
         clearFieldErrors, pageView } from './ui.js';
import { requireRole } from './app.js';

const DIFFICULTIES = [['beginner', 'Beginner'], ['intermediate', 'Intermediate'],
                      ['advanced', 'Advanced']];

export async function teachingPage() {
  if (!requireRole(['instructor', 'admin'], 'My teaching')) return;
  const show = pageView();
  const head = [el('h1', null, 'My teaching'),
                el('p', null, el('a', { href: '#/teaching/new', class: 'button primary',
                                        id: 'new-course' }, 'New course'))];
  show('My teaching', head, loading('your courses'));
  const r = await api.get('/courses?instructor_id=me&page_size=100');
  if (r.status !== 200) {
    show('My teaching', head, statusBox(r), errorBox(r));
    return;
  }
  const rows = r.body.items.map((c) => {
    const toggle = el('button', { type: 'button', class: 'publish', 'data-id': c._id },
                      c.published ? 'Unpublish' : 'Publish');
    toggle.addEventListener('click', async () => {
      toggle.disabled = true;
      const p = await api.request('PATCH', '/courses/' + c._id, { published: !c.published });
      if (p.status === 200) {
        teachingPage();
      } else {
        toggle.disabled = false;
        toggle.after(errorBox(p) || '');
      }
    });
    return el('li', { class: 'teach-row', 'data-id': c._id },
      el('div', null,
        el('h2', null, el('a', { href: '#/courses/' + c._id }, c.title)),
        el('p', { class: 'meta' },
          el('span', { class: 'pill ' + (c.published ? 'published' : 'draft') },
             c.published ? 'published' : 'draft'),
          ' ', (c.modules || []).length + ' modules \u00b7 ' + minutes(c.duration_minutes) +
          ' \u00b7 ' + c.enrollment_count + ' enrolled')),
      el('div', { class: 'row-actions' },
        el('a', { href: '#/teaching/' + c._id, class: 'button' }, 'Edit'), toggle));
  });
  show('My teaching', head, statusBox(r),
       rows.length ? el('ul', { class: 'teach-list', id: 'teach-list' }, ...rows)
         : el('p', { class: 'empty' }, 'No courses yet.'));
}

function courseFields(c) {
  const title = el('input', { type: 'text', maxlength: 200, value: c.title || '' });
  const desc = el('textarea', { rows: 4, maxlength: 5000 }, c.description || '');
  const cat = el('input', { type: 'text', maxlength: 64, value: c.category || '' });
  const diff = el('select', null, ...DIFFICULTIES.map(([v, t]) => el('option', { value: v }, t)));
  diff.value = c.difficulty || 'beginner';
  const tags = el('input', { type: 'text', value: (c.tags || []).join(', ') });
  return {
    nodes: [field('Title', title, 'title'), field('Description', desc, 'description'),
            field('Category', cat, 'category'), field('Difficulty', diff, 'difficulty'),
            field('Tags', tags, 'tags', 'Separated by commas.')],
    value: () => ({
      title: title.value, description: desc.value, category: cat.value, difficulty: diff.value,
      tags: tags.value.split(',').map((t) => t.trim()).filter(Boolean),
    }),
  };
}

function moduleFields(prefix, m) {
  const title = el('input', { type: 'text', maxlength: 200, value: m.title || '' });
  const content = el('textarea', { rows: 2 }, m.content || '');
  const dur = el('input', { type: 'number', min: 0, max: 1000, step: 1,
                            value: m.duration_minutes === undefined ? 10 : m.duration_minutes });
  return {
    nodes: [field('Module title', title, prefix + 'title'),
            field('Content', content, prefix + 'content'),
            field('Minutes', dur, prefix + 'duration_minutes')],
    value: () => ({ title: title.value, content: content.value,
                    duration_minutes: dur.value === '' ? NaN : Number(dur.value) }),
  };
}

// A JSON body keeps what the user typed; the API says what is wrong.
function num(v) {
  return Number.isFinite(v) ? v : null;
}

export async function editorPage(id) {
  if (!requireRole(['instructor', 'admin'], 'the course editor')) return;
  if (id === null) return createForm();
  const show = pageView();
  show('Edit course', el('h1', null, 'Edit course'), loading('the course'));
  const r = await api.get('/courses/' + encodeURIComponent(id));
  if (!show.current()) return;
  if (r.status !== 200) {
    show('Edit course', el('h1', null, 'Edit course'), statusBox(r), errorBox(r));
    return;
  }
  editForm(r);
}

function createForm() {
  const f = courseFields({});
  const published = el('input', { type: 'checkbox' });
  const mods = [];
  const list = el('ol', { class: 'module-edit', id: 'new-modules' });
  const addModule = () => {
    const i = mods.length;
    const mf = moduleFields('modules[' + i + '].', { title: '', content: '' });
    mods.push(mf);
    list.append(el('li', null, ...mf.nodes));
  };
  addModule();
  const out = el('div', { id: 'form-result' });
  const form = el('form', { class: 'card-form', id: 'course-form', novalidate: true },
    ...f.nodes,
    el('div', { class: 'field check' }, published,
       el('label', { for: 'f-published' }, 'Publish now (otherwise it stays a draft)')),
    el('h2', null, 'Modules'), list,
    el('button', { type: 'button', id: 'add-module-row', onclick: addModule }, 'Add another module'),
    el('div', { class: 'actions' }, el('button', { type: 'submit', class: 'primary' },
                                        'Create course')),
    out);
  published.id = 'f-published';
  published.setAttribute('data-field', 'published');
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearFieldErrors(form);
    const body = f.value();
    body.published = published.checked;
    body.modules = mods.map((m) => m.value()).map((m) => ({ ...m,
      duration_minutes: num(m.duration_minutes) }));
    out.replaceChildren(el('p', { role: 'status' }, 'Saving\u2026'));
    const r = await api.request('POST', '/courses', body);
    if (r.status === 201) {
      location.hash = '#/teaching/' + r.body._id;
      return;
    }
    out.replaceChildren(errorBox(r));
    if (r.status === 422) fieldError(form, r.detail);
  });
  show('New course', el('h1', null, 'New course'), form);
}

function editForm(r) {
  const c = r.body;
  const f = courseFields(c);
  const out = el('div', { id: 'form-result', role: 'status' });
  const form = el('form', { class: 'card-form', id: 'course-form', novalidate: true },
    ...f.nodes, el('div', { class: 'actions' },
      el('button', { type: 'submit', class: 'primary' }, 'Save changes')), out);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearFieldErrors(form);
    const p = await api.request('PATCH', '/courses/' + c._id, f.value());
    if (p.status === 200) {
      out.replaceChildren(el('p', { class: 'ok' }, 'Saved.'));
      return;
    }
    out.replaceChildren(errorBox(p));
    if (p.status === 422) fieldError(form, p.detail);
  });

  const publish = el('button', { type: 'button', id: 'toggle-publish' },
                     c.published ? 'Unpublish' : 'Publish');
  publish.addEventListener('click', async () => {
    const p = await api.request('PATCH', '/courses/' + c._id, { published: !c.published });
    if (p.status === 200) editForm(p);
    else out.replaceChildren(errorBox(p));
  });

  show('Edit ' + c.title,
    el('p', null, el('a', { href: '#/teaching' }, '\u2190 My teaching'), ' \u00b7 ',
       el('a', { href: '#/courses/' + c._id }, 'View the course page')),
    el('h1', null, 'Edit course'),
    statusBox(r),
    el('p', { class: 'meta' },
      el('span', { id: 'publish-state', class: 'pill ' + (c.published ? 'published' : 'draft') },
         c.published ? 'published' : 'draft'), ' ', publish),
    meta(c), form, modulesEditor(c));
}

function modulesEditor(c) {
  const mods = [...(c.modules || [])].sort((a, b) => a.order - b.order || (a._id < b._id ? -1 : 1));
  const out = el('div', { id: 'modules-result', role: 'status' });
  const base = '/courses/' + c._id + '/modules';
  const after = async (p, okText) => {
    if (p.status === 200 || p.status === 201) {
      editForm({ ...p, body: p.body });
      const res = $('modules-result');
      if (res) res.replaceChildren(el('p', { class: 'ok' }, okText));
      return true;
    }
    out.replaceChildren(errorBox(p));
    return false;
  };
  // Reorder: number every module 1..n in the new order (one PATCH each
  // whose order changes).
  const move = async (i, d) => {
    const order = mods.map((m) => m._id);
    [order[i], order[i + d]] = [order[i + d], order[i]];
    let last = null;
    for (let k = 0; k < order.length; k++) {
      const m = mods.find((x) => x._id === order[k]);
      if (m.order === k + 1) continue;
      last = await api.request('PATCH', base + '/' + m._id, { order: k + 1 });
      if (last.status !== 200) return after(last);
    }
    if (last) await after(last, 'Order saved.');
  };
  const items = mods.map((m, i) => {
    const mf = moduleFields('', m);
    const form = el('form', { class: 'module-form', 'data-id': m._id, novalidate: true },
      ...mf.nodes,
      el('div', { class: 'row-actions' },
        el('button', { type: 'submit' }, 'Save module'),
        el('button', { type: 'button', class: 'up', disabled: i === 0,
                       'aria-label': 'Move "' + m.title + '" up', onclick: () => move(i, -1) },
           '\u2191 Up'),
        el('button', { type: 'button', class: 'down', disabled: i === mods.length - 1,
                       'aria-label': 'Move "' + m.title + '" down', onclick: () => move(i, 1) },
           '\u2193 Down'),
        el('button', { type: 'button', class: 'remove danger',
                       'aria-label': 'Remove "' + m.title + '"', onclick: async () => {
          await after(await api.request('DELETE', base + '/' + m._id), 'Module removed.');
        } }, 'Remove')));
    // Unique ids per module form.
    for (const n of form.querySelectorAll('[id]')) n.id = n.id + '-' + m._id;
    for (const n of form.querySelectorAll('[for]')) n.setAttribute('for', n.getAttribute('for') + '-' + m._id);
    for (const n of form.querySelectorAll('[aria-describedby]')) {
      n.setAttribute('aria-describedby', n.getAttribute('aria-describedby').split(' ')
        .map((x) => x + '-' + m._id).join(' '));
    }
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      clearFieldErrors(form);
      const v = mf.value();
      const p = await api.request('PATCH', base + '/' + m._id,
                                  { ...v, duration_minutes: num(v.duration_minutes) });
      if (p.status === 422) {
        out.replaceChildren(errorBox(p));
        fieldError(form, p.detail);
        return;
      }
      await after(p, 'Module saved.');
    });
    return el('li', null, form);
  });
  const nf = moduleFields('', { title: '', content: '' });
  const addForm = el('form', { class: 'module-form', id: 'add-module', novalidate: true },
    el('h3', null, 'Add a module'), ...nf.nodes,
    el('button', { type: 'submit', class: 'primary' }, 'Add module'));
  for (const n of addForm.querySelectorAll('[id]')) n.id = n.id + '-new';
  for (const n of addForm.querySelectorAll('[for]')) n.setAttribute('for', n.getAttribute('for') + '-new');
  for (const n of addForm.querySelectorAll('[aria-describedby]')) {
    n.setAttribute('aria-describedby', n.getAttribute('aria-describedby').split(' ')
      .map((x) => x + '-new').join(' '));
  }
  addForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearFieldErrors(addForm);
    const v = nf.value();
    const p = await api.request('POST', base, { ...v, duration_minutes: num(v.duration_minutes) });
    if (p.status === 422) {
      out.replaceChildren(errorBox(p));
      fieldError(addForm, p.detail);
      return;
    }
    await after(p, 'Module added.');
  });
  return el('section', { 'aria-labelledby': 'modules-h' },
    el('h2', { id: 'modules-h' }, mods.length + ' modules \u00b7 ' + minutes(c.duration_minutes)),
    el('p', { class: 'hint' }, 'The course lasts as long as its modules together.'),
    el('ol', { class: 'module-edit', id: 'module-list' }, ...items), addForm, out);
}
