// devices.js — /devices, the landing page after sign-in: the device list
// (GET /api/v1/devices) with its filters — organization, site, status,
// hostname prefix — and the API's keyset cursor, all kept in the page's
// URL query (orgId, siteId, status, hostname, limit, cursor: the API's own
// names), so a reload, the back button or a bookmark shows the same page.
// Below it, the account the dashboard is signed in with (GET /auth/me,
// which also confirms the session and the MFA state).
import { h, replace } from './dom.js';
import { badge, errorBox, go, option, orgNames, show, siteNames, when } from './devices_ui.js';
import { call } from './api.js';
import { describe } from './messages.js';
import { loadMe } from './session.js';

const FILTERS = ['orgId', 'siteId', 'status', 'hostname'];
const STATUSES = [['', 'Any status (not decommissioned)'], ['online', 'Online'], ['offline', 'Offline'],
  ['never', 'Never seen'], ['suspended', 'Suspended (awaiting review)'], ['decommissioned', 'Decommissioned']];
const LIST_ERRORS = {
  not_found: 'That organization or site was not found, or you cannot see it.',
  validation_error: 'The filters in the address are not valid.',
};

function row(label, value) {
  return [h('dt', null, label), h('dd', null, value)];
}

// The page's query: the filters, the page size and the cursor it shows.
function query() {
  const q = new URLSearchParams(location.search);
  const out = new URLSearchParams();
  for (const k of [...FILTERS, 'limit', 'cursor']) {
    const v = q.get(k);
    if (v) out.set(k, v);
  }
  return out;
}

// /devices with the query Q, its cursor dropped, then CHANGES applied
// (name -> value; '' removes it).
function listUrl(q, changes) {
  const next = new URLSearchParams(q);
  next.delete('cursor');
  for (const [k, v] of Object.entries(changes || {})) {
    if (v) next.set(k, v);
    else next.delete(k);
  }
  const s = next.toString();
  return s ? `/devices?${s}` : '/devices';
}

function filterForm(q, orgs, sites) {
  const org = h('select', { id: 'filter-org', name: 'orgId' }, option('', 'All organizations', q.get('orgId') || ''),
    [...orgs].map(([id, name]) => option(id, name, q.get('orgId'))));
  const site = h('select', { id: 'filter-site', name: 'siteId', disabled: sites.size === 0 },
    option('', sites.size ? 'All sites' : 'All sites (choose an organization)', q.get('siteId') || ''),
    [...sites].map(([id, s]) => option(id, s.name, q.get('siteId'))));
  const status = h('select', { id: 'filter-status', name: 'status' },
    STATUSES.map(([v, label]) => option(v, label, q.get('status') || '')));
  const host = h('input', { id: 'filter-hostname', name: 'hostname', type: 'search', value: q.get('hostname') || '',
    placeholder: 'Hostname starts with…', maxlength: 255 });
  const form = h('form', { id: 'device-filters', class: 'filters' },
    h('label', null, 'Organization', org), h('label', null, 'Site', site),
    h('label', null, 'Status', status), h('label', null, 'Hostname', host),
    h('button', { id: 'filter-apply', type: 'submit' }, 'Apply'),
    h('a', { href: '/devices', id: 'filter-clear', dataset: { route: '' } }, 'Clear filters'));
  const values = () => ({ orgId: org.value, siteId: site.value, status: status.value, hostname: host.value.trim() });
  // Another organization has other sites: the list is drawn again for it.
  org.addEventListener('change', () => go(listUrl(q, { ...values(), siteId: '' })));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    go(listUrl(q, values()));
  });
  return form;
}

function deviceRow(d, orgs, sites, manyOrgs) {
  const site = sites.get(d.siteId);
  return h('tr', { dataset: { deviceId: d.id } },
    h('td', null, badge(d.status)),
    h('td', null, h('a', { href: `/devices/${encodeURIComponent(d.id)}`, class: 'hostname', dataset: { route: '' } }, d.hostname),
      d.displayName ? h('div', { class: 'muted small' }, d.displayName) : null),
    h('td', null, d.osType, h('div', { class: 'muted small' }, d.osVersion)),
    manyOrgs ? h('td', null, orgs.get(d.orgId) || d.orgId) : null,
    h('td', null, site ? site.name : d.siteId),
    h('td', { class: 'last-seen' }, when(d.lastSeenAt, 'never')),
    h('td', null, d.lastIp ? h('code', null, d.lastIp) : h('span', { class: 'muted' }, '—')));
}

function emptyState(q) {
  if (FILTERS.some((k) => q.get(k))) {
    return h('p', { id: 'devices-empty', class: 'empty' }, 'No devices match these filters. ',
      h('a', { href: '/devices', dataset: { route: '' } }, 'Clear the filters'), '.');
  }
  return h('p', { id: 'devices-empty', class: 'empty' }, 'No devices yet. ',
    h('a', { href: '/enrollment-keys', dataset: { route: '' } }, 'Create an enrolment key'),
    ' and enrol an agent with it: its device appears here after it enrols.');
}

function table(body, q, orgs, sites) {
  const manyOrgs = orgs.size !== 1 && !q.get('orgId'); // else every row has the same one
  if (body.devices.length === 0) return emptyState(q);
  const pager = h('p', { class: 'row pager' },
    q.get('cursor') ? h('a', { id: 'devices-first', href: listUrl(q), dataset: { route: '' } }, '« First page') : null,
    body.nextCursor
      ? h('a', { id: 'devices-next', href: listUrl(q, { cursor: body.nextCursor }), dataset: { route: '' } }, 'Next page »')
      : h('span', { class: 'muted', id: 'devices-end' }, 'End of the list'));
  return [h('table', { id: 'devices-table', class: 'grid' },
    h('thead', null, h('tr', null, h('th', null, 'Status'), h('th', null, 'Hostname'), h('th', null, 'OS'),
      manyOrgs ? h('th', null, 'Organization') : null, h('th', null, 'Site'), h('th', null, 'Last seen'),
      h('th', null, 'Source IP'))),
    h('tbody', null, body.devices.map((d) => deviceRow(d, orgs, sites, manyOrgs)))), pager];
}

async function showAccount(account) {
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

export async function devicesPage(main) {
  const q = query();
  const box = errorBox('devices-error');
  const filters = h('div', { id: 'filters-slot' });
  const list = h('section', { id: 'devices', class: 'card full', 'aria-busy': 'true' },
    h('p', { class: 'muted' }, 'Loading devices…'));
  const account = h('dl', { id: 'account', class: 'facts' });
  replace(main, h('h1', null, 'Devices'), filters, box, list,
    h('section', { class: 'card wide' }, h('h2', null, 'Signed in as'), account));
  showAccount(account);
  try {
    const [body, orgs] = await Promise.all([call('GET', `/api/v1/devices?${q}`), orgNames()]);
    const want = q.get('orgId') ? [q.get('orgId')] : (orgs.size === 1 ? [...orgs.keys()] : []);
    const sites = await siteNames([...want, ...body.devices.map((d) => d.orgId)]);
    const filterSites = new Map([...sites].filter(([, s]) => want.includes(s.orgId)));
    replace(filters, filterForm(q, orgs, filterSites));
    replace(list, table(body, q, orgs, sites));
  } catch (err) {
    if (err.status === 401 || err.status === 428) return;
    replace(filters, filterForm(q, new Map(), new Map()));
    replace(list);
    show(box, describe(err, LIST_ERRORS));
  }
  list.removeAttribute('aria-busy');
}
