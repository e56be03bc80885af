// settings.js — /settings (the caller's partner settings) and
// /sites/:id/settings (one site's settings; linked from the organization
// page). The settings are a JSON object the server stores encrypted
// (docs/encryption.md); the page shows them as text in a <pre> and changes
// them with a JSON merge patch (RFC 7396) typed into a textarea. Values are
// the users' own text: never parsed as HTML.
import { call } from './api.js';
import { h, replace } from './dom.js';
import { failure, loading, messageBox, show } from './ui.js';

const LIMIT = 16384; // bytes of compact JSON, the server's limit on a patch and on the result
const EXAMPLE = '{\n  "smtpHost": "mail.example.com",\n  "smtpPassword": "s3cret",\n  "retired": null\n}';
const SECRET_WORDS = 'secret, password, token, key, pass, pwd, auth, dsn, private, cert or credential';
const PARTNER_REFUSED = 'Not allowed: partner settings are open only to partner staff with access to ' +
  'every organization and a role that may change organizations (orgs:write).';

// The sentence for a failed settings call ERR, or null when the router took
// over (401, 428). NOTFOUND is what a 404 says.
function settingsFailure(err, notFound) {
  if (err && err.status === 400) return `The server refused the patch: ${err.message}`;
  if (err && err.status === 413) {
    return `The patch or the settings it would give are larger than ${LIMIT} bytes of JSON: ` +
      'split the patch into smaller ones, or remove members.';
  }
  if (err && err.status === 404) return notFound;
  return failure(err);
}

// The patch typed in TEXT as an object, or a string saying why it is not one.
function parsePatch(text) {
  let patch;
  try {
    patch = JSON.parse(text);
  } catch (e) {
    return `The patch is not valid JSON (${e.message}). Nothing was sent.`;
  }
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) {
    return 'The patch must be a JSON object, such as the example. Nothing was sent.';
  }
  return patch;
}

function explanation() {
  return [
    h('p', { class: 'muted' },
      'A JSON merge patch (RFC 7396): each member you give replaces the stored one, an object merges ',
      'into the stored object member by member, and a member set to ', h('code', null, 'null'),
      ' is deleted. Members you leave out stay as they are. The patch and the result are each limited ',
      `to ${LIMIT} bytes of JSON. For example:`),
    h('pre', { id: 'settings-example', class: 'command' }, EXAMPLE),
  ];
}

function secretNote() {
  return h('p', { id: 'settings-note', class: 'message info' },
    'Every value is stored encrypted (AES-256-GCM), secret or not. Members whose names contain ',
    SECRET_WORDS, ' (in any letter case) are also hidden in the audit log, which shows every other ',
    'value of a patch: give secrets such names, e.g. smtpPassword or apiKey.');
}

// Draws one settings view into MAIN: heading TITLE (BACK a link element or
// null), the settings of PATH (GET and PATCH), NOTFOUND the 404 sentence.
async function settingsView(main, title, back, path, notFound) {
  const box = messageBox('settings-message');
  const current = h('pre', { id: 'settings-current', class: 'command' });
  const patch = h('textarea', { id: 'settings-patch', rows: 8, spellcheck: false, placeholder: '{"name": "value"}' });
  const save = h('button', { id: 'settings-save', type: 'submit' }, 'Save');
  const form = h('form', { id: 'settings-form' },
    h('label', { for: 'settings-patch' }, 'Merge patch'), patch, explanation(), h('p', null, save));
  const body = h('section', { class: 'card wide', hidden: true },
    h('h2', null, 'Current settings'), current, secretNote(), h('h2', null, 'Change'), form);
  const wait = h('div');
  replace(main, back ? h('p', null, back) : null, h('h1', { id: 'settings-title' }, title), box, wait, body);
  const draw = (obj) => {
    current.textContent = JSON.stringify(obj, null, 2);
  };
  loading(wait);
  try {
    draw(await call('GET', path));
  } catch (err) {
    replace(wait);
    const text = settingsFailure(err, notFound);
    if (text !== null) show(box, text, 'error');
    return;
  }
  replace(wait);
  body.hidden = false;
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    show(box, null);
    const p = parsePatch(patch.value);
    if (typeof p === 'string') {
      show(box, p, 'error');
      return;
    }
    save.disabled = true;
    try {
      draw(await call('PATCH', path, p));
      patch.value = '';
      show(box, 'Saved. The settings shown are the server’s answer.', 'success');
    } catch (err) {
      const text = settingsFailure(err, notFound);
      if (text !== null) show(box, text, 'error');
    } finally {
      save.disabled = false;
    }
  });
}

// /settings: the partner of the signed-in user (GET /auth/me's partnerId).
export async function partnerSettingsPage(main) {
  const box = messageBox('settings-message');
  replace(main, h('h1', { id: 'settings-title' }, 'Partner settings'), box);
  let me;
  try {
    me = await call('GET', '/api/v1/auth/me');
  } catch (err) {
    const text = failure(err);
    if (text !== null) show(box, text, 'error');
    return;
  }
  if (!me.partnerId) {
    show(box, PARTNER_REFUSED, 'error');
    return;
  }
  await settingsView(main, 'Partner settings', null,
    `/api/v1/partners/${encodeURIComponent(me.partnerId)}/settings`,
    'Your partner was not found, or its settings are not yours to see.');
}

// /sites/:id/settings.
export async function siteSettingsPage(main, params) {
  const back = h('a', { href: '/organizations', dataset: { route: '' } }, '← Organizations');
  await settingsView(main, 'Site settings', back,
    `/api/v1/sites/${encodeURIComponent(params.id)}/settings`,
    'There is no such site, or it is not yours to manage.');
}
