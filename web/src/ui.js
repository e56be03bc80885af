// ui.js — pieces the admin pages share: message boxes, tables, times, the
// organization names, and the panel for values shown only once (recovery
// codes, a generated password, a webhook's signing secret) with Copy and
// Download. Everything is built through dom.js: values are text.
import { call } from './api.js';
import { h, replace } from './dom.js';
import { describe } from './messages.js';

// A hidden message paragraph with id ID; show() fills it.
export function messageBox(id, kind) {
  return h('p', { id, class: `message ${kind || 'error'}`, role: kind === 'success' ? 'status' : 'alert', hidden: true });
}

// Shows TEXT in BOX (hides it for null/''); KIND 'error', 'success', 'info'.
export function show(box, text, kind) {
  if (kind) box.className = `message ${kind}`;
  box.textContent = text || '';
  box.hidden = !text;
}

// What a page says about a failed call ERR, or null when the router already
// took over (401: signed out; 428: enrolment). A 403 says so in words.
export function failure(err, specific) {
  if (err && (err.status === 401 || err.status === 428)) return null;
  if (err && err.status === 403 && !(specific && specific[err.code])) {
    return `Not allowed: ${describe(err)}`;
  }
  return describe(err, specific);
}

// Shows failure(ERR) in BOX (nothing when the router took over).
export function showFailure(box, err, specific) {
  const text = failure(err, specific);
  if (text !== null) show(box, text, 'error');
}

// "3 minutes ago" for an ISO time TS, as a <time> with the exact local time
// on hover; '—' for null.
export function when(ts) {
  if (!ts) return '—';
  const t = new Date(ts);
  if (Number.isNaN(t.getTime())) return String(ts);
  const s = Math.round((Date.now() - t.getTime()) / 1000);
  const a = Math.abs(s);
  let rel;
  if (a < 60) rel = 'just now';
  else if (a < 3600) rel = `${Math.round(a / 60)} min`;
  else if (a < 86400) rel = `${Math.round(a / 3600)} h`;
  else rel = `${Math.round(a / 86400)} d`;
  if (a >= 60) rel = s >= 0 ? `${rel} ago` : `in ${rel}`;
  return h('time', { datetime: ts, title: t.toLocaleString() }, rel);
}

// A table with id ID: HEADERS (strings) and ROWS (arrays of cells, or
// <tr> elements); EMPTY is the text of a table without rows.
export function table(id, headers, rows, empty) {
  const body = h('tbody');
  for (const r of rows) body.append(r instanceof Node ? r : h('tr', null, r.map((c) => h('td', null, c))));
  if (rows.length === 0) body.append(h('tr', null, h('td', { colspan: headers.length, class: 'muted' }, empty || 'None.')));
  return h('table', { id, class: 'list' }, h('thead', null, h('tr', null, headers.map((x) => h('th', null, x)))), body);
}

// {id: name} of every organization the caller can see (GET /organizations).
export async function orgNames() {
  const r = await call('GET', '/api/v1/organizations');
  const names = {};
  for (const o of r.organizations) names[o.id] = o.name;
  return [r.organizations, names];
}

// A <select> with id ID of OPTIONS [[value, label]], VALUE selected.
export function select(id, options, value) {
  return h('select', { id }, options.map(([v, label]) => h('option', { value: v, selected: v === value }, label)));
}

// Copy and Download buttons for TEXT (ids PREFIX-copy, PREFIX-download;
// FILENAME of the download), reporting into a status line PREFIX-status.
// Returns [buttonsRow, status].
export function copyDownload(prefix, text, filename) {
  const status = h('p', { class: 'message info', id: `${prefix}-status`, role: 'status', hidden: true });
  const copy = h('button', { id: `${prefix}-copy`, type: 'button' }, 'Copy');
  copy.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(text);
      show(status, 'Copied to the clipboard.');
    } catch (e) {
      show(status, 'Copying is not allowed here: select the text and copy it, or download it.');
    }
  });
  const download = filename ? h('button', { id: `${prefix}-download`, type: 'button' }, 'Download') : null;
  if (download) {
    download.addEventListener('click', () => {
      const url = URL.createObjectURL(new Blob([text], { type: 'text/plain' }));
      const a = h('a', { href: url, download: filename, hidden: true });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
      show(status, `Downloaded ${filename}.`);
    });
  }
  return [h('p', { class: 'row' }, copy, download), status];
}

// The recovery codes CODES of the account EMAIL, shown once: the list
// (#recovery-codes), Copy and Download (breeze-recovery-codes.txt).
export function recoveryCodes(codes, email) {
  const text = `Breeze recovery codes for ${email || 'your account'}\n` +
    'Each code works once, instead of an authenticator code.\n\n' + codes.join('\n') + '\n';
  const [buttons, status] = copyDownload('codes', text, 'breeze-recovery-codes.txt');
  return [h('ol', { id: 'recovery-codes', class: 'codes' }, codes.map((c) => h('li', null, h('code', null, c)))),
    buttons, status];
}

// A value shown only once (id ID), with a Copy button: LABEL, VALUE.
export function shownOnce(id, label, value) {
  const [buttons, status] = copyDownload(id, value, null);
  return h('div', { class: 'message success once', id: `${id}-panel` },
    h('p', null, label, ' ', h('strong', null, 'It is shown only this once.')),
    h('p', null, h('code', { id, class: 'secret' }, value)), buttons, status);
}

// Replaces EL with a loading line.
export function loading(el) {
  replace(el, h('p', { class: 'muted' }, 'Loading…'));
}

// A button for a destructive action that asks with a second click: the
// first click changes LABEL to CONFIRMLABEL ("armed"), the second runs
// ACT(). The arm lasts ARM_MS at most and is dropped when the button loses
// focus or Escape is pressed, so only a click right after the question
// confirms it. CLS: its class (tests and styles find it by that).
const ARM_MS = 5000;

export function twoStep(cls, label, confirmLabel, act) {
  const b = h('button', { type: 'button', class: `secondary ${cls}` }, label);
  let timer = null;
  const disarm = () => {
    clearTimeout(timer);
    timer = null;
    b.textContent = label;
    b.classList.remove('armed');
  };
  b.addEventListener('blur', disarm);
  const onKey = (ev) => {
    if (!b.isConnected) document.removeEventListener('keydown', onKey); // its page is gone
    else if (ev.key === 'Escape') disarm();
  };
  document.addEventListener('keydown', onKey);
  b.addEventListener('click', async () => {
    if (timer === null) {
      b.textContent = confirmLabel;
      b.classList.add('armed');
      timer = setTimeout(() => disarm(), ARM_MS);
      return;
    }
    disarm();
    b.disabled = true;
    try {
      await act();
    } finally {
      b.disabled = false;
    }
  });
  return b;
}
