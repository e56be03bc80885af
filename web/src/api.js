// api.js — the one way the dashboard talks to breeze-server.
//
// The access token lives in this module's memory only: never in Web
// Storage, never in a cookie, gone with the tab. The session survives a
// reload through the refresh token, which the server keeps in an HttpOnly
// cookie this code cannot read; POST /api/v1/auth/refresh wants the
// readable CSRF cookie echoed in X-Breeze-CSRF (double submit). With
// SESSION_COOKIE_SECURE (production) the cookies are named __Host-…: a
// sibling subdomain cannot plant those, so the app reads that name first. The refresh token rotates on every use and a rotated one that
// comes back logs the session out, so refreshes never run in parallel:
// one promise per tab (single flight) and, where the browser has the Web
// Locks API, one lock for every tab of this origin.

const CSRF_COOKIES = ['__Host-breeze_csrf_token', 'breeze_csrf_token'];
const CSRF_HEADER = 'X-Breeze-CSRF';

let accessToken = null;
let refreshing = null;
const hooks = { unauthorized: () => {}, enrollmentRequired: () => {} };

// An answer of the server other than 2xx: STATUS, the error CODE and
// MESSAGE of its JSON body, and RETRYAFTER in seconds (null if none).
export class ApiError extends Error {
  constructor(status, code, message, retryAfter) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

// The server did not answer at all (down, unreachable, connection cut).
export class NetworkError extends Error {}

// UNAUTHORIZED(): the session is gone (a 401 that a refresh did not cure);
// ENROLLMENTREQUIRED(): a 428, MFA enrolment is forced.
export function setHooks(h) {
  Object.assign(hooks, h);
}

export function setAccessToken(token) {
  accessToken = token || null;
}

export function hasAccessToken() {
  return accessToken !== null;
}

// The CSRF token the server set for this session, or null.
export function csrfToken() {
  const found = new Map();
  for (const part of document.cookie.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0) found.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  for (const name of CSRF_COOKIES) if (found.has(name)) return found.get(name);
  return null;
}

// Deletes the CSRF cookie: without it no refresh succeeds from this
// browser, so a session whose logout could not reach the server cannot be
// restored by the next reload (the HttpOnly refresh cookie is out of
// reach). The two cookie writes the build allows, spelled exactly so.
export function forgetCsrfCookie() {
  document.cookie = '__Host-breeze_csrf_token=; Max-Age=0; Path=/; Secure; SameSite=Strict';
  document.cookie = 'breeze_csrf_token=; Max-Age=0; Path=/; SameSite=Strict';
}

function retryAfterSeconds(resp) {
  const v = resp.headers.get('Retry-After');
  if (v === null) return null;
  if (/^\d+$/.test(v.trim())) return Number(v.trim());
  const t = Date.parse(v);
  return Number.isNaN(t) ? null : Math.max(0, Math.ceil((t - Date.now()) / 1000));
}

// One request: JSON body BODY (undefined: none), bearer TOKEN (null: none),
// extra HEADERS. Resolves to the parsed JSON (null for an empty body);
// rejects with ApiError or NetworkError.
export async function send(method, path, body, token, headers) {
  const h = { Accept: 'application/json', ...headers };
  if (body !== undefined) h['Content-Type'] = 'application/json';
  if (token) h.Authorization = `Bearer ${token}`;
  let resp;
  try {
    resp = await fetch(path, {
      method,
      headers: h,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store',
      redirect: 'error',
    });
  } catch (e) {
    throw new NetworkError('the server did not answer');
  }
  let data = null;
  const text = await resp.text().catch(() => '');
  if (text) {
    try {
      data = JSON.parse(text);
    } catch (e) {
      data = null;
    }
  }
  if (!resp.ok) {
    const err = (data && data.error) || {};
    throw new ApiError(resp.status, err.code || `http_${resp.status}`,
                       err.message || `HTTP ${resp.status}`, retryAfterSeconds(resp));
  }
  return data;
}

// POST to a cookie route (refresh, logout) with the CSRF header.
export function sendWithCsrf(path) {
  const csrf = csrfToken();
  if (csrf === null) return Promise.reject(new ApiError(401, 'no_session', 'not signed in', null));
  return send('POST', path, undefined, null, { [CSRF_HEADER]: csrf });
}

async function refreshOnce() {
  if (csrfToken() === null) {
    accessToken = null;
    return false;
  }
  try {
    const r = await sendWithCsrf('/api/v1/auth/refresh');
    accessToken = r.accessToken;
    return true;
  } catch (e) {
    if (e instanceof ApiError && (e.status === 401 || e.status === 403)) {
      accessToken = null;
      return false;
    }
    throw e;
  }
}

// A new access token from the refresh cookie: true, false when there is no
// live session; rejects with NetworkError / ApiError (5xx, 429).
export function refresh() {
  if (refreshing === null) {
    const run = navigator.locks && navigator.locks.request
      ? navigator.locks.request('breeze-refresh', refreshOnce)
      : refreshOnce();
    refreshing = run.finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
}

// Tells the router that MFA enrolment is forced (a 428, or /auth/me says so).
export function enrollmentRequired() {
  hooks.enrollmentRequired();
}

function failed(e) {
  if (e instanceof ApiError && e.status === 428) hooks.enrollmentRequired();
  if (e instanceof ApiError && e.status === 401) {
    accessToken = null;
    hooks.unauthorized();
  }
  throw e;
}

// An authenticated call. A 401 is answered by one silent refresh and one
// retry; a 401 after that (or no session at all) calls the unauthorized
// hook, a 428 the enrolment hook. Rejects like send().
export async function call(method, path, body) {
  if (accessToken === null && !(await refresh())) {
    return failed(new ApiError(401, 'no_session', 'not signed in', null));
  }
  const used = accessToken;
  try {
    return await send(method, path, body, used);
  } catch (e) {
    if (!(e instanceof ApiError) || e.status !== 401) return failed(e);
  }
  // Another call may have refreshed meanwhile: then its token is tried.
  if (accessToken === used && !(await refresh())) {
    return failed(new ApiError(401, 'session_ended', 'the session has ended', null));
  }
  try {
    return await send(method, path, body, accessToken);
  } catch (e) {
    return failed(e);
  }
}
