// Small DOM helpers: element building, dialogs, field errors, formatting.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key in el && typeof value !== 'string') el[key] = value;
    else el.setAttribute(key, value === true ? '' : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el, ...children) {
  el.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined));
  return el;
}

export function fmtUptime(seconds) {
  if (!seconds) return '00:00:00';
  const d = Math.floor(seconds / 86400);
  const rest = new Date((seconds % 86400) * 1000).toISOString().slice(11, 19);
  return d ? `${d}.${rest}` : rest;
}

export const fmtMB = (mb) => (mb ? `${mb} MB` : '0 MB');

export function fmtBytes(n) {
  if (n === null || n === undefined) return '';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

// A modal dialog. build(body) fills the body; buttons: [{label, primary, onclick(close)}].
// Resolves when closed.
export function dialog({ title, id, build, buttons = [], wide = false }) {
  const body = h('div', { class: 'dialog-body' });
  const footer = h('div', { class: 'dialog-buttons' });
  const el = h('dialog', { class: wide ? 'wide' : '', id },
    h('header', {}, h('h2', {}, title)), body, footer);
  document.body.append(el);
  let done;
  const closed = new Promise((resolve) => { done = resolve; });
  const close = (value) => { el.close(); el.remove(); done(value); };
  el.addEventListener('cancel', (event) => { event.preventDefault(); close(null); });
  for (const b of buttons) {
    footer.append(h('button', {
      class: b.primary ? 'primary' : '', type: 'button', dataset: { action: b.action || '' },
      onclick: () => b.onclick(close),
    }, b.label));
  }
  build(body, close);
  el.showModal();
  return closed;
}

export function showError(container, error) {
  let box = container.querySelector(':scope > .dialog-error');
  if (!box) {
    box = h('p', { class: 'dialog-error', role: 'alert' });
    container.prepend(box);
  }
  box.textContent = error ? error.message : '';
  box.hidden = !error;
}

// Show an API validation error next to the field whose data-setting names the failing
// setting (or its nearest enclosing setting); returns the element it was shown at.
export function fieldError(root, error) {
  for (const old of root.querySelectorAll('.field-error')) old.remove();
  const setting = error && error.details && error.details.setting;
  if (!setting) return null;
  let name = setting;
  while (name) {
    const field = root.querySelector(`[data-setting="${CSS.escape(name)}"]`);
    if (field) {
      const message = h('div', { class: 'field-error', role: 'alert' }, error.message);
      field.closest('.field')?.append(message) || field.after(message);
      return field;
    }
    name = name.includes('.') || name.includes('[')
      ? name.replace(/(\.[^.[\]]*|\[\d+\])$/, '') : '';
  }
  return null;
}

export function field(label, input, hint) {
  return h('label', { class: 'field' }, h('span', { class: 'label' }, label), input,
    hint ? h('span', { class: 'hint' }, hint) : null);
}

export function select(options, value, attrs = {}) {
  return h('select', attrs, options.map(([v, text]) =>
    h('option', { value: v, selected: String(v) === String(value) }, text)));
}

export function progressBar(job) {
  return h('div', { class: `progress ${job.state}` },
    h('div', { class: 'bar', style: `width: ${job.progress}%` }),
    h('span', {}, `${job.kind}${job.vm ? ' ' + job.vm : ''}: ${job.message} (${job.progress}%)`));
}

const pad2 = (n) => String(n).padStart(2, '0');

// The browser's local time of an ISO timestamp as HH:MM:SS (the date too when it is not today).
export function fmtClock(iso) {
  const t = new Date(iso);
  const clock = `${pad2(t.getHours())}:${pad2(t.getMinutes())}:${pad2(t.getSeconds())}`;
  const today = new Date();
  return t.toDateString() === today.toDateString() ? clock
    : `${t.getFullYear()}-${pad2(t.getMonth() + 1)}-${pad2(t.getDate())} ${clock}`;
}

export function fmtDuration(ms) {
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.round(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

const stamp = (label, iso, key) => h('span', { dataset: { time: key } }, `${label} `,
  h('time', { datetime: iso, title: iso }, fmtClock(iso)));

// When a job was queued, started and finished, and how long it ran (the job's
// created_at/started_at/finished_at, docs/api.md).
export function jobTimes(job) {
  const parts = [];
  if (!job.started_at) parts.push(stamp('Queued', job.created_at, 'created'));
  else parts.push(stamp('Started', job.started_at, 'started'));
  if (job.finished_at) {
    parts.push(stamp('finished', job.finished_at, 'finished'));
    const ms = Date.parse(job.finished_at) - Date.parse(job.started_at || job.created_at);
    parts.push(h('span', { dataset: { time: 'duration' } }, `took ${fmtDuration(ms)}`));
  }
  return h('div', { class: 'job-times' }, parts);
}

export function toast(message, kind = 'info') {
  const box = document.getElementById('toasts') || document.body.appendChild(
    h('div', { id: 'toasts' }));
  const item = h('div', { class: `toast ${kind}`, role: 'status' }, message);
  box.append(item);
  setTimeout(() => item.remove(), kind === 'error' ? 12000 : 5000);
}
