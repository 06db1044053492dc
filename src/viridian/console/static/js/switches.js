// The Virtual Switch Manager (routes /api/v1/switches) and the switch choices offered to
// network adapters. Without the switch routes the service still offers "user" (NAT).

import { api } from './api.js';
import { clear, dialog, field, fieldError, h, select, showError } from './ui.js';

const TYPES = [['external', 'External'], ['internal', 'Internal'], ['private', 'Private']];

export async function listSwitches() {
  try {
    return { switches: (await api('GET', '/switches')).switches || [], available: true };
  } catch (error) {
    if (error.status === 404 || error.status === 405) return { switches: [], available: false };
    throw error;
  }
}

export async function switchChoices() {
  const { switches } = await listSwitches().catch(() => ({ switches: [] }));
  return [['', 'Not connected'], ['user', 'user (NAT, no root needed)'],
    ...switches.map((s) => [s.name, `${s.name} (${s.type || 'switch'})`])];
}

// Readable names for the switch object's fields (docs/api.md, GET /switches); a field
// not named here is shown under its own name.
const PROPERTY_LABELS = {
  number: 'Number', interface: 'Bridge interface', adapter: 'Physical adapter',
  allow_management_os: 'Shared with the host', subnet: 'Subnet', host_address: 'Host address',
  notes: 'Notes', vlan_mode: 'VLAN mode', uplink: 'Uplink', ports: 'Connected adapters',
  addresses: 'Addresses', routes: 'Routes', mac: 'MAC address',
};
const HIDDEN_PROPERTIES = new Set(['name', 'type']);

function portText(port) {
  const vlan = port.mode === 'trunk' ? `trunk ${port.trunk_vlans.join(', ')}`
    : (port.vlan_id ? `VLAN ${port.vlan_id}` : 'untagged');
  return `${port.vm}, adapter ${port.nic} (${port.mac || 'no MAC yet'}) · ${vlan} · `
    + (port.connected ? `connected${port.tap ? ' on ' + port.tap : ''}` : 'VM not running');
}

function routeText(route) {
  return `${route.dst || 'default'}${route.gateway ? ' via ' + route.gateway : ''}`;
}

// One value as text or, for objects and lists, nested elements: never raw JSON.
function propertyValue(key, value) {
  if (value === null || value === undefined || value === '') return h('span', { class: 'none' }, '—');
  if (typeof value === 'boolean') return value ? 'Yes' : 'No';
  if (key === 'ports') {
    return value.length ? h('ul', {}, value.map((p) => h('li', {}, portText(p)))) : 'none';
  }
  if (key === 'routes') return value.length ? h('ul', {}, value.map((r) => h('li', {}, routeText(r)))) : 'none';
  if (Array.isArray(value)) {
    if (!value.length) return 'none';
    return h('ul', {}, value.map((v) => h('li', {}, v && typeof v === 'object' ? propertyList(v) : String(v))));
  }
  if (typeof value === 'object') return propertyList(value);
  return String(value);
}

// A definition list of an object's fields, labelled for people.
export function propertyList(object, hidden = new Set()) {
  return h('dl', { class: 'properties' }, Object.entries(object)
    .filter(([key]) => !hidden.has(key))
    .flatMap(([key, value]) => [h('dt', { dataset: { property: key } }, PROPERTY_LABELS[key] || key),
      h('dd', { dataset: { property: key } }, propertyValue(key, value))]));
}

function switchRow(sw, refresh, body) {
  return h('tr', { dataset: { switch: sw.name } }, h('td', {}, sw.name),
    h('td', {}, sw.type || ''), h('td', { class: 'facts' }, propertyList(sw, HIDDEN_PROPERTIES)),
    h('td', {}, h('button', { type: 'button', dataset: { action: 'remove-switch' }, async onclick() {
      try {
        await api('DELETE', `/switches/${encodeURIComponent(sw.name)}`);
        await refresh();
      } catch (error) { showError(body, error); }
    } }, 'Remove')));
}

export async function switchManager() {
  let body;
  const table = h('table', { class: 'grid', id: 'switch-table' },
    h('thead', {}, h('tr', {}, h('th', {}, 'Name'), h('th', {}, 'Type'), h('th', {}, 'Properties'),
      h('th', {}, ''))), h('tbody'));
  const refresh = async () => {
    const { switches, available } = await listSwitches();
    const rows = switches.map((sw) => switchRow(sw, refresh, body));
    clear(table.tBodies[0], rows.length ? rows : h('tr', {}, h('td', { colspan: 4, class: 'empty' },
      available ? 'No virtual switches yet.' : 'This service has no virtual switch routes yet; '
        + 'network adapters can use "user" (NAT).')));
  };
  const form = h('form', { class: 'inline-form', id: 'new-switch' },
    h('h3', {}, 'New virtual switch'),
    field('Name', h('input', { name: 'name', dataset: { setting: 'name' } })),
    field('Type', select(TYPES, 'internal', { name: 'type', dataset: { setting: 'type' } })),
    field('Physical adapter (external)', h('input', { name: 'adapter',
      dataset: { setting: 'adapter' }, placeholder: 'eth0' })),
    field('Allow the host to share the adapter (external)', h('input', { type: 'checkbox',
      name: 'allow_management_os', value: 'yes', dataset: { setting: 'allow_management_os' } })),
    field('Subnet (internal, optional)', h('input', { name: 'subnet', dataset: { setting: 'subnet' },
      placeholder: '192.168.100.0/24' })),
    field('Notes', h('input', { name: 'notes', dataset: { setting: 'notes' } })));
  await dialog({
    title: 'Virtual Switch Manager', id: 'switch-manager', wide: true,
    build(b) {
      body = b;
      b.append(table, form);
      refresh().catch((error) => showError(b, error));
    },
    buttons: [
      { label: 'Create', primary: true, action: 'create-switch', async onclick() {
        const data = Object.fromEntries(new FormData(form));
        const spec = { name: data.name, type: data.type };
        if (data.adapter) spec.adapter = data.adapter;
        if (data.notes) spec.notes = data.notes;
        if (data.subnet) spec.subnet = data.subnet;
        spec.allow_management_os = data.allow_management_os === 'yes';
        try {
          await api('POST', '/switches', spec);
          showError(body, null);
          fieldError(form, null);
          form.reset();
          await refresh();
        } catch (error) {
          if (!fieldError(form, error)) showError(body, error);
        }
      } },
      { label: 'Close', action: 'close', onclick: (close) => close(null) },
    ],
  });
}
