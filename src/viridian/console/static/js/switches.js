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

function switchRow(sw, refresh, body) {
  const facts = Object.entries(sw).filter(([k]) => !['name', 'type'].includes(k))
    .map(([k, v]) => `${k}: ${typeof v === 'object' ? JSON.stringify(v) : v}`).join(' · ');
  return h('tr', { dataset: { switch: sw.name } }, h('td', {}, sw.name),
    h('td', {}, sw.type || ''), h('td', { class: 'facts' }, facts),
    h('td', {}, h('button', { type: 'button', async onclick() {
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
