// devices_ui.js — pieces shared by the device and enrolment key pages:
// times (relative, the exact ISO time on hover), status badges, the
// confirmation dialog, in-app navigation with a query string, and the
// names of organizations and sites (GET /organizations, …/:id/sites).
import { call } from './api.js';
import { h } from './dom.js';
import { state } from './session.js';

// Goes to URL (a path of this app, with its query) as a new history entry;
// the router draws it (it listens to popstate). Pages cannot import the
// router itself (main.js imports them).
export function go(url) {
  history.pushState(null, '', url);
  dispatchEvent(new PopStateEvent('popstate'));
}

// True when the signed-in user's role holds PERMISSION, or when the
// permissions are not known (the server decides: a 403 is shown then).
export function can(permission) {
  const p = state.user && state.user.permissions;
  return !Array.isArray(p) || p.includes(permission);
}

const UNITS = [['year', 31536000], ['month', 2592000], ['week', 604800], ['day', 86400],
  ['hour', 3600], ['minute', 60]];
const rtf = new Intl.RelativeTimeFormat('en', { numeric: 'always' });

// "3 minutes ago" / "in 2 days" for the ISO time ISO (null: '').
export function relative(iso) {
  if (!iso) return '';
  const s = Math.round((Date.parse(iso) - Date.now()) / 1000);
  // The largest unit the time is (within half a minute) at least one of,
  // rounded: a key made to expire in 7 days shows "in 1 week", not "in 6 days".
  for (const [unit, len] of UNITS) {
    if (Math.abs(s) + 30 >= len) return rtf.format(Math.round(s / len), unit);
  }
  return Math.abs(s) < 10 ? 'just now' : rtf.format(s, 'second');
}

// A <time> showing ISO relative to now, the exact time in its tooltip;
// NONE (text) when ISO is null.
export function when(iso, none) {
  if (!iso) return h('span', { class: 'muted' }, none || '—');
  return h('time', { datetime: iso, title: iso }, relative(iso));
}

const STATUS_LABELS = {
  online: 'Online', offline: 'Offline', never: 'Never seen', suspended: 'Suspended',
  decommissioned: 'Decommissioned', active: 'Active', revoked: 'Revoked', expired: 'Expired',
  exhausted: 'Used up',
};

// A badge for a device or key status STATUS (shown as text).
export function badge(status) {
  return h('span', { class: `badge badge-${/^[a-z_]+$/.test(status) ? status : 'other'}` },
    STATUS_LABELS[status] || status);
}

// An error box (hidden until show()).
export function errorBox(id) {
  return h('p', { class: 'message error', role: 'alert', id, hidden: true });
}

export function show(box, text) {
  box.textContent = text || '';
  box.hidden = !text;
}

// A modal confirmation (a real <dialog>, never window.confirm): TITLE,
// BODY (nodes or text), CONFIRMLABEL on the button that confirms, DANGER
// styles it so. ID names the dialog for tests. Resolves to true only when
// that button was pressed (Escape, Cancel: false).
export function confirmDialog({ id, title, body, confirmLabel, danger }) {
  return new Promise((resolve) => {
    const ok = h('button', { type: 'button', class: danger ? 'danger' : null, dataset: { confirm: '' } },
      confirmLabel);
    const cancel = h('button', { type: 'button', class: 'secondary', dataset: { cancel: '' } }, 'Cancel');
    const dlg = h('dialog', { id, class: 'confirm', 'aria-labelledby': `${id}-title` },
      h('h2', { id: `${id}-title` }, title), h('div', null, body),
      h('p', { class: 'row actions' }, cancel, ok));
    let answer = false;
    ok.addEventListener('click', () => { answer = true; dlg.close(); });
    cancel.addEventListener('click', () => dlg.close());
    dlg.addEventListener('close', () => { dlg.remove(); resolve(answer); });
    // Inside the page: drawing another page (the back button) removes it.
    (document.getElementById('page') || document.body).append(dlg);
    dlg.showModal();
    cancel.focus();
  });
}

// The organizations the user can see: Map id -> name. Empty (never a
// rejection) when the list cannot be read: pages then show ids.
export async function orgNames() {
  try {
    const r = await call('GET', '/api/v1/organizations');
    return new Map(r.organizations.map((o) => [o.id, o.name]));
  } catch (e) {
    if (e.status === 401 || e.status === 428) throw e;
    return new Map();
  }
}

// The sites of the organizations ORGIDS: Map site id -> {name, orgId}.
export async function siteNames(orgIds) {
  const out = new Map();
  await Promise.all([...new Set(orgIds)].map(async (org) => {
    try {
      const r = await call('GET', `/api/v1/organizations/${encodeURIComponent(org)}/sites`);
      for (const s of r.sites) out.set(s.id, { name: s.name, orgId: s.orgId });
    } catch (e) {
      if (e.status === 401 || e.status === 428) throw e;
    }
  }));
  return out;
}

// An <option> VALUE/LABEL, selected when VALUE is CURRENT.
export function option(value, label, current) {
  return h('option', { value, selected: value === current }, label);
}
