// The checkpoint tree of the selected VM, "Now" marked where the VM runs from; take,
// apply, rename and delete (one checkpoint or its subtree) with the job's progress.

import { api, followJob, vmPath } from './api.js';
import { clear, dialog, field, h, progressBar, showError, toast } from './ui.js';

export class Checkpoints {
  constructor(tree, progress) {
    this.tree = tree;
    this.progress = progress;
    this.vm = null;
    this.selected = null;
  }

  path(cp = '') {
    return `${vmPath(this.vm)}/checkpoints${cp ? '/' + encodeURIComponent(cp) : ''}`;
  }

  async show(vm) {
    this.vm = vm;
    let data;
    try {
      data = await api('GET', this.path());
    } catch (error) {
      const missing = error.code === 'unavailable';
      clear(this.tree, h('p', { class: missing ? 'empty' : 'dialog-error', id: 'checkpoints-unavailable' },
        missing ? 'Checkpoints are not available on this service yet.' : error.message));
      return;
    }
    if (this.vm !== vm) return;
    const byId = new Map(data.checkpoints.map((cp) => [cp.id, cp]));
    const now = h('li', { class: 'now', dataset: { checkpoint: 'Now' } }, h('span', { class: 'node' }, '▶ Now'));
    const node = (cp) => {
      const kids = cp.children.map((id) => byId.get(id)).filter(Boolean).map(node);
      if (cp.id === data.now_parent_id) kids.push(now);
      return h('li', { dataset: { checkpoint: cp.name } },
        h('span', {
          class: `node ${cp.name === this.selected ? 'selected' : ''}`,
          title: `${cp.created_at} · captured ${cp.state}${cp.notes ? ' · ' + cp.notes : ''}`,
          onclick: () => { this.selected = cp.name; this.show(vm); },
        }, cp.name),
        kids.length ? h('ul', {}, kids) : null);
    };
    const roots = data.checkpoints.filter((cp) => !cp.parent_id).map(node);
    if (!data.now_parent_id) roots.push(now);
    const chosen = data.checkpoints.find((cp) => cp.name === this.selected);
    clear(this.tree,
      h('div', { class: 'cp-toolbar' },
        h('button', { type: 'button', dataset: { action: 'take-checkpoint' }, onclick: () => this.take(vm) },
          'Take checkpoint'),
        chosen ? [
          h('button', { type: 'button', dataset: { action: 'apply-checkpoint' },
            onclick: () => this.apply(chosen) }, 'Apply…'),
          h('button', { type: 'button', dataset: { action: 'rename-checkpoint' },
            onclick: () => this.rename(chosen) }, 'Rename…'),
          h('button', { type: 'button', dataset: { action: 'delete-checkpoint' },
            onclick: () => this.remove(chosen, false) }, 'Delete'),
          h('button', { type: 'button', dataset: { action: 'delete-subtree' },
            onclick: () => this.remove(chosen, true) }, 'Delete subtree'),
        ] : null,
        h('span', { class: 'hint' }, `${data.count} of ${data.limit}`)),
      h('ul', { class: 'cp-root' }, roots));
  }

  async run(label, request) {
    try {
      const job = await request();
      const done = await followJob(job, (j) => clear(this.progress, progressBar(j)));
      if (done.state !== 'completed') toast(`${label}: ${done.error ? done.error.message : done.state}`, 'error');
      setTimeout(() => clear(this.progress), 3000);
    } catch (error) {
      toast(`${label}: ${error.message}`, 'error');
    }
    if (this.vm) await this.show(this.vm);
  }

  take(vm) {
    this.vm = vm;
    return this.run('Checkpoint', () => api('POST', this.path(), {}));
  }

  async apply(cp) {
    await dialog({
      title: 'Apply Checkpoint', id: 'apply-checkpoint',
      build: (b) => b.append(h('p', {}, `Revert '${this.vm}' to '${cp.name}'? Its current state is lost `
        + 'unless you take a checkpoint first.')),
      buttons: [
        { label: 'Take Checkpoint and Apply', primary: true, action: 'checkpoint-apply', onclick: (close) => {
          close(true);
          this.run('Apply', () => api('POST', `${this.path(cp.id)}/apply`, { checkpoint_first: true }));
        } },
        { label: 'Apply', action: 'apply', onclick: (close) => {
          close(true);
          this.run('Apply', () => api('POST', `${this.path(cp.id)}/apply`, { checkpoint_first: false }));
        } },
        { label: 'Cancel', action: 'cancel', onclick: (close) => close(null) },
      ],
    });
  }

  async rename(cp) {
    let body;
    const name = h('input', { name: 'name', value: cp.name, dataset: { setting: 'name' } });
    const notes = h('textarea', { name: 'notes', rows: 3 }, cp.notes || '');
    await dialog({
      title: 'Rename Checkpoint', id: 'rename-checkpoint',
      build: (b) => { body = b; b.append(field('Name', name), field('Notes', notes)); },
      buttons: [
        { label: 'OK', primary: true, action: 'ok', onclick: async (close) => {
          try {
            await api('PATCH', this.path(cp.id), { name: name.value.trim(), notes: notes.value });
            this.selected = name.value.trim();
            close(true);
            this.show(this.vm);
          } catch (error) { showError(body, error); }
        } },
        { label: 'Cancel', action: 'cancel', onclick: (close) => close(null) },
      ],
    });
  }

  remove(cp, subtree) {
    // eslint-disable-next-line no-alert
    if (!window.confirm(`Delete checkpoint '${cp.name}'${subtree ? ' and everything under it' : ''}?`)) {
      return null;
    }
    this.selected = null;
    return this.run('Delete checkpoint', () => api('DELETE', `${this.path(cp.id)}?subtree=${subtree}`));
  }
}
