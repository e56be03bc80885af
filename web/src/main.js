// main.js — start-up and the router. Routes live in the History API; the
// server answers every non-API path with index.html, so a reload or a
// bookmark of any route lands here. Before any route is drawn, guard()
// decides where the user may be: signed out -> /login; enrolment forced
// (428) or recovery codes not yet confirmed -> /mfa/enroll, whatever was
// typed, bookmarked or reached with the back button.
import { accountPage } from './account.js';
import { hasAccessToken, setHooks } from './api.js';
import { auditPage } from './audit.js';
import { devicePage } from './devices_detail.js';
import { devicesPage } from './devices.js';
import { h, replace } from './dom.js';
import { enrollPage } from './enroll.js';
import { enrollmentKeysPage } from './enrollment_keys.js';
import { loginPage } from './login.js';
import { describe } from './messages.js';
import { orgPage, orgsPage } from './orgs.js';
import { clear, restore, state } from './session.js';
import { partnerSettingsPage, siteSettingsPage } from './settings.js';
import { shell } from './shell.js';
import { rolesPage, usersPage } from './users.js';
import { webhookPage, webhooksPage } from './webhooks.js';

const root = document.getElementById('app');
const HOME = '/devices';
let wanted = HOME; // where to go after signing in

// The signed-in pages: [pattern, page]. A ':name' segment matches one
// non-empty path segment and reaches the page decoded, as params.name.
// Each page module adds its own lines (and its link in shell.js).
const pages = [
  ['/devices', devicesPage],
  ['/devices/:id', devicePage],
  ['/enrollment-keys', enrollmentKeysPage],
  ['/organizations', orgsPage],
  ['/organizations/:id', orgPage],
  ['/users', usersPage],
  ['/roles', rolesPage],
  ['/audit', auditPage],
  ['/account', accountPage],
  ['/webhooks', webhooksPage],
  ['/webhooks/:id', webhookPage],
  ['/settings', partnerSettingsPage],
  ['/sites/:id/settings', siteSettingsPage],
];

// [page, params] for PATH, or null. Patterns are compared segment by
// segment, so '/devices/:id' never matches '/devices/a/b'.
function match(path) {
  const have = path.split('/');
  for (const [pattern, page] of pages) {
    const want = pattern.split('/');
    if (want.length !== have.length) continue;
    const params = {};
    let ok = true;
    for (let i = 0; i < want.length && ok; i++) {
      if (want[i].startsWith(':')) {
        let v = null;
        try { v = decodeURIComponent(have[i]); } catch { v = null; }
        if (v === null || v === '') ok = false;
        else params[want[i].slice(1)] = v;
      } else if (want[i] !== have[i]) {
        ok = false;
      }
    }
    if (ok) return [page, params];
  }
  return null;
}

// Goes to PATH (a path of the app, with a query string or not).
export function navigate(path, replaceEntry) {
  if (path !== location.pathname + location.search) {
    if (replaceEntry) history.replaceState(null, '', path);
    else history.pushState(null, '', path);
  }
  render();
}

function signedOut(message) {
  clear();
  state.flash = message;
  navigate('/login', true);
}

// The path to draw instead of PATH, or null when PATH may be drawn.
function guard(path) {
  if (state.user === null) return path === '/login' ? null : '/login';
  if (state.enrollmentRequired || state.codesPending) return path === '/mfa/enroll' ? null : '/mfa/enroll';
  if (path === '/login' || path === '/mfa/enroll' || path === '/') return HOME;
  return null;
}

function notFound(main) {
  replace(main, h('h1', null, 'Page not found'),
    h('p', null, 'There is no page at ', h('code', null, location.pathname), '. ',
      h('a', { href: HOME, dataset: { route: '' } }, 'Go to the devices.')));
}

function render() {
  const path = location.pathname;
  const to = guard(path);
  if (to !== null) {
    if (to === '/login' && path !== '/' && path !== '/login') wanted = path + location.search;
    navigate(to, true);
    return;
  }
  document.title = 'Breeze';
  if (path === '/login') {
    loginPage(root, () => navigate(wanted === '/login' ? HOME : wanted));
    return;
  }
  if (path === '/mfa/enroll') {
    // Already on it (the back button came back here): keep its step, the
    // recovery codes above all.
    if (document.getElementById('enroll') !== null) return;
    const main = shell(root, false, signedOut);
    enrollPage(main, () => navigate(HOME, true));
    return;
  }
  const main = shell(root, true, signedOut);
  const found = match(path);
  if (found === null) notFound(main);
  else found[0](main, found[1]);
}

// Links marked data-route stay in the app.
document.addEventListener('click', (ev) => {
  const a = ev.target instanceof Element ? ev.target.closest('a[data-route]') : null;
  if (!a || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
  ev.preventDefault();
  navigate(a.getAttribute('href'));
});
window.addEventListener('popstate', render);

setHooks({
  unauthorized: () => {
    if (state.user !== null || hasAccessToken()) signedOut('Your session has ended. Please sign in again.');
  },
  enrollmentRequired: () => {
    state.enrollmentRequired = true;
    if (location.pathname !== '/mfa/enroll') navigate('/mfa/enroll', true);
  },
});

async function boot() {
  try {
    await restore();
  } catch (err) {
    clear();
    state.flash = describe(err);
  }
  render();
}

boot();
