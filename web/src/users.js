// users.js — /users (list with role, organization and MFA; create) and
// /roles (each role with its permissions and its force-MFA switch, which
// PATCHes the role; a refusal is shown and the switch put back).
import { call } from './api.js';
import { h, replace } from './dom.js';
import { loading, messageBox, orgNames, select, show, showFailure, shownOnce, table, twoStep } from './ui.js';

const USER_ERRORS = { conflict: 'A user with that e-mail address already exists.' };

function userRows(users, names) {
  return users.map((u) => h('tr', { dataset: { email: u.email } },
    h('td', null, u.name), h('td', null, u.email), h('td', null, u.role),
    h('td', null, u.orgId ? (names[u.orgId] || u.orgId) : 'Partner staff'),
    h('td', { class: 'mfa' }, u.mfaEnabled ? 'on' : 'off'),
    h('td', null, u.status)));
}

async function listUsers(el, names) {
  const r = await call('GET', '/api/v1/users');
  replace(el, table('users', ['Name', 'E-mail', 'Role', 'Organization', 'MFA', 'Status'],
    userRows(r.users, names), 'No users.'));
}

// The create form: organization roles need an organization; for partner
// roles one may limit the user to one organization (else all of them).
function userForm(roles, orgs, created) {
  const name = h('input', { id: 'user-name-input', maxlength: 200, required: true });
  const email = h('input', { id: 'user-email-input', type: 'email', maxlength: 320, required: true });
  const role = select('user-role', roles.map((r) => [r.name, `${r.name} (${r.scope})`]), 'org_viewer');
  const org = select('user-org', [['', '— all organizations (partner roles) —'],
    ...orgs.map((o) => [o.id, o.name])], '');
  const password = h('input', { id: 'user-password-input', type: 'password', autocomplete: 'new-password' });
  const go = h('button', { id: 'user-create', type: 'submit' }, 'Create user');
  const form = h('form', { id: 'user-form', class: 'grid' },
    h('label', { for: 'user-name-input' }, 'Name'), name,
    h('label', { for: 'user-email-input' }, 'E-mail'), email,
    h('label', { for: 'user-role' }, 'Role'), role,
    h('label', { for: 'user-org' }, 'Organization'), org,
    h('label', { for: 'user-password-input' }, 'Password'), password,
    h('p', { class: 'hint' }, 'Leave the password empty to have one generated (shown once).'), go);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const r = roles.find((x) => x.name === role.value);
    const body = { name: name.value.trim(), email: email.value.trim(), role: role.value };
    if (password.value) body.password = password.value;
    if (org.value && r && r.scope === 'organization') body.orgId = org.value;
    else if (org.value) body.orgIds = [org.value];
    go.disabled = true;
    try {
      await created(body);
      name.value = '';
      email.value = '';
      password.value = '';
    } finally {
      go.disabled = false;
    }
  });
  return form;
}

export async function usersPage(main) {
  const box = messageBox('users-message');
  const once = h('div');
  const formCard = h('section', { class: 'card wide form-card' }, h('h2', null, 'New user'));
  const list = h('div');
  replace(main, h('h1', null, 'Users'), formCard, box, once, list);
  loading(list);
  let names = {};
  try {
    const [orgs, n] = await orgNames();
    names = n;
    const roles = (await call('GET', '/api/v1/roles')).roles;
    formCard.append(userForm(roles, orgs, async (body) => {
      show(box, null);
      replace(once);
      try {
        const u = await call('POST', '/api/v1/users', body);
        await listUsers(list, names);
        show(box, `Created the user ${u.email}.`, 'success');
        if (u.password) replace(once, shownOnce('user-generated-password', 'The generated password:', u.password));
      } catch (err) {
        showFailure(box, err, USER_ERRORS);
      }
    }));
    await listUsers(list, names);
  } catch (err) {
    replace(list);
    showFailure(box, err);
  }
}

// One role's row: the switch PATCHes forceMfa; on a refusal it goes back.
// A role's force-MFA switch. Turning the requirement on is one click;
// turning it off (a downgrade for every user of the role) asks first: the
// box stays ticked and a "Stop requiring MFA" button must be clicked twice.
function roleRow(role, box) {
  const sw = h('input', { type: 'checkbox', class: 'force-mfa', checked: role.forceMfa,
    'aria-label': `Force MFA for ${role.name}` });
  const set = async (want) => {
    sw.disabled = true;
    show(box, null);
    try {
      const r = await call('PATCH', `/api/v1/roles/${encodeURIComponent(role.id)}`, { forceMfa: want });
      sw.checked = r.forceMfa;
      off.hidden = true;
      show(box, `${role.name}: MFA is ${r.forceMfa ? 'now required' : 'no longer required'}.`, 'success');
    } catch (err) {
      sw.checked = !want;
      showFailure(box, err);
    } finally {
      sw.disabled = false;
    }
  };
  const off = twoStep('force-mfa-off', 'Stop requiring MFA', 'Really stop requiring MFA?', () => set(false));
  off.hidden = true;
  sw.addEventListener('change', () => {
    if (sw.checked) {
      off.hidden = true;
      set(true);
      return;
    }
    sw.checked = true; // still required until confirmed
    off.hidden = false;
    off.focus();
  });
  return h('tr', { dataset: { role: role.name } },
    h('td', null, role.name), h('td', null, role.scope), h('td', null, role.builtin ? 'built-in' : 'custom'),
    h('td', { class: 'perms' }, role.permissions.join(', ')),
    h('td', null, h('label', { class: 'check' }, sw, ' required'), ' ', off));
}

export async function rolesPage(main) {
  const box = messageBox('roles-message');
  const list = h('div');
  replace(main, h('h1', null, 'Roles'),
    h('p', { class: 'muted' }, 'Users of a role that requires MFA must set it up before anything else.'),
    box, list);
  loading(list);
  try {
    const r = await call('GET', '/api/v1/roles');
    replace(list, table('roles', ['Role', 'Scope', 'Kind', 'Permissions', 'Force MFA'],
      r.roles.map((x) => roleRow(x, box))));
  } catch (err) {
    replace(list);
    showFailure(box, err);
  }
}
