// login.js — /login: e-mail and password, then the MFA step (a TOTP code
// or a recovery code) when the account has MFA on.
import { h, replace } from './dom.js';
import { describe } from './messages.js';
import { login, state, verifyMfa } from './session.js';

const PASSWORD_ERRORS = {
  invalid_credentials: 'Wrong e-mail or password.',
};
const MFA_ERRORS = {
  invalid_code: 'That code is wrong, expired or already used. Check your authenticator app and try again.',
  validation_error: 'Enter the 6-digit code, or a recovery code like ABCD-EFGH.',
};
const DEAD_TOKEN = 'This sign-in attempt has expired or had too many wrong codes. Enter your e-mail and password again.';

function messageBox() {
  return h('p', { class: 'message error', role: 'alert', id: 'login-error', hidden: true });
}

function show(box, text) {
  box.textContent = text || '';
  box.hidden = !text;
}

// Disables BUTTON until RETRYAFTER seconds have passed (a 429).
function holdOff(button, err) {
  if (err.status !== 429 || !err.retryAfter) return;
  button.disabled = true;
  setTimeout(() => { button.disabled = false; }, err.retryAfter * 1000);
}

// Runs the async ACTION with BUTTON disabled; errors go to BOX through
// describe(err, CODES). Resolves to true when ACTION succeeded.
async function attempt(button, box, codes, action) {
  button.disabled = true;
  show(box, null);
  try {
    await action();
    return true;
  } catch (err) {
    show(box, describe(err, codes));
    button.disabled = false;
    holdOff(button, err);
    return false;
  }
}

export function loginPage(root, done) {
  const box = messageBox();
  const flash = state.flash;
  state.flash = null;
  // type=text, not email: the browser's e-mail syntax is narrower than the
  // server's (UTF-8 local parts), and an address the API accepts must be
  // able to sign in. The server validates it.
  const email = h('input', {
    id: 'email', type: 'text', inputmode: 'email', autocomplete: 'username',
    autocapitalize: 'off', spellcheck: 'false', required: true,
  });
  const password = h('input', { id: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const submit = h('button', { id: 'login-submit', type: 'submit' }, 'Sign in');
  const form = h('form', { id: 'login-form', class: 'card' },
    h('h1', null, 'Sign in to Breeze'),
    flash ? h('p', { class: 'message info', id: 'login-flash' }, flash) : null,
    box,
    h('label', { for: 'email' }, 'E-mail'), email,
    h('label', { for: 'password' }, 'Password'), password,
    submit);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    let challenge = null;
    const ok = await attempt(submit, box, PASSWORD_ERRORS, async () => {
      challenge = await login(email.value.trim(), password.value);
    });
    if (!ok) return;
    password.value = '';
    if (challenge) mfaStep(root, challenge, email.value.trim(), done);
    else done();
  });
  replace(root, h('main', { class: 'center' }, form));
  email.focus();
}

function mfaStep(root, challenge, email, done) {
  const box = messageBox();
  let recovery = false;
  const label = h('label', { for: 'mfa-code' });
  const input = h('input', { id: 'mfa-code', autocomplete: 'one-time-code', required: true, spellcheck: 'false' });
  const hint = h('p', { class: 'hint' });
  const toggle = h('button', { id: 'mfa-toggle', type: 'button', class: 'link' });
  const submit = h('button', { id: 'mfa-submit', type: 'submit' }, 'Verify');
  const restart = h('button', { id: 'mfa-restart', type: 'button', class: 'link' }, 'Start over');
  function mode() {
    label.textContent = recovery ? 'Recovery code' : 'Authentication code';
    hint.textContent = recovery
      ? 'One of the recovery codes you saved when you set up MFA (each works once).'
      : 'The 6-digit code your authenticator app shows for Breeze.';
    toggle.textContent = recovery ? 'Use a code from the app instead' : 'Use a recovery code instead';
    input.inputMode = recovery ? 'text' : 'numeric';
    input.value = '';
    input.focus();
  }
  toggle.addEventListener('click', () => { recovery = !recovery; show(box, null); mode(); });
  restart.addEventListener('click', () => loginPage(root, done));
  const form = h('form', { id: 'mfa-form', class: 'card' },
    h('h1', null, 'Two-factor authentication'),
    h('p', null, 'Signing in as ', h('strong', null, email), '.'),
    box, label, input, hint, submit, h('p', { class: 'row' }, toggle, restart));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const value = input.value.trim();
    let dead = false;
    const ok = await attempt(submit, box, MFA_ERRORS, async () => {
      try {
        await verifyMfa(challenge.mfaToken, recovery ? { recoveryCode: value } : { code: value });
      } catch (err) {
        dead = err.code === 'mfa_token_invalid';
        throw err;
      }
    });
    if (ok) {
      done();
    } else if (dead) {
      state.flash = DEAD_TOKEN;
      loginPage(root, done);
    }
  });
  replace(root, h('main', { class: 'center' }, form));
  mode();
}
