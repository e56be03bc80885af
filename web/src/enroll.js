// enroll.js — /mfa/enroll: TOTP enrolment, forced by the user's role (the
// server answers 428 to everything else until it is done). Three steps:
// confirm the password (POST /auth/mfa/setup), scan the QR code or type
// the secret and prove it with a code (POST /auth/mfa/enable), then save
// the recovery codes, shown this once. The router keeps the user here
// until the last step is confirmed.
import { h, replace } from './dom.js';
import { describe } from './messages.js';
import { mfaEnable, mfaSetup, state } from './session.js';
import { recoveryCodes } from './ui.js';

const SETUP_ERRORS = { invalid_password: 'That is not your current password.' };
const ENABLE_ERRORS = {
  invalid_code: 'That code is wrong or has expired. Enter the code your app shows now.',
  validation_error: 'Enter the 6-digit code your app shows.',
};

function errorBox() {
  return h('p', { class: 'message error', role: 'alert', id: 'enroll-error', hidden: true });
}

function show(box, text) {
  box.textContent = text || '';
  box.hidden = !text;
}

// The server's QR code (an SVG document) as an image: the markup goes into
// a Blob behind an object URL, never into this page's DOM, and an SVG in an
// <img> runs no script. Returns [img, release].
function qrImage(svg) {
  const url = URL.createObjectURL(new Blob([svg], { type: 'image/svg+xml' }));
  const img = h('img', { id: 'mfa-qr', src: url, alt: 'QR code to add Breeze to your authenticator app', width: 220, height: 220 });
  return [img, () => URL.revokeObjectURL(url)];
}

function frame(root, step, ...body) {
  replace(root, h('section', { class: 'card wide', id: 'enroll' },
    h('h1', null, 'Set up two-factor authentication'),
    h('p', { class: 'steps' }, `Step ${step} of 3`),
    ...body));
}

export function enrollPage(root, done) {
  const box = errorBox();
  const password = h('input', { id: 'enroll-password', type: 'password', autocomplete: 'current-password', required: true });
  const submit = h('button', { id: 'enroll-start', type: 'submit' }, 'Continue');
  const form = h('form', { id: 'enroll-password-form' },
    h('p', null, 'Your role requires two-factor authentication (MFA). Until it is set up, ',
      'the rest of the dashboard stays locked.'),
    box, h('label', { for: 'enroll-password' }, 'Confirm your password'), password, submit);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    submit.disabled = true;
    show(box, null);
    try {
      const setup = await mfaSetup(password.value);
      password.value = '';
      scanStep(root, setup, done);
    } catch (err) {
      show(box, describe(err, SETUP_ERRORS));
      submit.disabled = false;
    }
  });
  frame(root, 1, form);
  password.focus();
}

function scanStep(root, setup, done) {
  const box = errorBox();
  const [img, release] = qrImage(setup.qrSvg);
  const code = h('input', { id: 'enroll-code', inputmode: 'numeric', autocomplete: 'one-time-code', required: true });
  const submit = h('button', { id: 'enroll-verify', type: 'submit' }, 'Turn on MFA');
  const form = h('form', { id: 'enroll-code-form' },
    h('p', null, 'Scan this QR code with an authenticator app (FreeOTP, Aegis, Google Authenticator, 1Password, …):'),
    h('div', { class: 'qr' }, img),
    h('p', null, 'Or enter this secret by hand (time-based, 6 digits, 30 seconds):'),
    h('p', null, h('code', { id: 'mfa-secret', class: 'secret' }, setup.secret)),
    box, h('label', { for: 'enroll-code' }, 'The code your app shows now'), code, submit);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    submit.disabled = true;
    show(box, null);
    try {
      await mfaEnable(code.value.trim());
      release();
      codesStep(root, setup.recoveryCodes, done);
    } catch (err) {
      if (err.code === 'mfa_not_pending') {
        release();
        enrollPage(root, done);
        return;
      }
      show(box, describe(err, ENABLE_ERRORS));
      submit.disabled = false;
    }
  });
  frame(root, 2, form);
  code.focus();
}

// Asks before the tab is closed or reloaded while the codes are unsaved.
function guardUnload(ev) {
  if (state.codesPending) ev.preventDefault();
}

function codesStep(root, codes, done) {
  const saved = h('input', { id: 'codes-saved', type: 'checkbox' });
  const next = h('button', { id: 'codes-done', type: 'button', disabled: true }, 'Continue to the dashboard');
  saved.addEventListener('change', () => { next.disabled = !saved.checked; });
  next.addEventListener('click', () => {
    state.codesPending = false;
    window.removeEventListener('beforeunload', guardUnload);
    done();
  });
  window.addEventListener('beforeunload', guardUnload);
  frame(root, 3,
    h('p', { class: 'message success' }, 'MFA is on.'),
    h('p', null, 'These recovery codes let you sign in if you lose your authenticator. ',
      h('strong', null, 'They are shown only this once:'), ' store them somewhere safe.'),
    recoveryCodes(codes, state.user ? state.user.email : null),
    h('p', null, h('label', { class: 'check' }, saved, ' I have saved my recovery codes')),
    next);
}
