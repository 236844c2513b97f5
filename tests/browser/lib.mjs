// lib.mjs -- what the browser journeys share: Debian's chromium driven by
// playwright-core (never a downloaded browser), console-error capture,
// axe-core on every page, screenshots at 1280 and 375 px, small awaits.
import { createRequire } from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const require = createRequire(import.meta.url);
const { chromium } = require('playwright-core');
const AXE = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

export const CONFIG = JSON.parse(process.env.ELEARN_BROWSER_CONFIG || '{}');

const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
              '--disable-background-networking', '--disable-component-update', '--disable-sync'];

// A fresh profile (--user-data-dir) per run, removed afterwards.
export async function launch() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'elearn-chromium-'));
  const ctx = await chromium.launchPersistentContext(dir, {
    executablePath: '/usr/bin/chromium', args: ARGS, headless: true,
    viewport: { width: 1280, height: 900 },
  });
  const close = ctx.close.bind(ctx);
  ctx.close = async () => {
    await close();
    fs.rmSync(dir, { recursive: true, force: true });
  };
  return ctx;
}

// A page that records console errors and uncaught exceptions; the journey
// fails at the end if there were any it did not expect.
export async function page(ctx) {
  const p = ctx.pages()[0] && !ctx.pages()[0].__used ? ctx.pages()[0] : await ctx.newPage();
  p.__used = true;
  p.__errors = [];
  p.__expected = [];
  p.on('console', (m) => {
    if (m.type() === 'error') p.__errors.push(m.text());
  });
  p.on('pageerror', (e) => p.__errors.push('uncaught: ' + e.message));
  // Which URL a "Failed to load resource" message was about.
  p.on('response', (r) => {
    if (r.status() >= 400) p.__errors.push('(HTTP ' + r.status() + ' ' + r.url() + ')');
  });
  // Every API response, for test_browser.py to check against the OpenAPI
  // document (CONFIG.capture: one JSON object per line).
  p.on('response', async (r) => {
    const u = new URL(r.url());
    if (!CONFIG.capture || !u.pathname.startsWith('/api/')) return;
    let body = '';
    try {
      body = await r.text();
    } catch (e) {
      body = null; // no body to read (e.g. a redirect or a closed page)
    }
    if (body === null) return;
    fs.appendFileSync(CONFIG.capture, JSON.stringify({
      method: r.request().method(), path: u.pathname + u.search, status: r.status(),
      type: r.headers()['content-type'] || '', body }) + '\n');
  });
  return p;
}

// Console errors matching re are expected (the browser logs failed
// requests the journey provokes on purpose: 401, 422, 404, 502).
export function expectConsole(p, re) {
  p.__expected.push(re);
}

export function consoleErrors(p) {
  const errs = p.__errors.filter((e) => !e.startsWith('(HTTP '));
  const bad = errs.filter((e) => !p.__expected.some((re) => re.test(e)));
  return bad.length ? bad.concat(p.__errors.filter((e) => e.startsWith('(HTTP '))) : [];
}

// axe-core on the page as it is: no serious or critical violation. Run
// through the DevTools protocol, so the page's CSP does not block it.
export async function axe(p, where) {
  if (!(await p.evaluate(() => typeof window.axe !== 'undefined'))) await p.evaluate(AXE);
  const res = await p.evaluate(() => window.axe.run(document, {
    resultTypes: ['violations'] }));
  const bad = res.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  if (bad.length) {
    throw new Error('axe on ' + where + ': ' + bad.map((v) => v.id + ' (' + v.impact + '): ' +
      v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join('; ')).join(' | '));
  }
  log('axe ok: ' + where);
}

// Screenshots of the page at 1280 and 375 px wide into CONFIG.shots.
export async function shots(p, name) {
  if (!CONFIG.shots) return;
  fs.mkdirSync(CONFIG.shots, { recursive: true });
  const size = p.viewportSize();
  for (const width of [1280, 375]) {
    await p.setViewportSize({ width, height: width === 375 ? 800 : 900 });
    await p.screenshot({ path: path.join(CONFIG.shots, name + '-' + width + '.png'), fullPage: true });
  }
  await p.setViewportSize(size);
}

// 375 px: nothing wider than the viewport (no horizontal scrolling).
export async function fitsNarrow(p, where) {
  const size = p.viewportSize();
  await p.setViewportSize({ width: 375, height: 800 });
  const over = await p.evaluate(() => document.documentElement.scrollWidth -
                                      document.documentElement.clientWidth);
  await p.setViewportSize(size);
  if (over > 0) throw new Error(where + ' is ' + over + ' px wider than 375 px');
}

export function log(msg) {
  process.stdout.write('  ' + msg + '\n');
}

export function assert(cond, msg) {
  if (!cond) throw new Error('assertion failed: ' + msg);
}

export function eq(a, b, msg) {
  if (JSON.stringify(a) !== JSON.stringify(b)) {
    throw new Error('assertion failed: ' + msg + ': ' + JSON.stringify(a) + ' != ' +
                    JSON.stringify(b));
  }
}

// Poll fn until it returns a truthy value (returned) or the deadline.
export async function until(fn, what, ms = 10000) {
  const end = Date.now() + ms * (Number(process.env.EL_E2E_TIME_FACTOR) || 1);
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error('timed out waiting for ' + what);
    await new Promise((r) => setTimeout(r, 50));
  }
}

// A JSON API call from node (not the browser): setup and checks.
export async function api(base, method, p, body, token) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (token) headers.Authorization = 'Bearer ' + token;
  const r = await fetch(base + '/api' + p, { method, headers,
    body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch (e) { json = null; }
  return { status: r.status, body: json, layer: r.headers.get('x-cache'), headers: r.headers };
}

export async function token(base, who) {
  const r = await api(base, 'POST', '/auth/login', { email: who.email, password: who.password });
  assert(r.status === 200, 'login of ' + who.email + ': ' + r.status);
  return r.body.access_token;
}

// Run the named journeys of a module: node journeys.mjs NAME...
export async function run(journeys) {
  const names = process.argv.slice(2);
  let failed = 0;
  for (const name of names) {
    const fn = journeys[name];
    if (!fn) {
      console.error('no journey ' + name);
      process.exitCode = 2;
      return;
    }
    const t0 = Date.now();
    const ctx = await launch();
    try {
      process.stdout.write('journey ' + name + '\n');
      await fn(ctx);
      process.stdout.write('journey ' + name + ' ok (' + (Date.now() - t0) + ' ms)\n');
    } catch (e) {
      failed++;
      process.stdout.write('journey ' + name + ' FAILED: ' + (e.stack || e) + '\n');
      for (const p of ctx.pages()) {
        try {
          if (CONFIG.shots) {
            fs.mkdirSync(CONFIG.shots, { recursive: true });
            await p.screenshot({ path: path.join(CONFIG.shots, 'FAILED-' + name + '.png'), fullPage: true });
          }
          process.stdout.write('  at ' + p.url() + '\n');
        } catch (e2) { /* the page may be gone */ }
      }
    } finally {
      await ctx.close();
    }
  }
  process.exitCode = failed ? 1 : 0;
}
