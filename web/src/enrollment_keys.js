// enrollment_keys.js — /enrollment-keys: create a key for a site (name,
// lifetime, use limit; POST /api/v1/enrollment-keys), see the raw key once
// with the `breeze-agent enroll` command to paste, list the keys with their
// uses left and expiry (GET, never the raw key) and revoke one (DELETE)
// after a confirmation. The raw key lives only in this page's DOM until
// the page is left: a reload or another page loses it for good.
//
// The command never holds the shared enrolment secret (AGENT_ENROLLMENT_SECRET
// of the server, which the dashboard never sees): the operator puts it in
// place of the placeholder. Both values go in the environment, not on the
// command line, where any local user could read them (README).
import { h, replace } from './dom.js';
import { badge, can, confirmDialog, errorBox, option, orgNames, show, siteNames, when } from './devices_ui.js';
import { call } from './api.js';
import { describe } from './messages.js';

const SECRET_PLACEHOLDER = 'PASTE-THE-SHARED-ENROLMENT-SECRET';
const LIFETIMES = [['60', '1 hour'], ['1440', '1 day'], ['10080', '7 days'], ['43200', '30 days'], ['525600', '365 days']];
const KEY_ERRORS = {
  forbidden: 'Your role does not allow managing enrolment keys.',
  not_found: 'That site was not found, or you cannot see it.',
};

// The commands an operator runs on the machine to enrol, for raw key KEY.
export function enrollCommand(key) {
  return `export BREEZE_ENROLLMENT_KEY='${key}'\n` +
    `export BREEZE_ENROLLMENT_SECRET='${SECRET_PLACEHOLDER}'\n` +
    `breeze-agent enroll --server ${location.origin}`;
}

function newKeyCard(k) {
  const cmd = enrollCommand(k.key);
  const status = h('p', { class: 'message info', id: 'copy-status', role: 'status', hidden: true });
  const copy = h('button', { id: 'copy-command', type: 'button' }, 'Copy the command');
  copy.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(cmd);
      status.textContent = 'Copied to the clipboard.';
    } catch (e) {
      status.textContent = 'Copying is not allowed here: select the command and copy it.';
    }
    status.hidden = false;
  });
  return h('section', { class: 'card full', id: 'new-key' },
    h('h2', null, `Key “${k.name}” created`),
    h('p', null, h('strong', null, 'This is the only time the key is shown.'),
      ' Copy it now: the server keeps only a hash of it.'),
    h('p', null, h('code', { id: 'new-key-value', class: 'secret' }, k.key)),
    h('p', null, 'On the machine to enrol, as the user that runs the agent, with the shared enrolment secret ',
      '(the server\'s ', h('code', null, 'AGENT_ENROLLMENT_SECRET'), ', which this page never shows) in place of ',
      h('code', null, SECRET_PLACEHOLDER), ':'),
    h('pre', { id: 'enroll-command', class: 'command' }, cmd),
    h('p', { class: 'row' }, copy), status);
}

function keyRow(k, names, revoke) {
  const site = names.sites.get(k.siteId);
  const left = Math.max(0, k.maxUsage - k.usageCount);
  let action = null;
  if (k.status === 'active' && can('enrollment_keys:write')) {
    action = h('button', { type: 'button', class: 'danger small', dataset: { revoke: k.id } }, 'Revoke');
    action.addEventListener('click', () => revoke(k));
  }
  return h('tr', { dataset: { keyId: k.id } },
    h('td', null, k.name, h('div', { class: 'muted small' }, h('code', null, `${k.keyPrefix}…`))),
    h('td', null, badge(k.status)),
    h('td', null, site ? site.name : k.siteId,
      names.orgs.size !== 1 ? h('div', { class: 'muted small' }, names.orgs.get(k.orgId) || k.orgId) : null),
    h('td', { class: 'uses-left' }, `${left} of ${k.maxUsage}`),
    h('td', null, k.revokedAt ? ['revoked ', when(k.revokedAt)] : when(k.expiresAt)),
    h('td', null, when(k.createdAt)),
    h('td', null, action));
}

function keyTable(keys, names, revoke) {
  if (keys.length === 0) return h('p', { id: 'keys-empty', class: 'empty' }, 'No enrolment keys yet.');
  return h('table', { id: 'keys-table', class: 'grid' },
    h('thead', null, h('tr', null, h('th', null, 'Name'), h('th', null, 'Status'), h('th', null, 'Site'),
      h('th', null, 'Uses left'), h('th', null, 'Expires'), h('th', null, 'Created'), h('th', null, ''))),
    h('tbody', null, keys.map((k) => keyRow(k, names, revoke))));
}

function createForm(names, created) {
  const box = errorBox('key-error');
  const site = h('select', { id: 'key-site', required: true },
    [...names.sites].map(([id, s]) => option(id, names.orgs.size > 1
      ? `${names.orgs.get(s.orgId) || s.orgId} / ${s.name}` : s.name, null)));
  const name = h('input', { id: 'key-name', required: true, maxlength: 200, placeholder: 'e.g. office laptops' });
  const ttl = h('select', { id: 'key-ttl' }, LIFETIMES.map(([v, label]) => option(v, label, '1440')));
  const uses = h('input', { id: 'key-uses', type: 'number', min: 1, max: 100000, value: '1', required: true });
  const submit = h('button', { id: 'key-create', type: 'submit' }, 'Create key');
  const form = h('form', { id: 'key-form', class: 'filters' },
    h('label', null, 'Site', site), h('label', null, 'Name', name), h('label', null, 'Expires after', ttl),
    h('label', null, 'Devices it may enrol', uses), submit);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    show(box, null);
    submit.disabled = true;
    try {
      const k = await call('POST', '/api/v1/enrollment-keys', {
        siteId: site.value, name: name.value.trim(), ttlMinutes: Number(ttl.value), maxUsage: Number(uses.value),
      });
      name.value = '';
      created(k);
    } catch (err) {
      if (err.status !== 401 && err.status !== 428) show(box, describe(err, KEY_ERRORS));
    }
    submit.disabled = false;
  });
  if (names.sites.size === 0) {
    return h('p', { class: 'muted' }, 'There is no site to create a key for.');
  }
  return [box, form];
}

export async function enrollmentKeysPage(main) {
  const box = errorBox('keys-error');
  const fresh = h('div', { id: 'new-key-slot' });
  const create = h('section', { class: 'card full' }, h('h2', null, 'New enrolment key'));
  const list = h('section', { class: 'card full', id: 'keys' }, h('p', { class: 'muted' }, 'Loading keys…'));
  replace(main, h('h1', null, 'Enrolment keys'),
    h('p', { class: 'muted' }, 'An agent enrols with a key of a site and the shared enrolment secret; each key ',
      'expires and enrols a limited number of devices.'), box, fresh, create, list);
  let names = { orgs: new Map(), sites: new Map() };
  const reload = async () => {
    try {
      const r = await call('GET', '/api/v1/enrollment-keys');
      replace(list, h('h2', null, 'Keys'), keyTable(r.enrollmentKeys, names, revoke));
    } catch (err) {
      if (err.status !== 401 && err.status !== 428) {
        replace(list);
        show(box, describe(err, KEY_ERRORS));
      }
    }
  };
  const revoke = async (k) => {
    show(box, null);
    const yes = await confirmDialog({ id: 'confirm-revoke', title: 'Revoke this key?',
      body: `“${k.name}” (${k.keyPrefix}…) stops enrolling devices at once. Devices it enrolled keep working.`,
      confirmLabel: 'Revoke', danger: true });
    if (!yes) return;
    try {
      await call('DELETE', `/api/v1/enrollment-keys/${encodeURIComponent(k.id)}`);
    } catch (err) {
      if (err.status === 401 || err.status === 428) return;
      show(box, describe(err, KEY_ERRORS));
    }
    await reload();
  };
  try {
    const orgs = await orgNames();
    names = { orgs, sites: await siteNames([...orgs.keys()]) };
  } catch (err) {
    return;
  }
  if (can('enrollment_keys:write')) {
    replace(create, h('h2', null, 'New enrolment key'), createForm(names, (k) => {
      replace(fresh, newKeyCard(k));
      reload();
    }));
  } else {
    create.remove();
  }
  await reload();
}
