// devices.js — /devices, the landing page after sign-in. The device list
// itself arrives with the next slice; for now the page shows the account
// it is signed in with (GET /api/v1/auth/me, which also confirms the
// session is still alive).
import { h, replace } from './dom.js';
import { describe } from './messages.js';
import { loadMe } from './session.js';

function row(label, value) {
  return [h('dt', null, label), h('dd', null, value)];
}

export async function devicesPage(main) {
  const account = h('dl', { id: 'account', class: 'facts' });
  replace(main,
    h('h1', null, 'Devices'),
    h('p', { class: 'muted', id: 'devices-placeholder' },
      'The device list arrives in the next version of the dashboard.'),
    h('section', { class: 'card wide' }, h('h2', null, 'Signed in as'), account));
  try {
    const me = await loadMe();
    replace(account,
      row('Name', me.name), row('E-mail', me.email), row('Role', me.role.name),
      row('Two-factor authentication', me.mfaEnabled ? 'on' : 'off'),
      row('Organizations', String(me.organizationIds.length)));
  } catch (err) {
    if (err.status !== 401 && err.status !== 428) {
      replace(account, h('p', { class: 'message error', role: 'alert' }, describe(err)));
    }
  }
}
