// Self-service (issue 18 part 5): the templates granted to the logged-in user, its quota,
// a form that provisions VMs from one of them (POST /provision, with the seed's host
// name, SSH key and static address), and the user's VMs with their provisioning status
// and Start / Turn off / Connect. Everything through the same JSON API as the CLI; what the
// service refuses (a template not granted, a quota passed) is shown in its own words.

import { api, logout, vmPath } from './api.js';
import { clear, h } from './ui.js';

const REFRESH_MS = 3000;
const pane = (id) => document.querySelector(`#${id} .content`);
const errorBox = document.getElementById('ss-error');
const LABELS = { vms: 'VMs', memory_mb: 'Memory (MB)', processors: 'Virtual processors',
  disk_mb: 'Disk (MB)' };

function showError(error) {
  errorBox.textContent = error ? error.message : '';
  errorBox.hidden = !error;
}

function table(headers, rows, name) {
  return h('table', { class: 'grid', id: `${name}-table` },
    h('thead', {}, h('tr', {}, headers.map((t) => h('th', {}, t)))),
    h('tbody', {}, rows));
}

function templatesPane(templates) {
  const select = document.getElementById('ss-template');
  const chosen = select.value;
  clear(select, templates.map((t) => h('option', { value: t.name }, t.name)));
  if (templates.some((t) => t.name === chosen)) select.value = chosen;
  clear(pane('templates-pane'), templates.length
    ? table(['Template', 'Version', 'Memory (MB)', 'Disks'], templates.map((t) => {
      const latest = t.latest || {};
      const settings = latest.settings || {};
      return h('tr', { dataset: { template: t.name } }, h('td', {}, t.name),
        h('td', {}, String(latest.version ?? '')),
        h('td', {}, String((settings.memory || {}).startup_mb ?? '')),
        h('td', {}, String((latest.disks || []).length)));
    }), 'templates')
    : h('p', { id: 'no-templates' }, 'No template is granted to you: ask an administrator.'));
}

function quotaPane(quota) {
  if (!quota) {
    clear(pane('quota-pane'), h('p', {}, 'No quota: the admin token.'));
    return;
  }
  clear(pane('quota-pane'), table(['Resource', 'Used', 'Limit'],
    Object.entries(LABELS).map(([key, label]) => h('tr', { dataset: { quota: key } },
      h('td', {}, label), h('td', {}, String(quota.used[key] ?? 0)),
      h('td', {}, quota.limits[key] === null ? 'no limit' : String(quota.limits[key])))),
    'quota'));
}

function act(vm, action) {
  return async () => {
    try {
      await api('POST', `${vmPath(vm.name)}/${action}`);
      showError(null);
      await refresh();
    } catch (error) {
      showError(error);
    }
  };
}

function vmsPane(vms) {
  clear(pane('vms-pane'), vms.length ? table(['Name', 'State', 'Provisioning', ''],
    vms.map((vm) => h('tr', { dataset: { vm: vm.name } },
      h('td', {}, vm.name), h('td', { dataset: { col: 'state' } }, vm.state),
      h('td', { dataset: { col: 'provisioning' } }, vm.provisioning || '—'),
      h('td', {},
        vm.state === 'Off' ? h('button', { type: 'button', class: 'link',
          dataset: { action: 'start' }, onclick: act(vm, 'start') }, 'Start') : null,
        vm.state === 'Running' ? h('button', { type: 'button', class: 'link',
          dataset: { action: 'stop' }, onclick: act(vm, 'stop') }, 'Turn off') : null,
        h('a', { href: `/connect.html?vm=${encodeURIComponent(vm.name)}`, target: '_blank',
          dataset: { action: 'connect' } }, 'Connect')))), 'my-vms')
    : h('p', { id: 'no-vms' }, 'You have no VMs yet.'));
}

async function refresh() {
  const [{ templates }, me, { vms }] = await Promise.all([api('GET', '/templates'),
    api('GET', '/access/whoami'), api('GET', '/vms')]);
  document.getElementById('who').textContent = me.via === 'admin-token' ? 'admin token'
    : `${me.user} (${me.realm})`;
  templatesPane(templates);
  quotaPane(me.quota);
  vmsPane(vms.slice().sort((a, b) => a.name.localeCompare(b.name)));
}

function order(form) {
  const value = (name) => form.elements[name].value.trim();
  const body = { name: value('name'), template: value('template'),
    count: Number(value('count') || '1') };
  if (value('hostname')) body.hostname = value('hostname');
  if (value('ssh_key')) Object.assign(body, { user: 'admin', ssh_keys: [value('ssh_key')] });
  if (value('ip')) body.ip = value('ip');
  if (value('gateway')) body.gateway = value('gateway');
  return body;
}

document.getElementById('provision-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const status = document.getElementById('ss-status');
  const button = document.getElementById('ss-provision');
  button.disabled = true;
  try {
    const body = order(event.target);
    await api('POST', '/provision', body);
    status.textContent = `Provisioning ${body.count === 1 ? body.name
      : `${body.count} VMs named ${body.name}-1…`} from ${body.template}`;
    showError(null);
    await refresh();
  } catch (error) {
    status.textContent = '';
    showError(error);
  } finally {
    button.disabled = false;
  }
});

document.getElementById('logout').addEventListener('click', logout);
refresh().catch(showError);
setInterval(() => refresh().catch(showError), REFRESH_MS);
