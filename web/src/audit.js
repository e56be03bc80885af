// audit.js — /audit: the audit log with its filters in the URL (a reload or
// a bookmark keeps them), keyset pagination ("Older entries" passes the
// server's nextCursor back), each entry's details expandable (JSON as text
// in a <pre>), and "Verify chain": GET /audit/verify per organization, with
// where each chain broke (kind, seq, row id).
import { call } from './api.js';
import { h, replace } from './dom.js';
import { loading, messageBox, orgNames, select, show, showFailure, table, when } from './ui.js';

// URL parameter -> label; the same names as the API's query parameters.
const FILTERS = [['resource', 'Resource'], ['action', 'Action'], ['actorId', 'Actor id'],
  ['from', 'From (UTC, e.g. 2026-01-02T03:04:05Z)'], ['to', 'To (UTC)']];
const ACTOR_TYPES = [['', 'any actor type'], ['user', 'user'], ['api_key', 'API key'], ['agent', 'agent'], ['system', 'system']];
const PAGE = 50;

function filtersFromUrl() {
  const q = new URLSearchParams(location.search);
  const f = {};
  for (const k of ['orgId', 'actorType', ...FILTERS.map(([n]) => n)]) {
    const v = q.get(k);
    if (v) f[k] = v;
  }
  return f;
}

function query(filters, cursor) {
  const q = new URLSearchParams(filters);
  q.set('limit', String(PAGE));
  if (cursor) q.set('cursor', cursor);
  return q.toString();
}

function entryRow(e, names) {
  const actor = e.actorId ? `${e.actorType} ${e.actorId}` : e.actorType;
  return h('tr', { class: `result-${e.result}`, dataset: { id: String(e.id) } },
    h('td', null, when(e.timestamp)), h('td', null, e.action),
    h('td', null, e.resourceId ? `${e.resource} ${e.resourceId}` : e.resource),
    h('td', null, actor), h('td', null, e.result),
    h('td', null, e.orgId ? (names[e.orgId] || e.orgId) : 'partner'),
    h('td', null, h('details', { class: 'entry' }, h('summary', null, `#${e.seq}`),
      h('pre', null, JSON.stringify({ details: e.details, ipAddress: e.ipAddress, seq: e.seq, id: e.id,
        timestamp: e.timestamp, checksum: e.checksum, prevChecksum: e.prevChecksum }, null, 2)))));
}

function filterForm(filters, orgs) {
  const inputs = {};
  const fields = FILTERS.map(([n, label]) => {
    inputs[n] = h('input', { id: `audit-${n}`, name: n, value: filters[n] || '' });
    return h('span', { class: 'field' }, h('label', { for: `audit-${n}` }, label), inputs[n]);
  });
  inputs.actorType = select('audit-actorType', ACTOR_TYPES, filters.actorType || '');
  inputs.orgId = select('audit-orgId', [['', 'every organization'], ...orgs.map((o) => [o.id, o.name])],
    filters.orgId || '');
  const form = h('form', { id: 'audit-filters', class: 'filters' },
    h('span', { class: 'field' }, h('label', { for: 'audit-orgId' }, 'Organization'), inputs.orgId),
    ...fields,
    h('span', { class: 'field' }, h('label', { for: 'audit-actorType' }, 'Actor type'), inputs.actorType),
    h('span', { class: 'field' }, h('button', { id: 'audit-apply', type: 'submit' }, 'Apply'),
      h('a', { href: '/audit', dataset: { route: '' }, id: 'audit-clear' }, 'Clear')));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams();
    for (const [k, el] of Object.entries(inputs)) if (el.value.trim()) q.set(k, el.value.trim());
    const s = q.toString();
    history.pushState(null, '', s ? `/audit?${s}` : '/audit');
    dispatchEvent(new PopStateEvent('popstate'));
  });
  return form;
}

function breakText(b) {
  const where = [b.seq !== null ? `seq ${b.seq}` : null, b.id !== null ? `row ${b.id}` : null].filter(Boolean);
  return `${b.kind}${where.length ? ` at ${where.join(', ')}` : ''}: ${b.detail}`;
}

function verifyRow(label, key, rep) {
  return h('tr', { dataset: { chain: key }, class: rep.ok ? 'ok' : 'broken' },
    h('td', null, label), h('td', { class: 'verdict' }, rep.ok ? 'OK' : 'BROKEN'),
    h('td', null, String(rep.rowsChecked)),
    h('td', null, rep.breaks.length === 0 ? '—'
      : h('ul', { class: 'breaks' }, rep.breaks.map((b) => h('li', null, breakText(b))),
        rep.breaksTotal ? h('li', null, `… ${rep.breaksTotal} breaks in all`) : null)));
}

function chains(n) {
  return n === 1 ? '1 chain' : `${n} chains`;
}

// Verifies the chain of the selected organization, or of every one (a few
// at a time), and lists the reports.
async function verify(out, orgs, orgId) {
  const todo = orgId ? orgs.filter((o) => o.id === orgId) : orgs;
  const rows = [];
  loading(out);
  let next = 0;
  const worker = async () => {
    while (next < todo.length) {
      const o = todo[next++];
      try {
        const rep = await call('GET', `/api/v1/audit/verify?orgId=${encodeURIComponent(o.id)}`);
        rows.push([o.name, verifyRow(o.name, o.id, rep)]);
      } catch (err) {
        rows.push([o.name, h('tr', { dataset: { chain: o.id } }, h('td', null, o.name),
          h('td', { class: 'verdict' }, 'not checked'), h('td', null, '—'), h('td', null, err.message))]);
      }
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
  rows.sort((a, b) => a[0].localeCompare(b[0]));
  const broken = rows.filter(([, r]) => r.classList.contains('broken')).length;
  replace(out, h('p', { id: 'verify-summary', class: `message ${broken ? 'error' : 'success'}` },
    broken ? `Broken: ${broken} of ${chains(rows.length)}.` : `Verified ${chains(rows.length)}: all OK.`),
  table('verify', ['Organization', 'Result', 'Rows checked', 'Breaks'], rows.map(([, r]) => r)));
}

export async function auditPage(main) {
  const filters = filtersFromUrl();
  const box = messageBox('audit-message');
  const verifyOut = h('div', { id: 'verify-result' });
  const list = h('div');
  const more = h('button', { id: 'audit-more', type: 'button', class: 'secondary', hidden: true }, 'Older entries');
  const verifyBtn = h('button', { id: 'audit-verify', type: 'button' }, 'Verify chain');
  const head = h('div');
  replace(main, h('h1', null, 'Audit log'), head, box, verifyOut, list, more);
  loading(list);
  let orgs = [];
  let names = {};
  try {
    [orgs, names] = await orgNames();
  } catch (err) {
    showFailure(box, err);
    return;
  }
  replace(head, filterForm(filters, orgs), h('p', { class: 'row' }, verifyBtn,
    h('span', { class: 'hint' }, 'Checks every checksum and link of the selected organization’s chain (or of every organization).')));
  verifyBtn.addEventListener('click', async () => {
    verifyBtn.disabled = true;
    try {
      await verify(verifyOut, orgs, filters.orgId);
    } finally {
      verifyBtn.disabled = false;
    }
  });
  const body = h('tbody');
  let cursor = null;
  const page = async () => {
    more.disabled = true;
    try {
      const r = await call('GET', `/api/v1/audit?${query(filters, cursor)}`);
      for (const e of r.entries) body.append(entryRow(e, names));
      cursor = r.nextCursor;
      more.hidden = cursor === null;
      if (body.children.length === 0) body.append(h('tr', null, h('td', { colspan: 7, class: 'muted' }, 'No entries.')));
    } catch (err) {
      showFailure(box, err);
    } finally {
      more.disabled = false;
    }
  };
  more.addEventListener('click', page);
  const t = table('audit', ['Time', 'Action', 'Resource', 'Actor', 'Result', 'Organization', 'Details'], []);
  t.replaceChild(body, t.tBodies[0]);
  replace(list, t);
  await page();
}
