// Failover Cluster Manager (docs/architecture.md, "Failover cluster: the console"): the
// cluster's hosts (Up/Down/Paused, site, free memory, running VMs), etcd health and the
// HA VMs with their owners, polled from GET /cluster while the pane is open. Host
// Drain/Resume need cluster.manage, "Move to…" of a VM this host runs needs host.manage:
// the console offers only what the service says this user may do (GET /access/whoami).

import { api, followJob, vmPath } from './api.js';
import { clear, fmtMB, h, toast } from './ui.js';

const POLL_MS = 2000;

export class ClusterView {
  constructor(ops) {
    this.ops = ops;
    this.pane = document.getElementById('cluster-pane');
    this.entry = document.getElementById('tree-cluster');
    this.timer = null;
    this.show = null;
    this.local = null;
    this.entry.hidden = !ops.has('cluster.read');
    this.entry.addEventListener('click', () => this.toggle());
  }

  toggle() {
    this.pane.hidden = !this.pane.hidden;
    this.entry.classList.toggle('selected', !this.pane.hidden);
    if (this.pane.hidden) {
      clearTimeout(this.timer);
      return;
    }
    this.poll();
  }

  async poll() {
    clearTimeout(this.timer);
    if (this.pane.hidden) return;
    try {
      const [show, local] = await Promise.all([api('GET', '/cluster'), api('GET', '/vms')]);
      this.show = show;
      this.local = new Set(local.vms.map((vm) => vm.name));
      this.render();
    } catch (error) {
      this.show = null;
      clear(document.getElementById('cluster-status'),
        h('p', { class: error.status === 404 ? 'empty' : 'dialog-error' }, error.message));
      clear(document.querySelector('#cluster-hosts tbody'));
      clear(document.querySelector('#cluster-vms tbody'));
    }
    this.timer = setTimeout(() => this.poll(), POLL_MS);
  }

  render() {
    const { show } = this;
    const etcd = show.etcd;
    clear(document.getElementById('cluster-status'), h('p', { id: 'cluster-summary' },
      `Cluster ${show.name} — this host: ${show.host} — etcd: ${etcd.healthy} of `
      + `${etcd.members.length} members healthy`));
    clear(document.querySelector('#cluster-hosts tbody'), show.hosts.map((host) => this.hostRow(host)));
    clear(document.querySelector('#cluster-vms tbody'), show.vms.map((vm) => this.vmRow(vm)));
  }

  hostRow(host) {
    const cells = [['name', host.name], ['state', host.state], ['site', host.site || '—'],
      ['free', host.memory_free_mb === null ? '' : fmtMB(host.memory_free_mb)],
      ['running', host.running_vms.join(', ') || '—']];
    const actions = [];
    if (this.ops.has('cluster.manage') && host.state !== 'Down') {
      const action = host.state === 'Paused' ? 'resume' : 'drain';
      actions.push(h('button', { type: 'button', class: 'link', dataset: { action, host: host.name },
        onclick: () => this.pause(host.name, action) }, action === 'drain' ? 'Drain' : 'Resume'));
    }
    return h('tr', { dataset: { host: host.name, state: host.state } },
      cells.map(([col, text]) => h('td', { dataset: { col } }, text)),
      h('td', { dataset: { col: 'actions' } }, actions));
  }

  vmRow(vm) {
    const cells = [['name', vm.name], ['owner', vm.owner || '—'],
      ['wanted', vm.desired_running ? 'Running' : 'Off'], ['priority', vm.policy.priority],
      ['pending', vm.pending || '']];
    return h('tr', { dataset: { vm: vm.name } },
      cells.map(([col, text]) => h('td', { dataset: { col } }, text)),
      h('td', { dataset: { col: 'move' } }, this.moveControl(vm)));
  }

  moveControl(vm) {
    if (!this.ops.has('host.manage')) return null;
    const here = vm.owner === this.show.host && this.local.has(vm.name);
    const targets = this.show.hosts.filter((host) => host.state === 'Up' && host.name !== vm.owner);
    const why = !here ? `runs on ${vm.owner || 'no host'}: move it from that host's console`
      : (targets.length ? '' : 'no other host is Up');
    const target = h('select', { dataset: { role: 'target' }, disabled: Boolean(why) },
      targets.map((host) => h('option', { value: host.name }, host.name)));
    const mode = h('select', { dataset: { role: 'mode' }, disabled: Boolean(why) },
      h('option', { value: 'live' }, 'live'), h('option', { value: 'quick' }, 'quick'));
    const button = h('button', { type: 'button', class: 'link', dataset: { action: 'move' },
      disabled: Boolean(why), title: why || undefined,
      onclick: () => this.move(vm.name, target.value, mode.value) }, 'Move to…');
    return [target, mode, button];
  }

  async pause(host, action) {
    try {
      const answer = await api('POST', `/cluster/hosts/${encodeURIComponent(host)}/${action}`);
      toast(`${host}: ${answer.state}`);
      if (answer.job) {
        const done = await followJob(answer.job, () => this.poll());
        if (done.state === 'failed') toast(`Drain ${host}: ${done.error.message}`, 'error');
      }
    } catch (error) {
      toast(`${action} ${host}: ${error.message}`, 'error');
    }
    this.poll();
  }

  async move(name, to, mode) {
    try {
      const job = await api('POST', `${vmPath(name)}/move`, { to, mode });
      const done = await followJob(job);
      if (done.state === 'failed') toast(`Move ${name}: ${done.error.message}`, 'error');
      else toast(`${name} moved to ${to} (${mode})`);
    } catch (error) {
      toast(`Move ${name}: ${error.message}`, 'error');
    }
    this.poll();
  }
}
