// The New Virtual Machine wizard: name, memory, processors, networking, hard disk
// (new VHD, existing VHD or none), installation media (ISO or none), summary.

import { api } from './api.js';
import { dialog, field, fieldError, h, select, showError } from './ui.js';
import { switchChoices } from './switches.js';

const STEPS = ['Name', 'Memory', 'Processors', 'Networking', 'Hard Disk', 'Installation', 'Summary'];

function readForm(body) {
  const value = (name) => body.querySelector(`[name="${name}"]`)?.value.trim() ?? '';
  const checked = (name) => body.querySelector(`[name="${name}"]:checked`)?.value ?? '';
  return {
    name: value('name'), notes: value('notes'), memory: value('memory_mb'),
    processors: value('processors'), network: value('switch'), disk: checked('disk'),
    newPath: value('new_vhd_path'), newSize: value('new_vhd_size'),
    existingPath: value('existing_vhd_path'), media: checked('media'), iso: value('iso_path'),
  };
}

function steps(host, switches) {
  const diskDir = host && host.data_dir ? `${host.data_dir}/disks` : '/var/lib/viridian/disks';
  return [
    [field('Name', h('input', { name: 'name', dataset: { setting: 'name' }, required: true,
      placeholder: 'New Virtual Machine' })),
    field('Notes', h('textarea', { name: 'notes', dataset: { setting: 'notes' }, rows: 3 }))],
    [field('Startup memory (MB)', h('input', { name: 'memory_mb', type: 'number', value: '512',
      dataset: { setting: 'memory.startup_mb' } }), '8 to 65536 MB')],
    [field('Number of virtual processors', h('input', { name: 'processors', type: 'number',
      value: '1', min: '1', dataset: { setting: 'processor.count' } }))],
    [field('Connection', select(switches, '', { name: 'switch',
      dataset: { setting: 'network_adapters' } }))],
    [h('fieldset', { class: 'choices', dataset: { setting: 'ide' } },
      h('label', {}, h('input', { type: 'radio', name: 'disk', value: 'new', checked: true }),
        ' Create a virtual hard disk (dynamically expanding VHD)'),
      field('Location', h('input', { name: 'new_vhd_path', value: `${diskDir}/NAME.vhd`,
        dataset: { setting: 'new_vhd.path' } })),
      field('Size', h('input', { name: 'new_vhd_size', value: '1G',
        dataset: { setting: 'new_vhd.size' } }), 'e.g. 512M, 20G'),
      h('label', {}, h('input', { type: 'radio', name: 'disk', value: 'existing' }),
        ' Use an existing virtual hard disk'),
      field('Path', h('input', { name: 'existing_vhd_path', dataset: { setting: 'ide[0].path' },
        placeholder: '/path/to/disk.vhd' })),
      h('label', {}, h('input', { type: 'radio', name: 'disk', value: 'none' }),
        ' Attach a virtual hard disk later'))],
    [h('fieldset', { class: 'choices' },
      h('label', {}, h('input', { type: 'radio', name: 'media', value: 'none', checked: true }),
        ' Install an operating system later'),
      h('label', {}, h('input', { type: 'radio', name: 'media', value: 'iso' }),
        ' Install from a bootable CD/DVD image (.iso)'),
      field('Image file', h('input', { name: 'iso_path', placeholder: '/path/to/image.iso',
        dataset: { setting: 'ide[1].path' } })))],
    [h('div', { class: 'summary' })],
  ];
}

function summary(form) {
  const disk = { new: `new ${form.newSize} VHD at ${form.newPath}`,
    existing: form.existingPath, none: 'none' }[form.disk];
  return h('table', { class: 'details' }, [
    ['Name', form.name], ['Memory', `${form.memory} MB`], ['Processors', form.processors],
    ['Network', form.network || 'Not connected'], ['Hard disk', disk],
    ['Installation', form.media === 'iso' ? form.iso : 'later'],
  ].map(([k, v]) => h('tr', {}, h('th', {}, k), h('td', {}, v))));
}

async function create(form) {
  const settings = form.notes ? { notes: form.notes } : {};
  if (form.network) settings.network_adapters = [{ kind: 'synthetic', switch: form.network }];
  // The service makes the new VHD only after everything else was checked, and removes
  // it when the VM is refused (docs/api.md, "VMs": new_vhd).
  const newVhd = form.disk === 'new'
    ? { path: form.newPath.replace('NAME', form.name), type: 'dynamic', size: form.newSize }
    : null;
  return api('POST', '/vms', {
    name: form.name, settings, memory_mb: Number(form.memory) || form.memory,
    processors: Number(form.processors) || form.processors,
    vhd: form.disk === 'existing' ? form.existingPath : null, new_vhd: newVhd,
    dvd: form.media === 'iso' ? form.iso : null,
  });
}

export async function newVmWizard(host) {
  const switches = await switchChoices();
  const pages = steps(host, switches);
  let current = 0;
  let body;
  const nav = h('ol', { class: 'wizard-steps' });
  const show = (index) => {
    current = index;
    pages.forEach((page, i) => { body.querySelector(`[data-step="${i}"]`).hidden = i !== index; });
    nav.querySelectorAll('li').forEach((li, i) => li.classList.toggle('current', i === index));
    if (index === STEPS.length - 1) {
      body.querySelector('.summary').replaceChildren(summary(readForm(body)));
    }
  };
  const stepOf = (el) => Number(el.closest('[data-step]').dataset.step);
  await dialog({
    title: 'New Virtual Machine Wizard', id: 'new-vm-wizard', wide: true,
    build(b) {
      body = b;
      STEPS.forEach((s, i) => nav.append(h('li', { onclick: () => show(i) }, s)));
      b.append(h('div', { class: 'wizard' }, nav, h('div', { class: 'wizard-pages' },
        pages.map((content, i) => h('section', { dataset: { step: i }, hidden: i !== 0 },
          h('h3', {}, STEPS[i]), content)))));
      const name = b.querySelector('[name="name"]');
      const path = b.querySelector('[name="new_vhd_path"]');
      const dir = path.value.slice(0, path.value.lastIndexOf('/'));
      path.addEventListener('input', () => { path.dataset.edited = '1'; });
      name.addEventListener('input', () => {
        if (!path.dataset.edited) path.value = `${dir}/${name.value.trim() || 'NAME'}.vhd`;
      });
      show(0);
    },
    buttons: [
      { label: '< Previous', action: 'previous', onclick: () => show(Math.max(0, current - 1)) },
      { label: 'Next >', action: 'next',
        onclick: () => show(Math.min(STEPS.length - 1, current + 1)) },
      { label: 'Finish', primary: true, action: 'finish', async onclick(close) {
        try {
          await create(readForm(body));
          close(true);
        } catch (error) {
          const at = fieldError(body, error);
          showError(body, error);
          if (at) show(stepOf(at));
        }
      } },
      { label: 'Cancel', action: 'cancel', onclick: (close) => close(null) },
    ],
  });
}
