// shell.js — the signed-in frame: a header with the user and the sign-out
// button, the navigation, and the page's main area.
import { h, replace } from './dom.js';
import { describe } from './messages.js';
import { logout, state } from './session.js';

// Renders the frame into ROOT and returns the main element. NAV: show the
// navigation (hidden while enrolment holds the user). ONLOGGEDOUT(message).
export function shell(root, nav, onLoggedOut) {
  const u = state.user || {};
  // A link is left out when the role is known (GET /auth/me) to lack its permission.
  const may = (p) => !Array.isArray(u.permissions) || u.permissions.includes(p);
  const out = h('button', { id: 'logout', type: 'button', class: 'secondary' }, 'Sign out');
  out.addEventListener('click', async () => {
    out.disabled = true;
    try {
      await logout();
      onLoggedOut('You have signed out.');
    } catch (err) {
      onLoggedOut(`Signed out in this tab, but the server could not be told: ${describe(err)}`);
    }
  });
  const main = h('main', { id: 'page' });
  replace(root,
    h('header', { class: 'top' },
      h('a', { href: '/devices', class: 'brand', dataset: { route: '' } }, 'Breeze'),
      nav ? h('nav', null,
        h('a', { href: '/devices', dataset: { route: '' } }, 'Devices'),
        may('enrollment_keys:read') ? h('a', { href: '/enrollment-keys', dataset: { route: '' } }, 'Enrolment keys') : null,
        may('orgs:read') ? h('a', { href: '/organizations', dataset: { route: '' } }, 'Organizations') : null,
        may('users:read') ? h('a', { href: '/users', dataset: { route: '' } }, 'Users') : null,
        may('roles:read') ? h('a', { href: '/roles', dataset: { route: '' } }, 'Roles') : null,
        may('audit:read') ? h('a', { href: '/audit', dataset: { route: '' } }, 'Audit log') : null,
        may('webhooks:read') ? h('a', { href: '/webhooks', dataset: { route: '' } }, 'Webhooks') : null,
        may('orgs:write') && u.partnerId ? h('a', { href: '/settings', dataset: { route: '' } }, 'Settings') : null,
        h('a', { href: '/account', dataset: { route: '' } }, 'My account')) : null,
      h('span', { class: 'spacer' }),
      h('span', { class: 'who' },
        h('span', { id: 'user-name' }, u.name || ''),
        h('span', { id: 'user-email', class: 'muted' }, u.email || '')),
      out),
    main);
  return main;
}
