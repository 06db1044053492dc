// Hyper-V Manager: the VM list (live), the actions valid for the selected VM, its
// checkpoints and details, the recent jobs, and the host's tools.

import { actionBlocker as serviceBlocker, api, followJob, logout, subscribe, vmPath } from './api.js';
import { Checkpoints } from './checkpoints.js';
import { ClusterView } from './cluster.js';
import { diskWizard } from './disks.js';
import { performanceDialog } from './perf.js';
import { settingsDialog } from './settings.js';
import { switchManager } from './switches.js';
import { clear, fmtMB, fmtUptime, h, jobTimes, progressBar, toast } from './ui.js';
import { newVmWizard } from './wizard.js';

export const ACTION_LABELS = {
  connect: 'Connect…', start: 'Start', stop: 'Turn Off', shutdown: 'Shut Down', save: 'Save',
  pause: 'Pause', resume: 'Resume', reset: 'Reset', checkpoint: 'Checkpoint',
};

const model = { vms: [], selected: null, host: null, jobs: [], full: null,
  ops: null, vmOps: null };

// What each action needs (docs/api.md, "Access"): the console offers only what the
// service says this user may do (GET /access/whoami, GET /access/allowed?vm=NAME).
const ACTION_OPERATIONS = {
  connect: 'vm.connect', start: 'vm.start', resume: 'vm.start', stop: 'vm.stop',
  shutdown: 'vm.stop', save: 'vm.stop', pause: 'vm.stop', reset: 'vm.stop',
  checkpoint: 'vm.checkpoint', settings: 'vm.configure', delete: 'vm.delete',
  'vm-performance': 'vm.read',
};
const HOST_OPERATIONS = {
  'new-vm': ['vm.create'], switches: ['switch.read', 'switch.manage'],
  disks: ['disk.manage'], 'host-performance': ['host.read'],
};

function hostAllows(action) {
  return !model.ops || HOST_OPERATIONS[action].some((op) => model.ops.has(op));
}

function vmAllows(vm, action) {
  const needed = ACTION_OPERATIONS[action];
  if (!needed || !model.ops) return true;
  if (model.ops.has(needed)) return true;
  return Boolean(model.vmOps && model.vmOps.name === vm.name && model.vmOps.ops.has(needed));
}
const checkpoints = new Checkpoints(document.getElementById('checkpoint-tree'),
  document.getElementById('checkpoint-progress'));

function selectedVm() {
  return model.vms.find((vm) => vm.name === model.selected) || null;
}

function vmRow(vm) {
  const cells = [
    ['name', vm.name], ['state', vm.state],
    ['cpu', vm.cpu_pct === null ? '' : `${vm.cpu_pct} %`],
    ['memory', vm.assigned_memory_mb ? fmtMB(vm.assigned_memory_mb) : ''],
    ['uptime', vm.state === 'Off' || vm.state === 'Saved' ? '' : fmtUptime(vm.uptime_s)],
    ['heartbeat', vm.heartbeat || ''], ['status', vm.status || ''],
  ];
  return h('tr', {
    dataset: { vm: vm.name, state: vm.state },
    class: vm.name === model.selected ? 'selected' : '',
    onclick: () => select(vm.name),
    ondblclick: () => runAction(vm, 'connect'),
  }, cells.map(([col, text]) => h('td', { dataset: { col } }, text)));
}

function renderVms() {
  const body = document.querySelector('#vm-table tbody');
  clear(body, model.vms.map(vmRow));
  document.getElementById('no-vms').hidden = model.vms.length > 0;
}

function actionItem(label, onclick, action, why = '') {
  return h('li', {}, h('button', { type: 'button', class: 'link', onclick,
    dataset: { action: action || '' }, disabled: Boolean(why), title: why || undefined }, label));
}

// Why an action the VM's state allows cannot work for this VM ('' when it can), from the
// full vm object of the selected VM once loaded.
function actionBlocker(vm, action) {
  const full = model.full && model.full.name === vm.name ? model.full : null;
  return full ? serviceBlocker(full, action) : '';
}

function renderActions() {
  const vm = selectedVm();
  const title = document.getElementById('vm-actions-title');
  const list = document.getElementById('vm-actions');
  title.hidden = !vm;
  title.textContent = vm ? vm.name : '';
  if (!vm) {
    clear(list);
    return;
  }
  const items = vm.actions.filter((a) => vmAllows(vm, a)).map((a) => actionItem(
    ACTION_LABELS[a] || a, () => runAction(vm, a), a, actionBlocker(vm, a)));
  if (vmAllows(vm, 'settings')) {
    items.push(actionItem('Settings…', () => settingsDialog(vm.name).then(renderDetails), 'settings'));
  }
  if ((vm.state === 'Off' || vm.state === 'Saved') && vmAllows(vm, 'delete')) {
    items.push(actionItem('Delete…', () => deleteVm(vm), 'delete'));
  }
  if (vmAllows(vm, 'vm-performance')) {
    items.push(actionItem('Performance…', () => performanceDialog(vm.name), 'vm-performance'));
  }
  // data-ops-for: the list reflects the service's answer for this VM (tests wait for it)
  const known = model.ops && (model.ops.has('access.manage')
    || (model.vmOps && model.vmOps.name === vm.name));
  list.dataset.opsFor = known ? vm.name : '';
  clear(list, items);
}

function renderHostActions() {
  clear(document.getElementById('host-actions'), [
    hostAllows('new-vm') && actionItem('New Virtual Machine…', () => newVmWizard(model.host), 'new-vm'),
    hostAllows('switches') && actionItem('Virtual Switch Manager…', () => switchManager(), 'switches'),
    hostAllows('disks') && actionItem('Edit Disk…', () => diskWizard(model.host), 'disks'),
    hostAllows('host-performance') && actionItem('Performance…', () => performanceDialog(null), 'host-performance'),
  ].filter(Boolean));
}

function detailRow(label, value) {
  return h('tr', {}, h('th', {}, label), h('td', {}, value ?? ''));
}

async function renderDetails() {
  const vm = selectedVm();
  const box = document.getElementById('details');
  document.getElementById('details-title').textContent = vm ? vm.name : 'Details';
  if (!vm) {
    clear(box);
    return;
  }
  let full;
  try {
    full = await api('GET', vmPath(vm.name));
  } catch (error) {
    clear(box, h('p', { class: 'dialog-error' }, error.message));
    return;
  }
  if (full.name !== model.selected) return;
  model.full = full;
  renderActions();
  const guest = full.integration?.guest || {};
  const addresses = (guest.network || []).flatMap((n) => n.ip_addresses || []).join(', ');
  clear(box, h('table', { class: 'details' },
    detailRow('Created', full.created_at.replace('T', ' ').slice(0, 19)),
    detailRow('Notes', full.settings.notes),
    detailRow('Startup memory', fmtMB(full.memory_mb)),
    detailRow('Processors', full.processors),
    detailRow('Heartbeat', full.heartbeat || '—'),
    detailRow('Guest host name', guest.host_name || '—'),
    detailRow('IP addresses', addresses || '—'),
    detailRow('Folder', full.folder)));
}

async function loadVmOperations(name) {
  if (!model.ops || model.ops.has('access.manage')) return;
  try {
    const found = await api('GET', `/access/allowed?vm=${encodeURIComponent(name)}`);
    if (model.selected !== name) return;
    model.vmOps = { name, ops: new Set(found.operations) };
    renderActions();
  } catch (error) {
    toast(error.message, 'error');
  }
}

async function select(name) {
  model.selected = name;
  if (model.vmOps && model.vmOps.name !== name) model.vmOps = null;
  loadVmOperations(name);
  renderVms();
  renderActions();
  renderDetails();
  checkpoints.show(name);
}

export async function runAction(vm, action) {
  if (action === 'connect') {
    window.open(`/connect.html?vm=${encodeURIComponent(vm.name)}`, `connect-${vm.name}`);
    return;
  }
  if (action === 'checkpoint') {
    checkpoints.take(vm.name);
    return;
  }
  try {
    const job = await api('POST', `${vmPath(vm.name)}/${action}`);
    const done = await followJob(job);
    if (done.state === 'failed') toast(`${ACTION_LABELS[action]} ${vm.name}: ${done.error.message}`, 'error');
  } catch (error) {
    toast(`${ACTION_LABELS[action]} ${vm.name}: ${error.message}`, 'error');
  }
}

async function deleteVm(vm) {
  // eslint-disable-next-line no-alert
  if (!window.confirm(`Delete virtual machine '${vm.name}'? Its disks are kept.`)) return;
  try {
    await api('DELETE', `${vmPath(vm.name)}?delete_files=false`);
    if (model.selected === vm.name) model.selected = null;
  } catch (error) {
    toast(error.message, 'error');
  }
}

function renderJobs() {
  const recent = model.jobs.slice(0, 8);
  clear(document.getElementById('jobs-list'), recent.length
    ? recent.map((job) => h('div', { class: 'job', dataset: { job: job.id, kind: job.kind } },
      progressBar(job), jobTimes(job),
      job.error ? h('div', { class: 'job-error' }, job.error.message) : null))
    : h('p', { class: 'empty' }, 'No jobs yet.'));
}

function onVms({ vms }) {
  const before = selectedVm();
  model.vms = vms;
  if (model.selected && !selectedVm()) model.selected = null;
  renderVms();
  const after = selectedVm();
  if (!before || !after || before.state !== after.state || String(before.actions) !== String(after.actions)) {
    renderActions();
    if (after && (!before || before.state !== after.state)) {
      renderDetails();
      checkpoints.show(after.name);
    }
  }
}

function onHost(host) {
  model.host = { ...(model.host || {}), ...host };
  document.getElementById('tree-host').textContent = model.host.hostname;
  document.getElementById('host-actions-title').textContent = model.host.hostname;
  renderHostActions();
}

function onJobs({ jobs }) {
  model.jobs = jobs;
  renderJobs();
}

document.getElementById('logout').addEventListener('click', logout);
api('GET', '/access/whoami').then((me) => {
  model.ops = new Set(me.operations);
  document.getElementById('who').textContent = me.via === 'admin-token' ? 'admin token'
    : `${me.user} (${me.realm})`;
  document.getElementById('admin-link').hidden = !model.ops.has('access.manage');
  // template.deploy on some template, host group or the host: the self-service page
  document.getElementById('selfservice-link').hidden = !me.deploys_templates;
  new ClusterView(model.ops); // eslint-disable-line no-new
  if (model.ops.has('host.read')) api('GET', '/host').then((host) => onHost({ ...host }));
  renderHostActions();
  renderActions();
}).catch((error) => toast(error.message, 'error'));
subscribe({ vms: onVms, host: onHost, jobs: onJobs }, (live) => {
  document.getElementById('live-indicator').className = `live ${live ? 'on' : 'off'}`;
});
