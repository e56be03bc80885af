// orgs.js — /organizations (list and create) and /organizations/:id (the
// organization's sites: list and create). Names are the users' own text:
// rendered as text nodes only.
import { call } from './api.js';
import { h, replace } from './dom.js';
import { loading, messageBox, show, showFailure, table, when } from './ui.js';

const CREATE_ERRORS = { conflict: 'That name is already taken.' };

// A one-field create form: INPUT id ID, button BUTTON; SUBMIT(name) posts.
function nameForm(id, label, button, submit) {
  const name = h('input', { id, maxlength: 200, required: true });
  const go = h('button', { id: `${id}-submit`, type: 'submit' }, button);
  const form = h('form', { class: 'inline' }, h('label', { for: id }, label), name, go);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    go.disabled = true;
    try {
      await submit(name.value.trim());
      name.value = '';
    } finally {
      go.disabled = false;
    }
  });
  return form;
}

async function listOrgs(el) {
  const r = await call('GET', '/api/v1/organizations');
  replace(el, table('orgs', ['Name', 'Created'], r.organizations.map((o) => [
    h('a', { href: `/organizations/${encodeURIComponent(o.id)}`, dataset: { route: '' } }, o.name),
    when(o.createdAt)]), 'No organizations.'));
}

export async function orgsPage(main) {
  const box = messageBox('orgs-message');
  const list = h('div');
  const form = nameForm('org-name', 'New organization', 'Create organization', async (name) => {
    show(box, null);
    try {
      const o = await call('POST', '/api/v1/organizations', { name });
      await listOrgs(list);
      show(box, `Created the organization “${o.name}”.`, 'success');
    } catch (err) {
      showFailure(box, err, CREATE_ERRORS);
    }
  });
  replace(main, h('h1', null, 'Organizations'), h('section', { class: 'card wide' }, form), box, list);
  loading(list);
  try {
    await listOrgs(list);
  } catch (err) {
    replace(list);
    showFailure(box, err);
  }
}

async function listSites(el, id) {
  const r = await call('GET', `/api/v1/organizations/${encodeURIComponent(id)}/sites`);
  const settings = (s) => h('a', { href: `/sites/${encodeURIComponent(s.id)}/settings`, class: 'site-settings',
    dataset: { route: '' } }, 'Settings');
  replace(el, table('sites', ['Site', 'Created', ''], r.sites.map((s) => [s.name, when(s.createdAt), settings(s)]),
    'No sites.'));
}

export async function orgPage(main, params) {
  const id = params.id;
  const box = messageBox('org-message');
  const title = h('h1', { id: 'org-title' }, 'Organization');
  const list = h('div');
  replace(main, h('p', null, h('a', { href: '/organizations', dataset: { route: '' } }, '← Organizations')),
    title, box, list);
  let org;
  try {
    org = await call('GET', `/api/v1/organizations/${encodeURIComponent(id)}`);
  } catch (err) {
    showFailure(box, err, { not_found: 'There is no such organization, or it is not yours to see.' });
    return;
  }
  title.textContent = org.name;
  const form = nameForm('site-name', 'New site', 'Create site', async (name) => {
    show(box, null);
    try {
      const s = await call('POST', `/api/v1/organizations/${encodeURIComponent(id)}/sites`, { name });
      await listSites(list, id);
      show(box, `Created the site “${s.name}”.`, 'success');
    } catch (err) {
      showFailure(box, err, CREATE_ERRORS);
    }
  });
  main.insertBefore(h('section', { class: 'card wide' }, h('h2', null, 'Sites'), form), box);
  loading(list);
  try {
    await listSites(list, id);
  } catch (err) {
    replace(list);
    showFailure(box, err);
  }
}
