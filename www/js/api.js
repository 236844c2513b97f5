// api.js -- every call to the elearn API, and the session.
//
// Session rules (issue 12):
//  - the access token lives in this module's memory only: a reload loses
//    it, and nothing else in the page can read it from storage;
//  - the refresh token is kept in sessionStorage: it survives a reload of
//    this tab, dies with the tab, is never in localStorage and never in a
//    cookie;
//  - a request answered 401 is retried once after one refresh (concurrent
//    401s share that refresh); a refresh that fails (the token was reused
//    or its login revoked, e.g. logged out elsewhere) ends the session and
//    tells the app, which shows the login page with a message;
//  - logout revokes the login on the server and forgets both tokens.
//
// request() never throws: it returns {status, layer, ms, body, detail,
// retryAfter}; status 0 means the server could not be reached.

const REFRESH_KEY = 'elearn.refresh_token';

let accessToken = null;
let user = null;           // {_id, email, name, role} once known
let refreshing = null;     // the refresh in flight, shared
const listeners = new Set();

export function onSession(fn) {
  listeners.add(fn);
}

function emit(event, detail) {
  for (const fn of listeners) fn(event, detail);
}

export function currentUser() {
  return user;
}

export function hasRole(...roles) {
  return !!user && roles.includes(user.role);
}

function storedRefresh() {
  try {
    return sessionStorage.getItem(REFRESH_KEY);
  } catch (e) {
    return null;
  }
}

function keepRefresh(token) {
  try {
    if (token) sessionStorage.setItem(REFRESH_KEY, token);
    else sessionStorage.removeItem(REFRESH_KEY);
  } catch (e) {
    // storage disabled: the session just does not survive a reload
  }
}

function forget() {
  accessToken = null;
  user = null;
  keepRefresh(null);
}

async function raw(method, path, body, token) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (token) headers.Authorization = 'Bearer ' + token;
  const t0 = performance.now();
  let res;
  try {
    res = await fetch('/api' + path, {
      method, headers, cache: 'no-store', credentials: 'omit',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    return { status: 0, layer: null, ms: performance.now() - t0, body: null, path, method,
             detail: 'Cannot reach the elearn server. Check your connection and try again.' };
  }
  const out = { status: res.status, layer: res.headers.get('X-Cache'), body: null, detail: null,
                retryAfter: res.headers.get('Retry-After'), path, method };
  const text = await res.text();
  out.ms = performance.now() - t0;
  try {
    out.body = text ? JSON.parse(text) : null;
  } catch (e) {
    out.detail = 'Unexpected answer from the server (HTTP ' + res.status + ').';
  }
  if (!res.ok && !out.detail) {
    const d = out.body && out.body.detail;
    out.detail = typeof d === 'string' ? d : 'Request failed (HTTP ' + res.status + ').';
  }
  if (res.status === 429) {
    out.detail = (out.detail || 'Too many requests.') +
      (out.retryAfter ? ' Try again in ' + out.retryAfter + ' s.' : '');
  } else if (res.status === 502 || res.status === 504) {
    out.detail = 'The elearn service is not answering right now (HTTP ' + res.status +
      '). Try again in a moment.';
  }
  emit('request', out);
  return out;
}

// One refresh for everyone who needs it now. Returns true when a new
// access token is in hand.
function refresh() {
  if (!refreshing) {
    refreshing = (async () => {
      const rt = storedRefresh();
      if (!rt) return false;
      const r = await raw('POST', '/auth/refresh', { refresh_token: rt });
      if (r.status === 200 && r.body && r.body.access_token) {
        accessToken = r.body.access_token;
        keepRefresh(r.body.refresh_token);
        return true;
      }
      if (r.status === 401) {
        forget();
        emit('ended', 'Your session has ended (you were signed out, perhaps on another ' +
                      'device). Please log in again.');
      }
      return false;
    })().finally(() => { refreshing = null; });
  }
  return refreshing;
}

// A request with the session's token when there is one; a 401 gets one
// refresh and one retry.
export async function request(method, path, body) {
  let r = await raw(method, path, body, accessToken);
  if (r.status === 401 && storedRefresh()) {
    if (await refresh()) r = await raw(method, path, body, accessToken);
  }
  return r;
}

export const get = (path) => request('GET', path);

// Restore the session of this tab after a reload: refresh, then who am I.
export async function restore() {
  if (!storedRefresh()) return null;
  if (!(await refresh())) return null;
  const me = await raw('GET', '/auth/me', undefined, accessToken);
  user = me.status === 200 ? me.body : null;
  emit('changed', user);
  return user;
}

export async function login(email, password) {
  const r = await raw('POST', '/auth/login', { email, password });
  if (r.status !== 200) return r;
  accessToken = r.body.access_token;
  keepRefresh(r.body.refresh_token);
  const me = await raw('GET', '/auth/me', undefined, accessToken);
  if (me.status !== 200) {
    forget();
    return me;
  }
  user = me.body;
  emit('changed', user);
  return r;
}

export function register(email, password, name) {
  return raw('POST', '/auth/register', { email, password, name });
}

export async function logout() {
  // request(): an expired access token is refreshed first, so the login is
  // revoked on the server too, not only forgotten here.
  if (accessToken || storedRefresh()) await request('DELETE', '/auth/logout');
  forget();
  emit('changed', null);
}
