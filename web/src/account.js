// account.js — /account: the signed-in user's own account. Change the
// password (POST /auth/password: the current one and a new one that meets
// the policy; the server signs out every other session), the MFA status and
// new recovery codes (POST /auth/mfa/recovery-codes, shown once), and the
// live sessions with Revoke (revoking this tab's own session signs out).
import { call } from './api.js';
import { h, replace } from './dom.js';
import { loadMe, state } from './session.js';
import { loading, messageBox, recoveryCodes, show, showFailure, table, twoStep, when } from './ui.js';

const PASSWORD_ERRORS = { invalid_current_password: 'The current password is wrong.' };
const CODES_ERRORS = {
  invalid_password: 'That is not your current password.',
  mfa_not_enabled: 'Two-factor authentication is off: there are no recovery codes to replace.',
};

function passwordForm() {
  const box = messageBox('password-message');
  const current = h('input', { id: 'password-current', type: 'password', autocomplete: 'current-password', required: true });
  const next = h('input', { id: 'password-new', type: 'password', autocomplete: 'new-password', required: true });
  const again = h('input', { id: 'password-again', type: 'password', autocomplete: 'new-password', required: true });
  const go = h('button', { id: 'password-submit', type: 'submit' }, 'Change password');
  const form = h('form', { id: 'password-form' },
    h('label', { for: 'password-current' }, 'Current password'), current,
    h('label', { for: 'password-new' }, 'New password'), next,
    h('p', { class: 'hint' }, 'At least 12 characters, not your e-mail address.'),
    h('label', { for: 'password-again' }, 'New password again'), again, box, go);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    show(box, null);
    if (next.value !== again.value) {
      show(box, 'The two new passwords differ.', 'error');
      return;
    }
    go.disabled = true;
    try {
      const r = await call('POST', '/api/v1/auth/password', { currentPassword: current.value, newPassword: next.value });
      for (const el of [current, next, again]) el.value = '';
      const n = r.revokedSessions;
      show(box, `Password changed.${n ? ` ${n} other session${n === 1 ? ' was' : 's were'} signed out.` : ''}`, 'success');
    } catch (err) {
      if (err.code === 'validation_error') show(box, `The new password is not accepted: ${err.message}.`, 'error');
      else showFailure(box, err, PASSWORD_ERRORS);
    } finally {
      go.disabled = false;
    }
  });
  return h('section', { class: 'card wide' }, h('h2', null, 'Password'), form);
}

function mfaSection(me) {
  const box = messageBox('codes-message');
  const out = h('div');
  const status = h('p', { id: 'mfa-status' }, 'Two-factor authentication is ', h('strong', null, me.mfaEnabled ? 'on' : 'off'), '.');
  if (!me.mfaEnabled) {
    return h('section', { class: 'card wide' }, h('h2', null, 'Two-factor authentication'), status,
      me.role.forceMfa ? null : h('p', { class: 'hint' }, 'Your role does not require it.'));
  }
  const password = h('input', { id: 'codes-password', type: 'password', autocomplete: 'current-password', required: true });
  const go = h('button', { id: 'codes-regenerate', type: 'submit' }, 'New recovery codes');
  const form = h('form', { id: 'codes-form' },
    h('p', null, 'New recovery codes replace the old ones, which stop working at once.'),
    h('label', { for: 'codes-password' }, 'Confirm your password'), password, box, go);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    show(box, null);
    go.disabled = true;
    try {
      const r = await call('POST', '/api/v1/auth/mfa/recovery-codes', { currentPassword: password.value });
      password.value = '';
      replace(out, h('p', { class: 'message success' }, 'Your new recovery codes. ',
        h('strong', null, 'They are shown only this once:'), ' store them somewhere safe.'),
      recoveryCodes(r.recoveryCodes, me.email));
    } catch (err) {
      showFailure(box, err, CODES_ERRORS);
    } finally {
      go.disabled = false;
    }
  });
  return h('section', { class: 'card wide' }, h('h2', null, 'Two-factor authentication'), status, form, out);
}

async function listSessions(el, box) {
  const r = await call('GET', '/api/v1/auth/sessions');
  const rows = r.sessions.map((s) => {
    const revoke = twoStep('revoke', s.current ? 'Sign out (this session)' : 'Revoke',
      s.current ? 'Really sign out?' : 'Really revoke?', async () => {
        show(box, null);
        try {
          await call('DELETE', `/api/v1/auth/sessions/${encodeURIComponent(s.id)}`);
          // This tab's own session: its next call fails and the router
          // shows the login page ("Your session has ended").
          if (s.current) await loadMe();
          else await listSessions(el, box);
        } catch (err) {
          showFailure(box, err);
        }
      });
    return h('tr', { dataset: { session: s.id }, class: s.current ? 'current' : null },
      h('td', null, when(s.createdAt)), h('td', null, when(s.lastSeenAt)), h('td', null, s.ip || '—'),
      h('td', { class: 'ua' }, s.userAgent || '—'), h('td', null, s.current ? 'this session' : ''), h('td', null, revoke));
  });
  replace(el, table('sessions', ['Signed in', 'Last seen', 'IP address', 'Browser', '', ''], rows, 'No sessions.'));
}

export async function accountPage(main) {
  const box = messageBox('account-message');
  const sessions = h('div');
  const sessBox = messageBox('sessions-message');
  replace(main, h('h1', null, 'My account'), box);
  let me;
  try {
    me = await loadMe();
  } catch (err) {
    showFailure(box, err);
    return;
  }
  const u = state.user || me;
  main.append(h('dl', { class: 'facts', id: 'account-facts' },
    h('dt', null, 'Name'), h('dd', null, u.name), h('dt', null, 'E-mail'), h('dd', null, u.email),
    h('dt', null, 'Role'), h('dd', null, u.role.name)),
  passwordForm(), mfaSection(me),
  h('section', { class: 'card wide' }, h('h2', null, 'Active sessions'), sessBox, sessions));
  loading(sessions);
  try {
    await listSessions(sessions, sessBox);
  } catch (err) {
    replace(sessions);
    showFailure(sessBox, err);
  }
}
