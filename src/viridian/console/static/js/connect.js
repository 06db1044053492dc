// VM Connect: the VM's screen through noVNC over the authenticated WebSocket
// /api/v1/vms/{vm}/vnc (keyboard, mouse, Ctrl+Alt+Del), the actions valid in its state,
// and a serial console view of COM1 (/api/v1/vms/{vm}/console?com=1).

import RFB from '/static/vendor/novnc/core/rfb.js';
import { actionBlocker, api, followJob, subscribe, vmPath } from './api.js';
import { clear, h, toast } from './ui.js';

const vm = new URLSearchParams(location.search).get('vm') || '';
const LABELS = { start: 'Start', stop: 'Turn Off', shutdown: 'Shut Down', save: 'Save',
  pause: 'Pause', resume: 'Resume', reset: 'Reset', checkpoint: 'Checkpoint' };
const SCREEN_STATES = new Set(['Running', 'Paused']);
const wsBase = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/api/v1`;

let rfb = null;
let current = null;
let serial = null;
let full = null; // the full vm object (GET /vms/{vm}), for what the list row does not say
const status = (text) => { document.getElementById('connect-status').textContent = text; };

function connectScreen() {
  if (rfb) return;
  const target = document.getElementById('screen');
  rfb = new RFB(target, `${wsBase}${vmPath(vm)}/vnc`);
  rfb.scaleViewport = true;
  rfb.resizeSession = false;
  rfb.focusOnClick = true;
  rfb.addEventListener('connect', () => {
    status(`Connected to ${vm}'s screen`);
    document.body.dataset.screen = 'connected';
    renderToolbar(current);
  });
  rfb.addEventListener('disconnect', () => {
    rfb = null;
    document.body.dataset.screen = 'disconnected';
    renderToolbar(current);
    if (current && SCREEN_STATES.has(current.state)) {
      status(`Disconnected from ${vm}'s screen`);
      setTimeout(connectScreen, 1000);
    } else status(current ? `${vm} is ${current.state}` : `No VM named '${vm}'`);
  });
}

// The message over the screen area: text, or nodes (empty: none).
function showScreenMessage(...content) {
  const box = document.getElementById('screen-message');
  const nodes = content.flat().filter(Boolean);
  box.hidden = !nodes.length;
  clear(box, nodes);
}

// A settled VM without a screen: say so, and offer Start when its state allows it.
function showStopped(row) {
  const canStart = row.actions.includes('start');
  showScreenMessage(
    h('h2', { id: 'stopped-title' }, `The VM is ${row.state}${canStart ? ' — Start it' : ''}`),
    h('p', {}, `'${vm}' is ${row.state === 'Off' ? 'turned off' : row.state.toLowerCase()}: `
      + 'its screen appears here once it runs.'),
    canStart ? h('button', { type: 'button', class: 'primary', id: 'start-from-message',
      async onclick(event) {
        event.target.disabled = true;
        await act('start');
        event.target.disabled = false;
      } }, 'Start') : null);
  status(`${vm} is ${row.state}`);
}

function showMissing() {
  showScreenMessage(h('h2', { id: 'missing-title' }, `No VM named '${vm}'`),
    h('p', {}, 'There is no virtual machine of that name on this server; it may have been '
      + 'removed or renamed. Close this window and connect again from the Manager.'));
  status(`No VM named '${vm}'`);
}

async function act(action) {
  try {
    const job = action === 'checkpoint'
      ? await api('POST', `${vmPath(vm)}/checkpoints`, {})
      : await api('POST', `${vmPath(vm)}/${action}`);
    const done = await followJob(job, (j) => status(`${LABELS[action]}: ${j.message} (${j.progress}%)`));
    status(`${LABELS[action]}: ${done.state}${done.error ? ' — ' + done.error.message : ''}`);
  } catch (error) {
    toast(`${LABELS[action]}: ${error.message}`, 'error');
  }
}

function renderToolbar(row) {
  const valid = new Set(row ? row.actions : []);
  const mine = full && full.name === vm ? full : null;
  const blocked = Object.fromEntries(Object.keys(LABELS).map((a) => [a, actionBlocker(mine, a)]));
  const buttons = [h('button', {
    type: 'button', id: 'ctrl-alt-del', disabled: !rfb || !valid.has('stop'),
    title: 'Send Ctrl+Alt+Del to the guest', onclick: () => rfb && rfb.sendCtrlAltDel(),
  }, 'Ctrl+Alt+Del')];
  for (const [action, label] of Object.entries(LABELS)) {
    if (valid.has(action)) {
      buttons.push(h('button', { type: 'button', dataset: { action }, onclick: () => act(action),
        disabled: Boolean(blocked[action]), title: blocked[action] || undefined }, label));
    }
  }
  clear(document.getElementById('toolbar'), buttons);
}

function onVms({ vms }) {
  const row = vms.find((v) => v.name === vm) || null;
  const changed = !current || !row || current.state !== row.state;
  current = row;
  document.getElementById('connect-state').textContent = row ? row.state : 'not found';
  document.body.dataset.state = row ? row.state : 'missing';
  if (!changed) return;
  renderToolbar(row);
  if (row) loadFull();
  if (!row) {
    showMissing();
  } else if (SCREEN_STATES.has(row.state)) {
    showScreenMessage(row.state === 'Paused' ? 'The virtual machine is paused.' : '');
    connectScreen();
  } else if (!row.state.endsWith('ing')) {
    showStopped(row);
    if (rfb) rfb.disconnect();
  }
  if (serial === null && row && SCREEN_STATES.has(row.state) && !document.getElementById('serial-tab').hidden) {
    openSerial();
  }
}

async function loadFull() {
  try {
    full = await api('GET', vmPath(vm));
  } catch {
    return; // the toolbar keeps what the row allows; the service still says why on refusal
  }
  renderToolbar(current);
}

// --- serial console ----------------------------------------------------------------------

const ANSI = /\x1b\[[0-9;?]*[A-Za-z]/g;

function openSerial() {
  const out = document.getElementById('serial-output');
  const note = document.getElementById('serial-status');
  const decoder = new TextDecoder();
  serial = new WebSocket(`${wsBase}${vmPath(vm)}/console?com=1`);
  serial.binaryType = 'arraybuffer';
  note.textContent = 'Connecting to COM1…';
  serial.onopen = () => { note.textContent = 'Connected to COM1'; };
  serial.onmessage = (event) => {
    if (typeof event.data === 'string') {
      try {
        note.textContent = JSON.parse(event.data).error.message;
      } catch { note.textContent = event.data; }
      return;
    }
    out.textContent += decoder.decode(event.data, { stream: true }).replace(ANSI, '').replace(/\r/g, '');
    if (out.textContent.length > 200000) out.textContent = out.textContent.slice(-150000);
    out.scrollTop = out.scrollHeight;
  };
  serial.onclose = () => {
    serial = null;
    if (!note.textContent.startsWith('Connected')) return;
    note.textContent = 'COM1 disconnected';
  };
}

document.getElementById('serial-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const line = document.getElementById('serial-line');
  if (serial && serial.readyState === WebSocket.OPEN) {
    serial.send(new TextEncoder().encode(line.value + '\r'));
    line.value = '';
  }
});

for (const tab of document.querySelectorAll('.connect-tabs button')) {
  tab.addEventListener('click', () => {
    const name = tab.dataset.tab;
    document.querySelectorAll('.connect-tabs button').forEach((b) => b.classList.toggle('current', b === tab));
    document.getElementById('screen-tab').hidden = name !== 'screen';
    document.getElementById('serial-tab').hidden = name !== 'serial';
    if (name === 'serial' && serial === null) openSerial();
  });
}

document.title = `${vm} — VM Connect`;
document.getElementById('connect-title').textContent = `${vm} on viridian — Virtual Machine Connection`;
subscribe({ vms: onVms }, (live) => { if (!live) status('Live updates interrupted; retrying…'); });
