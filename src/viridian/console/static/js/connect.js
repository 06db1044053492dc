// VM Connect: the VM's screen through noVNC over the authenticated WebSocket
// /api/v1/vms/{vm}/vnc (keyboard, mouse, Ctrl+Alt+Del), the actions valid in its state,
// and a serial console view of COM1 (/api/v1/vms/{vm}/console?com=1).

import RFB from '/static/vendor/novnc/core/rfb.js';
import { api, followJob, subscribe, vmPath } from './api.js';
import { clear, h, toast } from './ui.js';

const vm = new URLSearchParams(location.search).get('vm') || '';
const LABELS = { start: 'Start', stop: 'Turn Off', shutdown: 'Shut Down', save: 'Save',
  pause: 'Pause', resume: 'Resume', reset: 'Reset', checkpoint: 'Checkpoint' };
const SCREEN_STATES = new Set(['Running', 'Paused']);
const wsBase = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/api/v1`;

let rfb = null;
let current = null;
let serial = null;
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
    status(`Disconnected from ${vm}'s screen`);
    if (current && SCREEN_STATES.has(current.state)) setTimeout(connectScreen, 1000);
  });
}

function showScreenMessage(text) {
  const box = document.getElementById('screen-message');
  box.hidden = !text;
  box.textContent = text || '';
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
  const buttons = [h('button', {
    type: 'button', id: 'ctrl-alt-del', disabled: !rfb || !valid.has('stop'),
    title: 'Send Ctrl+Alt+Del to the guest', onclick: () => rfb && rfb.sendCtrlAltDel(),
  }, 'Ctrl+Alt+Del')];
  for (const [action, label] of Object.entries(LABELS)) {
    if (valid.has(action)) {
      buttons.push(h('button', { type: 'button', dataset: { action }, onclick: () => act(action) }, label));
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
  if (!row) {
    showScreenMessage(`There is no virtual machine named '${vm}' on this server.`);
  } else if (SCREEN_STATES.has(row.state)) {
    showScreenMessage(row.state === 'Paused' ? 'The virtual machine is paused.' : '');
    connectScreen();
  } else if (!row.state.endsWith('ing')) {
    showScreenMessage(`The virtual machine '${vm}' is ${row.state.toLowerCase()}. `
      + 'Start it to see its screen.');
    if (rfb) rfb.disconnect();
  }
  if (serial === null && row && SCREEN_STATES.has(row.state) && !document.getElementById('serial-tab').hidden) {
    openSerial();
  }
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
