// The disk wizard (Hyper-V's New / Edit Virtual Hard Disk): new, inspect, convert,
// compact, expand, merge — each a job with a progress bar, on /api/v1/disks.

import { api, followJob } from './api.js';
import { clear, dialog, field, fieldError, fmtBytes, h, progressBar, select, showError } from './ui.js';

const OPERATIONS = {
  New: {
    route: 'new',
    fields: () => [
      field('Location', h('input', { name: 'path', dataset: { setting: 'path' }, placeholder: '/path/disk.vhd' })),
      field('Type', select([['dynamic', 'Dynamically expanding'], ['fixed', 'Fixed size'],
        ['differencing', 'Differencing']], 'dynamic', { name: 'type' })),
      field('Size', h('input', { name: 'size', value: '1G', dataset: { setting: 'size' } }), 'e.g. 512M, 20G'),
      field('Parent (differencing)', h('input', { name: 'parent', dataset: { setting: 'parent' } })),
    ],
    body: (f) => ({ path: f.path, type: f.type, size: f.type === 'differencing' ? null : f.size,
      parent: f.type === 'differencing' ? f.parent : null }),
  },
  Inspect: {
    route: 'inspect',
    fields: () => [field('Disk', h('input', { name: 'path', dataset: { setting: 'path' } }))],
    body: (f) => ({ path: f.path }),
  },
  Convert: {
    route: 'convert',
    fields: () => [
      field('Source disk', h('input', { name: 'src', dataset: { setting: 'src' } })),
      field('New disk', h('input', { name: 'dst', dataset: { setting: 'dst' } })),
      field('Type', select([['dynamic', 'Dynamic VHD'], ['fixed', 'Fixed VHD'], ['raw', 'raw image']],
        'dynamic', { name: 'type' })),
    ],
    body: (f) => ({ src: f.src, dst: f.dst, type: f.type }),
  },
  Compact: {
    route: 'compact',
    fields: () => [field('Disk (dynamic or differencing)', h('input', { name: 'path', dataset: { setting: 'path' } }))],
    body: (f) => ({ path: f.path }),
  },
  Expand: {
    route: 'expand',
    fields: () => [field('Disk', h('input', { name: 'path', dataset: { setting: 'path' } })),
      field('New size', h('input', { name: 'size', dataset: { setting: 'size' } }), 'e.g. 20G')],
    body: (f) => ({ path: f.path, size: f.size }),
  },
  Merge: {
    route: 'merge',
    fields: () => [field('Differencing disk', h('input', { name: 'child', dataset: { setting: 'child' } })),
      field('Into', select([['parent', 'its parent disk'], ['output', 'a new disk']], 'parent', { name: 'into' })),
      field('New disk (when merging into a new disk)', h('input', { name: 'output', dataset: { setting: 'output' } }))],
    body: (f) => ({ child: f.child, into_parent: f.into === 'parent', output: f.into === 'output' ? f.output : null }),
  },
};

function describe(result) {
  if (!result || typeof result !== 'object') return h('p', {}, String(result ?? ''));
  const rows = Object.entries(result).filter(([k, v]) => k !== 'chain' && v !== null)
    .map(([k, v]) => h('tr', {}, h('th', {}, k.replaceAll('_', ' ')),
      h('td', {}, /size|bytes/.test(k) && typeof v === 'number' ? `${v} (${fmtBytes(v)})` : String(v))));
  const chain = (result.chain || []).map((parent, i) => h('div', { class: 'chain' },
    h('h4', {}, `Parent ${i + 1}`), describe(parent)));
  return h('div', {}, h('table', { class: 'details', id: 'disk-result' }, rows), chain);
}

export async function diskWizard() {
  let body;
  let current = 'New';
  const forms = {};
  const output = h('div', { class: 'disk-output' });
  const show = (name) => {
    current = name;
    for (const [n, form] of Object.entries(forms)) form.hidden = n !== name;
    body.querySelectorAll('.tabs button').forEach((b) => b.classList.toggle('current', b.dataset.tab === name));
    clear(output);
  };
  const run = async () => {
    const op = OPERATIONS[current];
    const form = forms[current];
    fieldError(form, null);
    showError(body, null);
    try {
      const values = Object.fromEntries(new FormData(form));
      const answer = await api('POST', `/disks/${op.route}`, op.body(values));
      if (op.route === 'inspect') {
        clear(output, describe(answer));
        return;
      }
      const job = await followJob(answer, (j) => clear(output, progressBar(j)));
      clear(output, progressBar(job), job.error ? h('p', { class: 'dialog-error' }, job.error.message)
        : describe(job.result));
    } catch (error) {
      if (!fieldError(form, error)) showError(body, error);
    }
  };
  await dialog({
    title: 'Virtual Hard Disk Wizard', id: 'disk-wizard', wide: true,
    build(b) {
      body = b;
      const tabs = h('div', { class: 'tabs' }, Object.keys(OPERATIONS).map((name) =>
        h('button', { type: 'button', dataset: { tab: name }, onclick: () => show(name) }, name)));
      const pages = Object.entries(OPERATIONS).map(([name, op]) => {
        forms[name] = h('form', { class: 'disk-form', dataset: { operation: name } }, op.fields());
        forms[name].addEventListener('submit', (event) => { event.preventDefault(); run(); });
        return forms[name];
      });
      b.append(tabs, ...pages, output);
      show('New');
    },
    buttons: [
      { label: 'Run', primary: true, action: 'run', onclick: run },
      { label: 'Close', action: 'close', onclick: (close) => close(null) },
    ],
  });
}
