// devices_detail.js — /devices/:id: one device (GET /api/v1/devices/:id)
// with its inventory, hardware, latest metrics and source-IP history, and
// the actions the API offers for its state, each behind a confirmation
// dialog: ask the agent to rotate its token (202), the emergency reset of
// every token, decommissioning, and the review of a device suspended by a
// cross-tenant probe (docs/agent-tokens.md, docs/probes-and-addresses.md).
// Another tenant's device answers 404 like a missing one: the page shows
// "not found" and nothing else.
import { h, replace } from './dom.js';
import { badge, can, confirmDialog, errorBox, orgNames, show, siteNames, when } from './devices_ui.js';
import { call } from './api.js';
import { DEVICE_ERRORS, describe } from './messages.js';

function row(label, value) {
  return [h('dt', null, label), h('dd', null, value)];
}

function bytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n >= 10 || i === 0 ? Math.round(n) : n.toFixed(1)} ${units[i]}`;
}

// A value of the agent's JSON as text (never markup).
function text(key, v) {
  if (v === null || v === undefined) return '—';
  if (typeof v === 'number' && /Bytes$/.test(key)) return bytes(v);
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

function facts(id, obj) {
  const keys = Object.keys(obj || {}).sort();
  if (keys.length === 0) return h('p', { id, class: 'muted' }, 'Nothing reported yet.');
  return h('dl', { id, class: 'facts' }, keys.map((k) => row(k, text(k, obj[k]))));
}

function ipHistory(list) {
  if (list.length === 0) return h('p', { id: 'ip-history', class: 'muted' }, 'No source address recorded yet.');
  return h('table', { id: 'ip-history', class: 'grid' },
    h('thead', null, h('tr', null, h('th', null, 'Source IP'), h('th', null, 'First seen'), h('th', null, 'Last seen'))),
    h('tbody', null, list.map((e) => h('tr', null, h('td', null, h('code', null, e.ip)),
      h('td', null, when(e.firstSeenAt)), h('td', null, when(e.lastSeenAt))))));
}

// The actions for D's state: [id, label, confirm title, confirm text,
// confirm button, danger, path, status answered].
function plainActions(d) {
  if (d.status === 'suspended' || d.status === 'decommissioned') return [];
  return [
    ['action-rotate', 'Rotate agent token', 'Rotate the agent token?',
      `The agent of ${d.hostname} gets a new token on its next heartbeat and confirms it; the old one then stops working.`,
      'Request rotation', false, 'rotate-agent-token'],
    ['action-reset', 'Reset agent token', 'Reset every agent token now?',
      `For a stolen token: every token of ${d.hostname} stops working at once, with no grace period. ` +
        'The agent is refused from then on and must be enrolled again with an enrolment key (as a new device).',
      'Reset now', true, 'reset-agent-token'],
    ['action-decommission', 'Decommission', 'Decommission this device?',
      `${d.hostname} leaves the device list and its agent token stops working. Its history and audit trail stay.`,
      'Decommission', true, 'decommission'],
  ];
}

const DONE = {
  'rotate-agent-token': (d) => `Rotation requested: the agent gets a new token on its next heartbeat (every ${d.heartbeatIntervalSeconds} seconds).`,
  'reset-agent-token': () => 'Every agent token of this device was retired: its agent is refused from now on. ' +
    'The reset issues no new token: to bring the machine back, create an enrolment key and enrol the agent again ' +
    '(it becomes a new device), then decommission this one.',
  decommission: () => 'The device is decommissioned: its agent token no longer works.',
  review: (d) => `Reviewed: the device is decommissioned and its re-enrolment is ${d.reenrollmentBlocked ? 'blocked' : 'allowed'}.`,
};

// The review of a suspended device (both decisions end it), or of one a
// review decommissioned (only allow_reenrollment is accepted then).
function reviewForm(d, run) {
  const onlyAllow = d.status !== 'suspended';
  const choice = (value, label, checked) => h('label', { class: 'check' },
    h('input', { type: 'radio', name: 'decision', value, checked }), ' ', label);
  const note = h('textarea', { id: 'review-note', rows: 2, maxlength: 1000, required: true });
  const form = h('form', { id: 'review-form' },
    h('p', null, onlyAllow
      ? 'A review decommissioned this device and blocked its hostname and hardware from enrolling again in its organization.'
      : `Suspended: its agent token was used on another organization's device${d.suspension ? ` (${d.suspension.reason})` : ''}. Decide what becomes of it; both decisions decommission it.`),
    onlyAllow ? null : choice('decommission', 'Decommission and keep blocking re-enrolment', true),
    choice('allow_reenrollment', 'Decommission and allow the machine to enrol again (as a new device)', onlyAllow),
    h('label', { for: 'review-note' }, 'Note (why; kept in the audit log)'), note,
    h('button', { id: 'action-review', type: 'submit' }, onlyAllow ? 'Allow re-enrolment' : 'Review'));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const decision = form.querySelector('input[name=decision]:checked').value;
    const allow = decision === 'allow_reenrollment';
    run('review', { decision, note: note.value.trim() }, {
      id: 'confirm-review', title: allow ? 'Allow this machine to enrol again?' : 'Decommission and keep it blocked?',
      body: allow ? `${d.hostname} is decommissioned; the machine may enrol again with an enrolment key.`
        : `${d.hostname} is decommissioned; its hostname and hardware cannot enrol in its organization until a later review allows it.`,
      confirmLabel: allow ? 'Allow re-enrolment' : 'Decommission', danger: !allow,
    });
  });
  return form;
}

function actionsCard(d, run) {
  if (!can('devices:write')) return null;
  const reviewable = d.status === 'suspended' || (d.review && d.review.decision === 'decommission');
  const buttons = plainActions(d).map(([id, label, title, body, confirmLabel, danger, path]) => {
    const b = h('button', { id, type: 'button', class: danger ? 'danger' : null }, label);
    b.addEventListener('click', () => run(path, undefined, { id: `confirm-${path}`, title, body, confirmLabel, danger }));
    return b;
  });
  if (buttons.length === 0 && !reviewable) return null;
  return h('section', { class: 'card full', id: 'device-actions' }, h('h2', null, 'Actions'),
    buttons.length ? h('p', { class: 'row' }, buttons) : null, reviewable ? reviewForm(d, run) : null);
}

function draw(main, d, names, notice) {
  const result = h('p', { class: 'message success', id: 'action-result', role: 'status', hidden: !notice }, notice || '');
  const box = errorBox('action-error');
  const site = names.sites.get(d.siteId);
  const run = async (path, body, dialog) => {
    show(box, null);
    result.hidden = true;
    if (!(await confirmDialog(dialog))) return;
    try {
      const after = await call('POST', `/api/v1/devices/${encodeURIComponent(d.id)}/${path}`, body);
      draw(main, after, names, DONE[path](after));
    } catch (err) {
      if (err.status !== 401 && err.status !== 428) show(box, describe(err, DEVICE_ERRORS));
    }
  };
  replace(main,
    h('p', null, h('a', { href: '/devices', dataset: { route: '' } }, '« All devices')),
    h('h1', { class: 'row' }, h('span', { id: 'device-hostname' }, d.hostname), badge(d.status)),
    result, box,
    h('section', { class: 'card full' }, h('dl', { id: 'device-facts', class: 'facts' },
      row('Display name', d.displayName || '—'),
      row('Organization', names.orgs.get(d.orgId) || d.orgId), row('Site', site ? site.name : d.siteId),
      row('Operating system', `${d.osType} ${d.osVersion}`), row('Architecture', d.architecture),
      row('Agent version', d.agentVersion), row('Last seen', when(d.lastSeenAt, 'never')),
      row('Source IP', d.lastIp || '—'), row('Enrolled', when(d.enrolledAt)),
      row('Uptime', d.uptimeSeconds === null ? '—' : `${Math.floor(d.uptimeSeconds / 3600)} h ${Math.floor(d.uptimeSeconds / 60) % 60} min`),
      row('Heartbeat interval', `${d.heartbeatIntervalSeconds} s`),
      d.suspension ? row('Suspended', [d.suspension.reason, ' ', when(d.suspension.at)]) : null,
      d.review ? row('Review', [d.review.decision, ': ', d.review.note, ' ', when(d.review.at)]) : null,
      d.decommissionedAt ? row('Decommissioned', when(d.decommissionedAt)) : null,
      row('Device id', h('code', null, d.id)))),
    actionsCard(d, run),
    h('section', { class: 'card full' }, h('h2', null, 'Source-IP history'), ipHistory(d.ipHistory)),
    h('section', { class: 'card full' }, h('h2', null, 'Inventory'), facts('device-inventory', d.inventory)),
    h('section', { class: 'card full' }, h('h2', null, 'Hardware'), facts('device-hardware', d.hardware)),
    h('section', { class: 'card full' }, h('h2', null, 'Latest metrics'), facts('device-metrics', d.metrics)));
  document.title = `${d.hostname} — Breeze`;
}

export async function devicePage(main, params) {
  replace(main, h('p', { class: 'muted' }, 'Loading the device…'));
  try {
    const d = await call('GET', `/api/v1/devices/${encodeURIComponent(params.id)}`);
    const [orgs, sites] = await Promise.all([orgNames(), siteNames([d.orgId])]);
    draw(main, d, { orgs, sites });
  } catch (err) {
    if (err.status === 401 || err.status === 428) return;
    const notFound = err.status === 404 || err.status === 400;
    replace(main, h('h1', null, notFound ? 'Device not found' : 'Device'),
      h('p', { class: 'message error', role: 'alert', id: 'device-error' },
        notFound ? DEVICE_ERRORS.not_found : describe(err, DEVICE_ERRORS)),
      h('p', null, h('a', { href: '/devices', dataset: { route: '' } }, '« All devices')));
  }
}
