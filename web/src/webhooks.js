// webhooks.js — /webhooks (list; create, showing the signing secret once;
// enable/disable; send a test delivery; delete after a second click) and
// /webhooks/:id (the webhook and its recent deliveries with their status).
// No JavaScript dialogs: confirmations are a second click on the button.
import { call } from './api.js';
import { h, replace } from './dom.js';
import { loading, messageBox, orgNames, select, show, showFailure, shownOnce, table, twoStep, when } from './ui.js';

const ERRORS = {
  webhook_disabled: 'The webhook is disabled: enable it to send a test.',
  encryption_key_missing: 'The server has no APP_ENCRYPTION_KEY: webhooks cannot be created.',
};

function path(id, tail) {
  return `/api/v1/webhooks/${encodeURIComponent(id)}${tail || ''}`;
}

// A button that asks once more ("Really delete?") before running ACT.
function webhookRow(w, names, box, reload) {
  const run = async (fn, done) => {
    show(box, null);
    try {
      await fn();
      await reload();
      if (done) show(box, done, 'success');
    } catch (err) {
      showFailure(box, err, ERRORS);
    }
  };
  const toggle = h('button', { type: 'button', class: 'secondary toggle' }, w.enabled ? 'Disable' : 'Enable');
  toggle.addEventListener('click', () => run(() => call('PATCH', path(w.id), { enabled: !w.enabled }),
    `Webhook ${w.enabled ? 'disabled' : 'enabled'}.`));
  const test = h('button', { type: 'button', class: 'secondary test' }, 'Send test');
  test.addEventListener('click', () => run(() => call('POST', path(w.id, '/test')), 'Test delivery queued.'));
  const del = twoStep('delete', 'Delete', 'Really delete?', () => run(() => call('DELETE', path(w.id)), 'Webhook deleted.'));
  return h('tr', { dataset: { webhook: w.id } },
    h('td', null, h('a', { href: `/webhooks/${encodeURIComponent(w.id)}`, dataset: { route: '' } }, w.url)),
    h('td', null, w.events.join(', ')), h('td', null, names[w.orgId] || w.orgId),
    h('td', { class: 'state' }, w.enabled ? 'enabled' : 'disabled'), h('td', null, when(w.createdAt)),
    h('td', { class: 'actions' }, toggle, test, del));
}

function createForm(orgs, created) {
  const org = select('webhook-org', orgs.map((o) => [o.id, o.name]), orgs.length ? orgs[0].id : '');
  const url = h('input', { id: 'webhook-url', type: 'url', maxlength: 2048, required: true, placeholder: 'https://hooks.example.com/breeze' });
  const events = h('input', { id: 'webhook-events', value: '*', required: true });
  const go = h('button', { id: 'webhook-create', type: 'submit' }, 'Create webhook');
  const form = h('form', { id: 'webhook-form', class: 'grid' },
    h('label', { for: 'webhook-org' }, 'Organization'), org,
    h('label', { for: 'webhook-url' }, 'URL'), url,
    h('label', { for: 'webhook-events' }, 'Events'), events,
    h('p', { class: 'hint' }, 'Audit actions, separated by commas (e.g. device.enroll, agent.token.suspended), or * for all.'), go);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    go.disabled = true;
    try {
      const list = events.value.split(',').map((x) => x.trim()).filter(Boolean);
      if (await created({ orgId: org.value, url: url.value.trim(), events: list })) url.value = '';
    } finally {
      go.disabled = false;
    }
  });
  return form;
}

export async function webhooksPage(main) {
  const box = messageBox('webhooks-message');
  const once = h('div');
  const formCard = h('section', { class: 'card wide form-card' }, h('h2', null, 'New webhook'));
  const list = h('div');
  replace(main, h('h1', null, 'Webhooks'), formCard, box, once, list);
  loading(list);
  let orgs;
  let names;
  try {
    [orgs, names] = await orgNames();
  } catch (err) {
    replace(list);
    showFailure(box, err);
    return;
  }
  const reload = async () => {
    const r = await call('GET', '/api/v1/webhooks?limit=200');
    replace(list, table('webhooks', ['URL', 'Events', 'Organization', 'State', 'Created', ''],
      r.webhooks.map((w) => webhookRow(w, names, box, reload)), 'No webhooks.'));
  };
  formCard.append(createForm(orgs, async (body) => {
    show(box, null);
    replace(once);
    try {
      const w = await call('POST', '/api/v1/webhooks', body);
      await reload();
      replace(once, shownOnce('webhook-secret', 'The signing secret of the new webhook (X-Breeze-Signature, docs/webhooks.md):', w.secret));
      return true;
    } catch (err) {
      showFailure(box, err, ERRORS);
      return false;
    }
  }));
  try {
    await reload();
  } catch (err) {
    replace(list);
    showFailure(box, err);
  }
}

function deliveryRow(d) {
  return h('tr', { dataset: { delivery: d.id }, class: `status-${d.status}` },
    h('td', null, when(d.createdAt)), h('td', null, d.event), h('td', { class: 'status' }, d.status),
    h('td', null, String(d.attempts)), h('td', null, d.lastStatus === null ? '—' : String(d.lastStatus)),
    h('td', null, d.lastError || '—'), h('td', null, d.deliveredAt ? when(d.deliveredAt) : when(d.nextAttemptAt)));
}

export async function webhookPage(main, params) {
  const id = params.id;
  const box = messageBox('webhook-message');
  const facts = h('dl', { class: 'facts', id: 'webhook-facts' });
  const list = h('div');
  const test = h('button', { id: 'webhook-test', type: 'button' }, 'Send test delivery');
  replace(main, h('p', null, h('a', { href: '/webhooks', dataset: { route: '' } }, '← Webhooks')),
    h('h1', null, 'Webhook'), box, facts, h('p', { class: 'row' }, test), h('h2', null, 'Recent deliveries'), list);
  const reload = async () => {
    const r = await call('GET', path(id, '/deliveries?limit=50'));
    replace(list, table('deliveries', ['Queued', 'Event', 'Status', 'Attempts', 'HTTP', 'Last error', 'Delivered / next'],
      r.deliveries.map(deliveryRow), 'No deliveries yet.'));
  };
  test.addEventListener('click', async () => {
    test.disabled = true;
    show(box, null);
    try {
      await call('POST', path(id, '/test'));
      await reload();
      show(box, 'Test delivery queued.', 'success');
    } catch (err) {
      showFailure(box, err, ERRORS);
    } finally {
      test.disabled = false;
    }
  });
  loading(list);
  try {
    const w = await call('GET', path(id));
    replace(facts, h('dt', null, 'URL'), h('dd', null, w.url), h('dt', null, 'Events'), h('dd', null, w.events.join(', ')),
      h('dt', null, 'State'), h('dd', { id: 'webhook-state' }, w.enabled ? 'enabled' : 'disabled'),
      h('dt', null, 'Created'), h('dd', null, when(w.createdAt)));
    await reload();
  } catch (err) {
    replace(list);
    showFailure(box, err, { not_found: 'There is no such webhook, or it is not yours to see.', ...ERRORS });
  }
}
