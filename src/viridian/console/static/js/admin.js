// Administration: users, groups, roles, grants, API tokens, quotas and storage paths —
// each a table of what the service holds plus a small form, all through /api/v1/access.

import { api, logout } from './api.js';
import { clear, h, toast } from './ui.js';

const enc = encodeURIComponent;

function pane(id) {
  return document.querySelector(`#${id} .content`);
}

function table(headers, rows, name) {
  return h('table', { class: 'grid', dataset: { table: name } },
    h('thead', {}, h('tr', {}, headers.map((t) => h('th', {}, t)))),
    h('tbody', {}, rows.map(({ key, cells }) => h('tr', { dataset: { key } },
      cells.map((c) => h('td', {}, c))))));
}

function button(label, action, onclick) {
  return h('button', { type: 'button', class: 'link', dataset: { action }, onclick }, label);
}

// A one-line form: fields [{name, placeholder, type, options}], submit(values) → Promise.
function form(name, fields, label, submit) {
  const inputs = fields.map((f) => (f.options
    ? h('select', { name: f.name, 'aria-label': f.placeholder },
      f.options.map((o) => h('option', { value: o }, o)))
    : h('input', { name: f.name, placeholder: f.placeholder, type: f.type || 'text',
      'aria-label': f.placeholder })));
  const el = h('form', { class: 'inline', dataset: { form: name } }, inputs,
    h('button', { type: 'submit' }, label));
  el.addEventListener('submit', async (event) => {
    event.preventDefault();
    const values = Object.fromEntries(inputs.map((i) => [i.name, i.value.trim()]));
    await run(() => submit(values));
  });
  return el;
}

async function run(work) {
  const box = document.getElementById('admin-error');
  try {
    await work();
    box.hidden = true;
    await refresh();
  } catch (error) {
    box.textContent = error.message;
    box.hidden = false;
  }
}

let pendingSecret = null; // a new token's secret, shown once after the tables are redrawn

const orNull = (text) => (text === '' ? null : Number(text));

async function refresh() {
  const [{ users }, { groups }, { roles }, { grants }, { tokens }, { storage_paths: paths },
    { realms }] = await Promise.all(['/access/users', '/access/groups', '/access/roles',
    '/access/grants', '/access/tokens', '/access/storage-paths', '/access/realms']
    .map((path) => api('GET', path)));
  const roleNames = roles.map((r) => r.name);
  clear(pane('users-pane'), table(['Name', 'Realm', 'Two-factor', 'Quota', ''],
    users.map((u) => ({ key: u.name, cells: [u.name, u.realm, u.totp ? 'on' : 'off',
      Object.entries(u.quota).filter(([, v]) => v !== null).map(([k, v]) => `${k} ${v}`).join(', ') || '—',
      h('span', {}, button('Remove', 'remove-user', () => run(() => api('DELETE', `/access/users/${enc(u.name)}`))),
        ' ', u.totp ? null : button('Two-factor on', 'totp', () => run(async () => {
          const made = await api('POST', `/access/users/${enc(u.name)}/totp`);
          toast(`${u.name}'s TOTP secret (shown once): ${made.secret}`);
        })))] })), 'users'),
  form('add-user', [{ name: 'name', placeholder: 'user name' },
    { name: 'realm', placeholder: 'realm', options: realms.map((r) => r.name) },
    { name: 'password', placeholder: 'password (local)', type: 'password' }], 'Add user',
  (v) => api('POST', '/access/users', { name: v.name, realm: v.realm,
    ...(v.password ? { password: v.password } : {}) })));
  clear(pane('groups-pane'), table(['Group', 'Members'],
    Object.entries(groups).map(([g, members]) => ({ key: g, cells: [g, members.join(', ')] })), 'groups'),
  form('join', [{ name: 'user', placeholder: 'user' }, { name: 'group', placeholder: 'group' }],
    'Add to group', (v) => api('PUT', `/access/groups/${enc(v.group)}/members/${enc(v.user)}`)));
  clear(pane('roles-pane'), table(['Role', 'Kind', 'Operations'],
    roles.map((r) => ({ key: r.name, cells: [r.name, r.builtin ? 'built-in' : 'custom',
      r.operations.join(', ')] })), 'roles'),
  form('new-role', [{ name: 'name', placeholder: 'role name' },
    { name: 'operations', placeholder: 'vm.start,vm.stop' }], 'New role',
  (v) => api('POST', '/access/roles', { name: v.name,
    operations: v.operations.split(',').map((o) => o.trim()).filter(Boolean) })));
  clear(pane('grants-pane'), table(['Role', 'To', 'On', ''],
    grants.map((g) => ({ key: String(g.id), cells: [g.role, g.to, g.on,
      button('Revoke', 'revoke', () => run(() => api('DELETE',
        `/access/grants?role=${enc(g.role)}&to=${enc(g.to)}&on=${enc(g.on)}`)))] })), 'grants'),
  form('grant', [{ name: 'role', placeholder: 'role', options: roleNames },
    { name: 'to', placeholder: 'user or @group' }, { name: 'on', placeholder: 'host | vm:NAME | tag:TAG' }],
  'Grant', (v) => api('POST', '/access/grants', { role: v.role, to: v.to, on: v.on || 'host' })));
  const secret = h('p', { class: 'secret', id: 'token-secret', hidden: true });
  clear(pane('tokens-pane'), table(['Id', 'User', 'Name', 'Role', 'State', ''],
    tokens.map((t) => ({ key: t.id, cells: [t.id, t.user, t.name, t.role || '—',
      t.revoked ? 'revoked' : 'active', t.revoked ? '' : button('Revoke', 'revoke-token',
        () => run(() => api('DELETE', `/access/tokens/${enc(t.id)}`)))] })), 'tokens'),
  form('new-token', [{ name: 'user', placeholder: 'user' }, { name: 'name', placeholder: 'token name' },
    { name: 'role', placeholder: 'role (optional)', options: ['', ...roleNames] }], 'New token',
  async (v) => {
    const made = await api('POST', '/access/tokens', { user: v.user, name: v.name || 'default',
      ...(v.role ? { role: v.role } : {}) });
    pendingSecret = made.secret;
  }), secret);
  if (pendingSecret) {
    secret.textContent = `New token (shown only now): ${pendingSecret}`;
    secret.hidden = false;
    pendingSecret = null;
  }
  clear(pane('quotas-pane'), table(['To', 'Storage path'],
    paths.map((p) => ({ key: `${p.to}:${p.path}`, cells: [p.to, p.path] })), 'storage'),
  form('storage', [{ name: 'to', placeholder: 'user or @group' }, { name: 'path', placeholder: '/folder' }],
    'Add storage path', (v) => api('POST', '/access/storage-paths', { to: v.to, path: v.path })),
  form('quota', [{ name: 'user', placeholder: 'user' }, { name: 'vms', placeholder: 'VMs', type: 'number' },
    { name: 'memory_mb', placeholder: 'memory MB', type: 'number' },
    { name: 'processors', placeholder: 'processors', type: 'number' },
    { name: 'disk_mb', placeholder: 'disk MB', type: 'number' }], 'Set quota',
  (v) => api('PUT', `/access/quotas/${enc(v.user)}`, { vms: orNull(v.vms),
    memory_mb: orNull(v.memory_mb), processors: orNull(v.processors), disk_mb: orNull(v.disk_mb) })));
}

document.getElementById('logout').addEventListener('click', logout);
api('GET', '/access/whoami').then((me) => {
  document.getElementById('who').textContent = me.via === 'admin-token' ? 'admin token'
    : `${me.user} (${me.realm})`;
}).catch(() => {});
run(async () => {});
