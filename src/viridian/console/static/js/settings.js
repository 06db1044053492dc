// The Settings dialog: every section of the VM's settings model. Edits go to a draft;
// OK/Apply send the changed sections in one PATCH, and the service's validation message
// is shown next to the field it names (details.setting, e.g. "memory.startup_mb").

import { api, vmPath } from './api.js';
import { clear, dialog, field, fieldError, h, select, showError, toast } from './ui.js';
import { switchChoices } from './switches.js';

const BOOT = { cd: 'CD', ide: 'IDE', net: 'Legacy Network adapter', floppy: 'Floppy' };
const SERVICES = {
  operating_system_shutdown: 'Operating system shutdown', time_synchronization: 'Time synchronization',
  heartbeat: 'Heartbeat', key_value_pair_exchange: 'Key-Value Pair Exchange', backup: 'Backup (volume checkpoint)',
  guest_services: 'Guest services',
};
// What the service accepts while a VM is not Off (docs/architecture.md, "VM states"; the
// service's changed_settings and check_live_storage_changes): as in Hyper-V, only SCSI hard
// disks and DVD/floppy media, processor reserve/limit/weight, the adapters' switch and VLAN,
// and the management settings change while it runs; everything else needs the VM Off.
const NEEDS_OFF = 'Turn the virtual machine off to change this.';
const HOT_SCSI_STATES = new Set(['Off', 'Running', 'Paused']);
const FORMATS = [['', 'detect'], ['vpc', 'VHD'], ['vhdx', 'VHDX'], ['raw', 'raw'], ['qcow2', 'qcow2']];

const settingName = (path) => path.map((k, i) =>
  (typeof k === 'number' ? `[${k}]` : (i ? `.${k}` : k))).join('');
const getAt = (obj, path) => path.reduce((o, k) => (o == null ? o : o[k]), obj);
function setAt(obj, path, value) {
  const last = path[path.length - 1];
  getAt(obj, path.slice(0, -1))[last] = value;
}

class Editor {
  constructor(vm, switches) {
    this.original = vm.settings;
    this.draft = structuredClone(vm.settings);
    this.state = vm.state;
    this.live = vm.state !== 'Off';
    this.switches = switches;
  }

  // Attributes for a control that only changes while the VM is Off.
  offOnly(attrs = {}) {
    return this.live ? { ...attrs, disabled: true, title: NEEDS_OFF } : attrs;
  }

  // A note opening a section some of whose settings need the VM Off (none when Off).
  note(text) {
    return this.live ? h('p', { class: 'frozen-note', role: 'note' },
      `The virtual machine is ${this.state}: ${text}`) : null;
  }

  // An input bound to draft[path]; kind: text | nullable | number | nullnumber | check.
  input(path, kind = 'text', attrs = {}) {
    const value = getAt(this.draft, path);
    const el = kind === 'check'
      ? h('input', { type: 'checkbox', checked: Boolean(value), ...attrs })
      : h('input', { type: kind.includes('number') ? 'number' : 'text', value: value ?? '', ...attrs });
    el.dataset.setting = settingName(path);
    el.addEventListener('change', () => setAt(this.draft, path, this.read(el, kind)));
    return el;
  }

  read(el, kind) {
    if (kind === 'check') return el.checked;
    const text = el.value.trim();
    if (kind === 'nullable') return text || null;
    if (kind === 'nullnumber' && text === '') return null;
    if (kind.includes('number')) return text === '' || Number.isNaN(Number(text)) ? text : Number(text);
    return text;
  }

  choice(path, options, attrs = {}, onchange = null) {
    const el = select(options, getAt(this.draft, path) ?? '', attrs);
    el.dataset.setting = settingName(path);
    el.addEventListener('change', () => {
      setAt(this.draft, path, el.value === '' ? null : el.value);
      if (onchange) onchange();
    });
    return el;
  }

  patch() {
    const changed = {};
    for (const key of Object.keys(this.draft)) {
      if (JSON.stringify(this.draft[key]) !== JSON.stringify(this.original[key])) {
        changed[key] = this.draft[key];
      }
    }
    return changed;
  }
}

function bios(ed) {
  const order = h('ol', { class: 'boot-order', dataset: { setting: 'bios.startup_order' } });
  const render = () => clear(order, ed.draft.bios.startup_order.map((dev, i, list) => h('li', {},
    BOOT[dev] || dev,
    h('button', { type: 'button', disabled: i === 0 || ed.live, onclick() {
      [list[i - 1], list[i]] = [list[i], list[i - 1]];
      render();
    } }, '↑'),
    h('button', { type: 'button', disabled: i === list.length - 1 || ed.live, onclick() {
      [list[i + 1], list[i]] = [list[i], list[i + 1]];
      render();
    } }, '↓'))));
  render();
  return [ed.note('the BIOS settings change only while it is Off.'),
    field('Num Lock on at start', ed.input(['bios', 'num_lock'], 'check', ed.offOnly())),
    h('div', { class: 'field' }, h('span', { class: 'label' }, 'Startup order'), order)];
}

function memory(ed) {
  return [ed.note('its memory changes only while it is Off.'),
    field('Startup RAM (MB)', ed.input(['memory', 'startup_mb'], 'number',
      ed.offOnly({ name: 'startup_mb' })), 'Hyper-V allows 8 to 65536 MB; the host must have it free to start')];
}

function processor(ed) {
  return [
    ed.note('the number of processors and the compatibility mode change only while it is Off; '
      + 'reserve, limit and weight change now.'),
    field('Number of logical processors', ed.input(['processor', 'count'], 'number', ed.offOnly())),
    field('Virtual machine reserve (percentage)', ed.input(['processor', 'reserve_pct'], 'number')),
    field('Virtual machine limit (percentage)', ed.input(['processor', 'limit_pct'], 'number')),
    field('Relative weight', ed.input(['processor', 'weight'], 'number'), '1 to 10000'),
    field('Limit processor functionality (compatibility)',
      ed.input(['processor', 'compatibility_mode'], 'check', ed.offOnly())),
  ];
}

function ideController(ed, controller, box) {
  const render = () => {
    const rows = [0, 1].map((location) => {
      let index = ed.draft.ide.findIndex((d) => d.controller === controller && d.location === location);
      const kind = index < 0 ? 'none' : ed.draft.ide[index].kind;
      const kindSelect = select([['none', 'None'], ['hard_disk', 'Hard Drive'], ['dvd', 'DVD Drive']],
        kind, ed.offOnly({ dataset: { setting: index < 0 ? `ide-${controller}-${location}` : `ide[${index}].kind` } }));
      kindSelect.addEventListener('change', () => {
        if (kindSelect.value === 'none') ed.draft.ide.splice(index, 1);
        else if (index < 0) {
          ed.draft.ide.push({ controller, location, kind: kindSelect.value, path: null, format: null });
        } else ed.draft.ide[index].kind = kindSelect.value;
        render();
      });
      index = ed.draft.ide.findIndex((d) => d.controller === controller && d.location === location);
      return h('fieldset', { class: 'device' }, h('legend', {}, `Location ${location}`),
        field('Attached', kindSelect),
        index < 0 ? null : field(kind === 'dvd' ? 'Image file (.iso), empty = no media' : 'Virtual hard disk',
          ed.input(['ide', index, 'path'], 'nullable', kind === 'dvd' ? {} : ed.offOnly())),
        index < 0 || kind === 'dvd' ? null : field('Format', ed.choice(['ide', index, 'format'], FORMATS,
          ed.offOnly())));
    });
    clear(box, ed.note('IDE drives are added, removed and changed only while it is Off; '
      + 'DVD media can be inserted and ejected now.'), rows);
  };
  render();
  return box;
}

function scsiNote(ed) {
  if (!ed.live) return null;
  return HOT_SCSI_STATES.has(ed.state)
    ? ed.note('SCSI hard disks can be added and removed now; SCSI controllers only while it is Off.')
    : ed.note('its saved state keeps the devices it was saved with: SCSI disks and controllers '
      + 'change while it is Off, Running or Paused.');
}

function scsi(ed, box) {
  const disks = HOT_SCSI_STATES.has(ed.state) ? {} : { disabled: true, title: 'Start or turn off '
    + 'the virtual machine to change its SCSI hard disks.' };
  const render = () => clear(box, scsiNote(ed), ed.draft.scsi.map((ctrl, ci) => h('fieldset', { class: 'device' },
    h('legend', {}, `SCSI Controller ${ctrl.controller}`),
    ctrl.disks.map((disk, di) => h('div', { class: 'row' },
      field('Location', ed.input(['scsi', ci, 'disks', di, 'location'], 'number', disks)),
      field('Virtual hard disk', ed.input(['scsi', ci, 'disks', di, 'path'], 'text', disks)),
      h('button', { type: 'button', ...disks, onclick() { ctrl.disks.splice(di, 1); render(); } }, 'Remove'))),
    h('button', { type: 'button', ...disks, onclick() {
      const used = new Set(ctrl.disks.map((d) => d.location));
      let location = 0;
      while (used.has(location)) location += 1;
      ctrl.disks.push({ location, path: '', format: null });
      render();
    } }, 'Add hard drive'),
    h('button', { type: 'button', ...ed.offOnly(), onclick() { ed.draft.scsi.splice(ci, 1); render(); } },
      'Remove controller'))),
  h('button', { type: 'button', ...ed.offOnly({ dataset: { setting: 'scsi' } }), onclick() {
    const used = new Set(ed.draft.scsi.map((c) => c.controller));
    let controller = 0;
    while (used.has(controller)) controller += 1;
    ed.draft.scsi.push({ controller, disks: [] });
    render();
  } }, 'Add SCSI controller'));
  render();
  return box;
}

// While the VM runs an adapter may move between virtual switches (or be disconnected);
// user-mode NAT keeps its backend until the next start (the service's switch rules).
function switchChoice(ed, i, nic, choices) {
  const path = ['network_adapters', i, 'switch'];
  if (!ed.live) return ed.choice(path, choices);
  if (nic.switch === 'user') {
    return ed.choice(path, choices, { disabled: true, title: 'User-mode NAT is kept until the '
      + 'virtual machine restarts: turn it off to change this.' });
  }
  const el = ed.choice(path, choices);
  const user = el.querySelector('option[value="user"]');
  if (user) {
    user.disabled = true;
    user.textContent += ' — only while Off';
  }
  return el;
}

function adapters(ed, box) {
  const render = () => clear(box, ed.note('adapters are added, removed and changed only while it '
    + 'is Off; their virtual switch and VLAN change now.'), ed.draft.network_adapters.map((nic, i) => {
    const choices = [...ed.switches];
    if (nic.switch && !choices.some(([v]) => v === nic.switch)) choices.push([nic.switch, nic.switch]);
    return h('fieldset', { class: 'device' },
      h('legend', {}, `${nic.kind === 'legacy' ? 'Legacy Network Adapter' : 'Network Adapter'} ${i + 1}`),
      field('Type', ed.choice(['network_adapters', i, 'kind'],
        [['synthetic', 'Network Adapter (synthetic)'], ['legacy', 'Legacy (emulated)']], ed.offOnly())),
      field('Virtual switch', switchChoice(ed, i, nic, choices)),
      field('MAC address', ed.choice(['network_adapters', i, 'mac_mode'],
        [['dynamic', 'Dynamic'], ['static', 'Static']], ed.offOnly())),
      field('Static MAC', ed.input(['network_adapters', i, 'mac'], 'nullable', ed.offOnly())),
      field('VLAN ID (empty = none)', ed.input(['network_adapters', i, 'vlan_id'], 'nullnumber')),
      h('button', { type: 'button', ...ed.offOnly(), onclick() {
        ed.draft.network_adapters.splice(i, 1);
        render();
      } }, 'Remove'));
  }), h('button', { type: 'button', ...ed.offOnly({ dataset: { setting: 'network_adapters' } }), onclick() {
    ed.draft.network_adapters.push({ kind: 'synthetic', switch: null, mac_mode: 'dynamic', mac: null,
      vlan_id: null });
    render();
  } }, 'Add network adapter'));
  render();
  return box;
}

function com(ed, port, box) {
  const key = `com${port}`;
  const render = () => clear(box, ed.note('COM ports change only while it is Off.'),
    field('Attachment', ed.choice([key, 'kind'], [['none', 'None'], ['pipe', 'Named pipe'],
      ['remote', 'Remote (TCP client)']], ed.offOnly(), render)),
    ed.draft[key].kind === 'pipe' ? field('Pipe path (empty = in the VM\'s runtime folder)',
      ed.input([key, 'path'], 'nullable', ed.offOnly())) : null,
    ed.draft[key].kind === 'remote' ? field('Address HOST:PORT',
      ed.input([key, 'address'], 'nullable', ed.offOnly())) : null);
  render();
  return box;
}

function management(ed) {
  const start = ed.draft.automatic_start;
  return {
    Name: [field('Name', ed.input(['name'])),
      field('Notes', (() => {
        const el = h('textarea', { rows: 4, dataset: { setting: 'notes' } }, ed.draft.notes);
        el.addEventListener('change', () => { ed.draft.notes = el.value; });
        return el;
      })())],
    'Integration Services': Object.keys(ed.draft.integration_services || {}).map((name) =>
      field(SERVICES[name] || name, ed.input(['integration_services', name], 'check'))),
    'Automatic Start Action': [field('Action', ed.choice(['automatic_start', 'action'],
      [['nothing', 'Nothing'], ['if_running', 'Start if it was running when the service stopped'],
        ['always', 'Always start automatically']])),
    field('Startup delay (seconds)', start ? ed.input(['automatic_start', 'delay_s'], 'number') : '')],
    'Automatic Stop Action': [field('Action', ed.choice(['automatic_stop', 'action'],
      [['save', 'Save the virtual machine state'], ['turn_off', 'Turn off the virtual machine'],
        ['shut_down', 'Shut down the guest operating system']]))],
    ...('checkpoint_folder' in ed.draft ? { 'Checkpoint File Location':
      [ed.note('the checkpoint folder changes only while it is Off.'),
        field('Folder (empty = the VM\'s folder)', ed.input(['checkpoint_folder'], 'nullable', ed.offOnly()))] }
      : {}),
  };
}

function sections(ed) {
  return {
    Hardware: {
      BIOS: bios(ed), Memory: memory(ed), Processor: processor(ed),
      'IDE Controller 0': [ideController(ed, 0, h('div'))],
      'IDE Controller 1': [ideController(ed, 1, h('div'))],
      'SCSI Controllers': [scsi(ed, h('div'))],
      'Network Adapters': [adapters(ed, h('div'))],
      'COM 1': [com(ed, 1, h('div'))], 'COM 2': [com(ed, 2, h('div'))],
      'Diskette Drive': [field('Virtual floppy disk (.vfd), empty = none',
        ed.input(['floppy', 'path'], 'nullable'))],
    },
    Management: management(ed),
  };
}

export async function settingsDialog(name) {
  const vm = await api('GET', vmPath(name));
  const ed = new Editor(vm, await switchChoices());
  let body;
  const showSection = (title) => {
    body.querySelectorAll('.settings-section').forEach((s) => { s.hidden = s.dataset.section !== title; });
    body.querySelectorAll('.settings-nav button').forEach((b) =>
      b.classList.toggle('current', b.dataset.section === title));
  };
  const save = async () => {
    const patch = ed.patch();
    if (!Object.keys(patch).length) return true;
    try {
      const updated = await api('PATCH', vmPath(name), patch);
      ed.original = structuredClone(updated.settings);
      fieldError(body, null);
      showError(body, null);
      return true;
    } catch (error) {
      const at = fieldError(body, error);
      if (at) showSection(at.closest('.settings-section').dataset.section);
      else showError(body, error);
      return false;
    }
  };
  await dialog({
    title: `Settings for ${name}`, id: 'settings-dialog', wide: true,
    build(b) {
      body = b;
      const nav = h('nav', { class: 'settings-nav' });
      const pages = h('div', { class: 'settings-pages' });
      for (const [group, entries] of Object.entries(sections(ed))) {
        nav.append(h('div', { class: 'nav-group' }, group));
        for (const [title, content] of Object.entries(entries)) {
          nav.append(h('button', { type: 'button', dataset: { section: title },
            onclick: () => showSection(title) }, title));
          pages.append(h('section', { class: 'settings-section', dataset: { section: title } },
            h('h3', {}, title), content));
        }
      }
      b.append(h('p', { class: 'hint', id: 'settings-state' }, vm.state === 'Off'
        ? 'State: Off. Every setting can change.'
        : `State: ${vm.state}. Settings that need the VM Off are disabled; SCSI hard disks, DVD and `
          + 'floppy media, processor reserve/limit/weight, the adapters\' switch and VLAN, and the '
          + 'management settings can change now.'),
      h('div', { class: 'settings' }, nav, pages));
      showSection('Memory');
    },
    buttons: [
      { label: 'OK', primary: true, action: 'ok', async onclick(close) { if (await save()) close(true); } },
      { label: 'Apply', action: 'apply', async onclick() { if (await save()) toast('Settings applied'); } },
      { label: 'Cancel', action: 'cancel', onclick: (close) => close(null) },
    ],
  });
}
