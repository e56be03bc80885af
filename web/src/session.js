// session.js — who is signed in, and the sign-in, enrolment and sign-out
// steps. Nothing here is persisted: a reload starts from the refresh cookie.
import { ApiError, call, enrollmentRequired, forgetCsrfCookie, refresh, send, sendWithCsrf, setAccessToken } from './api.js';

export const state = {
  user: null, // {id, email, name, role, …} of the signed-in user, or null
  enrollmentRequired: false, // the role forces MFA and none is enrolled (428)
  codesPending: false, // recovery codes shown, "I saved them" not yet ticked
  flash: null, // a message for the next page (e.g. why the session ended)
};

function start(body) {
  setAccessToken(body.accessToken);
  state.user = body.user;
  state.enrollmentRequired = body.mfaEnrollmentRequired === true;
}

// Forgets the session in this tab (the server side is logout()'s job).
export function clear() {
  setAccessToken(null);
  state.user = null;
  state.enrollmentRequired = false;
  state.codesPending = false;
}

// Password step: resolves to {mfaToken, expiresIn} when a second step is
// needed, or null once signed in. Rejects with ApiError / NetworkError.
export async function login(email, password) {
  const body = await send('POST', '/api/v1/auth/login', { email, password }, null);
  if (body.mfaRequired) return { mfaToken: body.mfaToken, expiresIn: body.expiresIn };
  start(body);
  return null;
}

// Second step with {code} or {recoveryCode}.
export async function verifyMfa(mfaToken, answer) {
  start(await send('POST', '/api/v1/auth/mfa/verify', { mfaToken, ...answer }, null));
}

// GET /auth/me: refreshes the user and whether enrolment is forced.
export async function loadMe() {
  const me = await call('GET', '/api/v1/auth/me');
  state.user = me;
  state.enrollmentRequired = me.role.forceMfa === true && me.mfaEnabled !== true;
  if (state.enrollmentRequired) enrollmentRequired();
  return me;
}

// After a page load: true when the refresh cookie still holds a session.
export async function restore() {
  if (!(await refresh())) return false;
  await loadMe();
  return state.user !== null;
}

// Ends the session on the server, then here. Resolves even when the
// server had already ended it; rejects (after clearing) when it could not
// be reached, so the page can say so.
export async function logout() {
  try {
    await sendWithCsrf('/api/v1/auth/logout');
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 401)) {
      forgetCsrfCookie();
      clear();
      throw e;
    }
  }
  clear();
}

// Enrolment (forced or not): setup with the password, then enable.
export function mfaSetup(currentPassword) {
  return call('POST', '/api/v1/auth/mfa/setup', { currentPassword });
}

export async function mfaEnable(code) {
  await call('POST', '/api/v1/auth/mfa/enable', { code });
  state.enrollmentRequired = false;
  state.codesPending = true;
}
