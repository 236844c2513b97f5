// journeys.mjs -- the browser app's journeys in real Chromium against the
// real stack (started by tests/e2e/test_browser.py, which passes the
// addresses and accounts in ELEARN_BROWSER_CONFIG and runs one journey per
// test):  node tests/browser/journeys.mjs NAME...
//
// Every page visited gets axe-core (no serious or critical violation) and
// each journey fails on any console error it did not provoke on purpose.
import { CONFIG, page, axe, shots, fitsNarrow, log, assert, eq, until, api, token, run,
         expectConsole, consoleErrors } from './lib.mjs';

const A = CONFIG.a;  // responder a's nginx
const B = CONFIG.b;  // responder b's nginx (same Redis and store)

function uniq(tag) {
  return tag + '-' + Math.random().toString(16).slice(2, 10);
}

async function noConsoleErrors(p) {
  const errs = consoleErrors(p);
  assert(errs.length === 0, 'console errors: ' + errs.join(' | '));
}

async function loginUI(p, base, who) {
  await p.goto(base + '/#/login');
  await p.fill('#f-email', who.email);
  await p.fill('#f-password', who.password);
  await p.click('#login-form button[type=submit]');
  await p.waitForSelector('#logout');
}

// The catalogue shows cards and the X-Cache badge of the request behind it.
async function catalogueReady(p) {
  await p.waitForSelector('ul.courses a.card');
  const badge = await p.textContent('#results .status .badge');
  assert(['L1', 'L2', 'MISS'].includes(badge), 'X-Cache badge on the catalogue: ' + badge);
  return badge;
}

const journeys = {
  // register -> log in -> filter/search -> enroll -> My learning -> rate ->
  // unenroll -> log out; the catalogue state lives in the URL.
  async learner(ctx) {
    const p = await page(ctx);
    await p.goto(A + '/');
    await catalogueReady(p);
    await axe(p, 'catalogue');
    await fitsNarrow(p, 'catalogue');
    await shots(p, 'catalogue');

    // Filters and sort go into the URL; back, forward and reload keep them.
    await p.selectOption('#f-difficulty', 'beginner');
    await until(() => p.url().includes('difficulty=beginner'), 'difficulty in the URL');
    await p.selectOption('#f-sort-by', 'popular');
    await until(() => p.url().includes('sort_by=popular'), 'sort in the URL');
    await until(async () => (await p.$$eval('ul.courses .pill.beginner', (n) => n.length)) > 0 &&
      (await p.$$eval('ul.courses li', (n) => n.length)) ===
      (await p.$$eval('ul.courses .pill.beginner', (n) => n.length)), 'only beginner courses');
    const firstPopular = await p.textContent('ul.courses a.card h2');
    await p.goBack();
    await until(() => !p.url().includes('sort_by'), 'back: sort gone from the URL');
    await until(async () => (await p.inputValue('#f-sort-by')) === 'recent', 'back: the sort control');
    await p.goForward();
    await until(() => p.url().includes('sort_by=popular'), 'forward');
    await p.reload();
    await catalogueReady(p);
    eq(await p.inputValue('#f-sort-by'), 'popular', 'sort after reload');
    eq(await p.inputValue('#f-difficulty'), 'beginner', 'difficulty after reload');
    eq(await p.textContent('ul.courses a.card h2'), firstPopular, 'same first course after reload');
    // Search by a word of that title.
    const word = firstPopular.split(/\s+/).find((w) => w.length > 3) || firstPopular;
    await p.fill('#f-search', word);
    await until(() => p.url().includes('search='), 'search in the URL');
    await until(async () => {
      const t = await p.$$eval('ul.courses a.card h2', (n) => n.map((x) => x.textContent));
      return t.includes(firstPopular);
    }, 'the searched course listed');
    // Paging: next page in the URL.
    await p.goto(A + '/#/?page=2');
    await until(async () => (await p.textContent('#page-info') || '').startsWith('Page 2'), 'page 2');

    // Register (a 422 first: the message sits next to the password field).
    const email = uniq('learner') + '@example.com';
    await p.goto(A + '/#/register');
    await p.fill('#f-name', 'Lee Learner');
    await p.fill('#f-email', email);
    await p.fill('#f-password', 'short');
    expectConsole(p, /status of 422/);
    await p.click('#register-form button[type=submit]');
    await p.waitForSelector('#f-password-error:not([hidden])');
    assert(/password/i.test(await p.textContent('#f-password-error')) ||
           /10/.test(await p.textContent('#f-password-error')), 'password error text');
    eq(await p.getAttribute('#f-password', 'aria-invalid'), 'true', 'aria-invalid');
    await axe(p, 'register with a field error');
    await shots(p, 'register-422');
    await p.fill('#f-password', 'a-long-enough-password');
    await p.click('#register-form button[type=submit]');
    await p.waitForSelector('#logout');
    assert((await p.textContent('#nav')).includes('Lee Learner'), 'name in the nav');

    // Tokens: refresh token in sessionStorage only; nothing in localStorage
    // or cookies; a reload keeps the session.
    const storage = await p.evaluate(() => ({ local: localStorage.length, cookie: document.cookie,
      session: Object.keys(sessionStorage) }));
    eq(storage.local, 0, 'localStorage is empty');
    eq(storage.cookie, '', 'no cookie');
    eq(storage.session, ['elearn.refresh_token'], 'sessionStorage keys');
    await p.reload();
    await p.waitForSelector('#logout');

    // Enroll from the course page.
    await p.goto(A + '/#/');
    await catalogueReady(p);
    const title = await p.textContent('ul.courses a.card h2');
    await p.click('ul.courses a.card');
    await p.waitForSelector('#enroll');
    await axe(p, 'course page');
    await shots(p, 'course');
    await p.click('#enroll');
    await p.waitForSelector('#unenroll');
    await until(async () => /enrolled/.test(await p.textContent('#action-result')), 'enrolled message');
    const courseUrl = p.url();

    // My learning lists it.
    await p.click('#nav a[href="#/learning"]');
    await p.waitForSelector('#my-courses');
    const mine = await p.$$eval('#my-courses h2', (n) => n.map((x) => x.textContent));
    assert(mine.includes(title), 'My learning lists ' + title);
    eq(await p.textContent('main .status .badge'), 'BYPASS', 'My learning is private');
    await axe(p, 'My learning');
    await shots(p, 'my-learning');

    // Rate it; then unenroll.
    await p.goto(courseUrl);
    await p.waitForSelector('#rate-form');
    await p.selectOption('#f-stars', '4');
    await p.click('#rate-form button[type=submit]');
    await until(async () => /rated/.test(await p.textContent('#action-result')), 'rated message');
    await p.click('#unenroll');
    await p.waitForSelector('#enroll');
    await p.goto(A + '/#/learning');
    await p.waitForSelector('main .status');
    const after = await p.$$eval('#my-courses h2', (n) => n.map((x) => x.textContent));
    assert(!after.includes(title), 'gone from My learning');

    // Log out: everything forgotten.
    await p.click('#logout');
    await p.waitForSelector('#login-form');
    eq(await p.evaluate(() => sessionStorage.length), 0, 'sessionStorage empty after logout');
    assert((await p.textContent('#nav')).includes('Log in'), 'logged out nav');
    await noConsoleErrors(p);
  },

  // create a draft with modules -> not public -> publish -> everywhere at
  // once -> edit/reorder a module -> seen by an anonymous reader on b.
  async instructor(ctx) {
    const p = await page(ctx);
    await loginUI(p, A, CONFIG.instructor);
    await p.click('#nav a[href="#/teaching"]');
    await p.waitForSelector('#new-course');
    await p.click('#new-course');
    await p.waitForSelector('#course-form');
    const title = uniq('Browser course');
    await p.fill('#f-title', title);
    await p.fill('#f-description', 'Made in Chromium by the instructor journey.');
    await p.fill('#f-category', 'browser-tests');
    await p.selectOption('#f-difficulty', 'intermediate');
    await p.fill('#f-tags', 'browser, e2e');
    await p.fill('[data-field="modules[0].title"]', 'Alpha');
    await p.fill('[data-field="modules[0].content"]', 'The first module.');
    await p.fill('[data-field="modules[0].duration_minutes"]', '10');
    await p.click('#add-module-row');
    await p.fill('[data-field="modules[1].title"]', '');
    await p.fill('[data-field="modules[1].content"]', 'The second module.');
    await p.fill('[data-field="modules[1].duration_minutes"]', '20');
    // 422 from the API, next to the module's title field.
    expectConsole(p, /status of 422/);
    await p.click('#course-form button[type=submit]');
    await p.waitForSelector('[id="f-modules-1-title-error"]:not([hidden])');
    eq(await p.getAttribute('[data-field="modules[1].title"]', 'aria-invalid'), 'true',
       'the module title is marked invalid');
    await axe(p, 'new course with a field error');
    await shots(p, 'new-course-422');
    await p.fill('[data-field="modules[1].title"]', 'Beta');
    await p.click('#course-form button[type=submit]');
    await p.waitForSelector('#toggle-publish');
    const id = p.url().split('/').pop();
    eq(await p.textContent('#publish-state'), 'draft', 'created as a draft');
    await axe(p, 'editor');
    await shots(p, 'editor');

    // A draft: 404 to anonymous readers on both responders; not listed.
    for (const base of [A, B]) {
      eq((await api(base, 'GET', '/courses/' + id)).status, 404, 'draft hidden on ' + base);
      const l = await api(base, 'GET', '/courses?category=browser-tests&page_size=100');
      assert(!l.body.items.some((c) => c._id === id), 'draft not listed on ' + base);
    }
    // My teaching lists it as a draft.
    await p.goto(A + '/#/teaching');
    await p.waitForSelector('#teach-list li[data-id="' + id + '"]');
    eq(await p.textContent('#teach-list li[data-id="' + id + '"] .pill'), 'draft', 'draft pill');
    await axe(p, 'My teaching');
    await shots(p, 'my-teaching');

    // Publish: visible on every responder at once.
    await p.click('#teach-list li[data-id="' + id + '"] button.publish');
    await until(async () => (await p.textContent('#teach-list li[data-id="' + id + '"] .pill')) ===
      'published', 'published pill');
    for (const base of [A, B]) {
      await until(async () => (await api(base, 'GET', '/courses/' + id)).status === 200,
                  'published course on ' + base, 5000);
    }

    // Edit: rename module Beta, move it up, add Gamma, remove Alpha.
    await p.goto(A + '/#/teaching/' + id);
    await p.waitForSelector('#module-list');
    const forms = await p.$$('#module-list form.module-form');
    eq(forms.length, 2, 'two modules');
    const betaId = await forms[1].getAttribute('data-id');
    await p.fill('form[data-id="' + betaId + '"] [data-field="title"]', 'Beta, revised');
    await p.click('form[data-id="' + betaId + '"] button[type=submit]');
    await until(async () => /saved/i.test(await p.textContent('#modules-result')), 'module saved');
    await p.click('form[data-id="' + betaId + '"] button.up');
    await until(async () => /Order saved/.test(await p.textContent('#modules-result')), 'reordered');
    await p.fill('#add-module [data-field="title"]', 'Gamma');
    await p.fill('#add-module [data-field="content"]', 'Third.');
    await p.fill('#add-module [data-field="duration_minutes"]', '5');
    await p.click('#add-module button[type=submit]');
    await until(async () => /added/.test(await p.textContent('#modules-result')), 'module added');
    const alphaId = (await p.$$eval('#module-list form.module-form', (fs) => fs.map((f) =>
      [f.dataset.id, f.querySelector('[data-field="title"]').value])))
      .find(([, t]) => t === 'Alpha')[0];
    await p.click('form[data-id="' + alphaId + '"] button.remove');
    await until(async () => /removed/.test(await p.textContent('#modules-result')), 'module removed');

    // An anonymous reader on the other responder sees it all, in order.
    const want = ['Beta, revised', 'Gamma'];
    await until(async () => {
      const r = await api(B, 'GET', '/courses/' + id);
      return r.status === 200 && JSON.stringify(r.body.modules.map((m) => m.title)) ===
        JSON.stringify(want) && r.body.duration_minutes === 25;
    }, 'the edits on responder b', 5000);
    // A second tab, never logged in: an anonymous reader of responder b.
    const q = await ctx.newPage();
    q.__errors = [];
    q.on('console', (m) => { if (m.type() === 'error') q.__errors.push(m.text()); });
    await q.goto(B + '/#/courses/' + id);
    await q.waitForSelector('ol.modules h3');
    eq(await q.$$eval('ol.modules h3', (n) => n.map((x) => x.textContent)), want,
       'modules on b in the browser');
    await axe(q, 'course page on b');
    eq(q.__errors, [], 'console errors on b');
    await noConsoleErrors(p);
  },

  // the dashboard moves when traffic comes; invalidate shows a MISS next.
  async admin(ctx) {
    const p = await page(ctx);
    await loginUI(p, A, CONFIG.admin);
    await p.click('#nav a[href="#/admin"]');
    await p.waitForSelector('figure.chart[data-chart="rps"]');
    // Polling every 0.5 s from here on, so the charts fill quickly.
    await p.goto(A + '/#/admin?every=500');
    await p.waitForSelector('figure.chart[data-chart="rps"]');
    await until(async () => (await p.$$('figure.chart')).length >= 7, 'the charts');
    const before = Number(await p.textContent('#cluster-requests'));
    const rpsBefore = await p.getAttribute('figure[data-chart="rps"] path.line', 'd');
    // Traffic on both responders.
    const ids = (await api(A, 'GET', '/courses?page_size=20')).body.items.map((c) => c._id);
    await Promise.all([A, B].flatMap((base) => ids.map((cid) => api(base, 'GET', '/courses/' + cid))));
    await until(async () => Number(await p.textContent('#cluster-requests')) >= before + 40,
                'the request count to move', 15000);
    await until(async () => (await p.getAttribute('figure[data-chart="rps"] path.line', 'd')) !==
      rpsBefore && Number(await p.textContent('figure[data-chart="rps"] [data-value="req/s"]')) > 0,
    'the requests/s chart to move', 15000);
    // A few more samples with traffic between them, for lines worth a look.
    for (let i = 0; i < 4; i++) {
      const n0 = Number(await p.textContent('#cluster-requests'));
      await Promise.all(ids.slice(0, 5 + 3 * i).map((cid) => api(B, 'GET', '/courses/' + cid)));
      await until(async () => Number(await p.textContent('#cluster-requests')) > n0 + 2, 'a sample');
    }
    eq(await p.textContent('#redis-state'), 'up', 'Redis health');
    eq(await p.textContent('#db-state'), 'up', 'store health');
    await axe(p, 'cache dashboard');
    await shots(p, 'dashboard');

    // Invalidate a cached course: the next read is a MISS.
    const cid = ids[0];
    await until(async () => (await api(A, 'GET', '/courses/' + cid)).layer === 'L1', 'cached in L1');
    await p.fill('#invalidate-id', cid);
    await p.click('#invalidate-form button[type=submit]');
    await p.waitForSelector('#invalidate-result .badge');
    eq(await p.textContent('#invalidate-result .badge'), 'MISS', 'the next read is a MISS');
    await noConsoleErrors(p);
  },

  // an expired access token is refreshed once, transparently; a revoked
  // login (logged out elsewhere) sends the tab to the login page.
  async session(ctx) {
    const p = await page(ctx);
    const email = uniq('session') + '@example.com';
    const password = 'session-password-1';
    eq((await api(A, 'POST', '/auth/register', { email, password, name: 'Sam Session' })).status,
       201, 'register');
    await loginUI(p, A, { email, password });

    // Expiry: the server answers the next call 401 "expired" (Playwright
    // stands in for a clock 15 minutes on); the app refreshes and retries.
    let faked = 0;
    const refreshes = [];
    p.on('request', (r) => { if (r.url().endsWith('/api/auth/refresh')) refreshes.push(r); });
    await p.route('**/api/users/me/enrollments*', async (route) => {
      if (faked++ === 0) {
        await route.fulfill({ status: 401, contentType: 'application/json',
                              headers: { 'WWW-Authenticate': 'Bearer' },
                              body: '{"detail":"Token has expired"}' });
      } else {
        await route.continue();
      }
    });
    expectConsole(p, /status of 401/);
    await p.goto(A + '/#/');
    await catalogueReady(p);
    await p.click('#nav a[href="#/learning"]');
    await p.waitForSelector('#main .status .badge');
    eq(await p.textContent('main h1'), 'My learning', 'still in after expiry');
    eq([faked, refreshes.length], [2, 1], 'one faked 401, one refresh, one retry');
    await p.unroute('**/api/users/me/enrollments*');
    const rt = await p.evaluate(() => sessionStorage.getItem('elearn.refresh_token'));
    assert(rt && rt.split('.').length === 3, 'a rotated refresh token is kept');

    // Logged out elsewhere: someone uses this tab's refresh token and then
    // logs that login out. The tab's next call is refused; its refresh is
    // a reuse; it lands on the login page with a message.
    const other = await api(A, 'POST', '/auth/refresh', { refresh_token: rt });
    eq(other.status, 200, 'the refresh elsewhere');
    eq((await api(A, 'DELETE', '/auth/logout', undefined, other.body.access_token)).status, 200,
       'logout elsewhere');
    await p.goto(A + '/#/');
    await p.goto(A + '/#/learning');
    await p.waitForSelector('#login-notice');
    assert(/session has ended/.test(await p.textContent('#login-notice')), 'the message');
    eq(await p.evaluate(() => sessionStorage.length), 0, 'tokens forgotten');
    await axe(p, 'login after revocation');
    await shots(p, 'session-ended');
    // Reload: still logged out, nothing to restore.
    await p.reload();
    await p.waitForSelector('#nav a[href="#/login"]');
    await noConsoleErrors(p);
  },

  // the API is down (nginx answers 502): the page says so and offers a
  // retry; a throttled login shows its Retry-After.
  async down(ctx) {
    const p = await page(ctx);
    expectConsole(p, /status of 50[234]/);
    await p.goto(CONFIG.down + '/');
    await p.waitForSelector('#results .error');
    assert(/not answering/.test(await p.textContent('#banner')), 'the banner says the API is down');
    assert(await p.isVisible('#results .error button'), 'a Retry button');
    await axe(p, 'API down');
    await shots(p, 'api-down');

    const q = await page(ctx);
    expectConsole(q, /status of (401|429)/);
    await q.goto(A + '/#/login');
    const email = uniq('throttled') + '@example.com';
    for (let i = 0; i < 6; i++) {
      await q.fill('#f-email', email);
      await q.fill('#f-password', 'wrong-password-' + i);
      await q.click('#login-form button[type=submit]');
      await q.waitForSelector('#form-result .error');
      if (/Try again in \d+ s/.test(await q.textContent('#form-result'))) break;
    }
    assert(/Try again in \d+ s/.test(await q.textContent('#form-result')), '429 Retry-After shown');
    await noConsoleErrors(p);
    await noConsoleErrors(q);
  },

  // the database cannot answer a cold read: the API's 503 is shown, with
  // its detail, on the page and in the banner.
  async dbdown(ctx) {
    const p = await page(ctx);
    expectConsole(p, /status of 503/);
    await p.goto(A + '/#/courses/' + CONFIG.cold);
    await p.waitForSelector('main .error');
    assert(/503/.test(await p.textContent('main .error')), 'the status on the page');
    assert(/unavailable/i.test(await p.textContent('main .error')), 'the detail on the page');
    assert(/unavailable/i.test(await p.textContent('#banner')), 'the banner');
    await axe(p, 'database down');
    await shots(p, 'database-down');
    await noConsoleErrors(p);
  },

  // user-supplied text is shown as text: no element, no script, no dialog.
  async xss(ctx) {
    const p = await page(ctx);
    let dialogs = 0;
    p.on('dialog', async (d) => { dialogs++; await d.dismiss(); });
    const t = await token(A, CONFIG.instructor);
    const evil = '<img src=x onerror=alert(1)>';
    const r = await api(A, 'POST', '/courses', {
      title: evil, description: '<script>alert(2)</script> "quoted" & more',
      category: 'xss-' + Math.random().toString(16).slice(2, 8), difficulty: 'beginner',
      tags: ['<b>bold</b>'], published: true,
      modules: [{ title: '<svg onload=alert(3)>', content: 'x', duration_minutes: 1 }] }, t);
    eq(r.status, 201, 'create');
    await p.goto(A + '/#/?category=' + encodeURIComponent(r.body.category));
    await p.waitForSelector('ul.courses a.card h2');
    eq(await p.textContent('ul.courses a.card h2'), evil, 'the title as text in the list');
    await p.goto(A + '/#/courses/' + r.body._id);
    await p.waitForSelector('article.course h1');
    eq(await p.textContent('article.course h1'), evil, 'the title as text');
    eq(await p.textContent('ol.modules h3'), '<svg onload=alert(3)>', 'module title as text');
    eq(await p.$$eval('main img, main script, main svg:not(.chart svg)', (n) => n.length), 0,
       'no element made from user text');
    eq(dialogs, 0, 'no dialog');
    await noConsoleErrors(p);
  },

  // /docs/: Swagger UI (from npm, served locally) renders every operation
  // of /api/openapi.json under the page's CSP. (axe is not run here:
  // Swagger UI's own markup has serious findings -- nested-interactive
  // operation headers, contrast of its method labels -- that only a change
  // to Swagger UI can fix; the app's pages are all checked.)
  async docs(ctx) {
    const p = await page(ctx);
    await p.goto(A + '/docs/');
    const doc = (await api(A, 'GET', '/openapi.json')).body;
    const n = Object.values(doc.paths).reduce((k, item) => k + Object.keys(item).length, 0);
    await until(async () => (await p.$$('.opblock')).length === n, n + ' operations shown');
    eq(await p.getAttribute('#servers', 'aria-label'), 'Server', 'the servers menu is labelled');
    await shots(p, 'docs');
    await noConsoleErrors(p);
  },

  // the main flows with the keyboard alone.
  async keyboard(ctx) {
    const p = await page(ctx);
    await p.goto(A + '/');
    await catalogueReady(p);
    // Tab to the first course card, Enter opens it.
    let onCard = false;
    for (let i = 0; i < 40 && !onCard; i++) {
      await p.keyboard.press('Tab');
      onCard = await p.evaluate(() => document.activeElement.classList.contains('card'));
    }
    assert(onCard, 'a course card is reachable with Tab');
    await p.keyboard.press('Enter');
    await p.waitForSelector('article.course h1');
    // Focus moved to the new page's heading.
    eq(await p.evaluate(() => document.activeElement.tagName), 'H1', 'focus on the heading');
    // Log in with the keyboard: Tab to the nav's Log in link.
    await p.goto(A + '/#/login');
    await p.waitForSelector('#login-form');
    const email = uniq('keys') + '@example.com';
    eq((await api(A, 'POST', '/auth/register', { email, password: 'keyboard-only-1',
                                                  name: 'Kim Keys' })).status, 201, 'register');
    await p.keyboard.press('Tab'); // from the focused h1 to the email field
    eq(await p.evaluate(() => document.activeElement.id), 'f-email', 'Tab reaches the email field');
    await p.keyboard.type(email);
    await p.keyboard.press('Tab');
    await p.keyboard.type('keyboard-only-1');
    await p.keyboard.press('Enter');
    await p.waitForSelector('#logout');
    // Enroll with the keyboard.
    await p.goto(A + '/#/');
    await catalogueReady(p);
    const href = await p.getAttribute('ul.courses a.card', 'href');
    await p.goto(A + '/' + href);
    await p.waitForSelector('#enroll');
    let onEnroll = false;
    for (let i = 0; i < 60 && !onEnroll; i++) {
      await p.keyboard.press('Tab');
      onEnroll = await p.evaluate(() => document.activeElement.id === 'enroll');
    }
    assert(onEnroll, 'the Enroll button is reachable with Tab');
    await p.keyboard.press('Enter');
    await p.waitForSelector('#unenroll');
    // A visible focus indicator.
    await p.focus('#unenroll');
    const outline = await p.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
    assert(outline !== 'none', 'focus is visible');
    await noConsoleErrors(p);
  },
};

run(journeys);
