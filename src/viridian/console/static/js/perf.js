// Performance charts from the service's counter history (/api/v1/counters/history):
// the host's or one VM's counters over the last minutes, redrawn as samples arrive.

import { api } from './api.js';
import { clear, dialog, h } from './ui.js';

const SVG = 'http://www.w3.org/2000/svg';
const WINDOW_S = 600;
const COLORS = ['#1d6fb8', '#d9480f', '#2b8a3e', '#862e9c', '#c92a2a', '#e67700'];

function charts(vm) {
  if (vm) {
    return [
      { title: 'Virtual processors (% Total Run Time)', max: 100,
        paths: [`\\Hyper-V Hypervisor Virtual Processor(${vm}:*)\\% Total Run Time`] },
      { title: 'Assigned memory (MB)', paths: [`\\Hyper-V Dynamic Memory VM(${vm})\\Physical Memory`] },
      { title: 'Virtual disks (bytes/s)', paths: [
        `\\Hyper-V Virtual Storage Device(${vm}:*)\\Read Bytes/sec`,
        `\\Hyper-V Virtual Storage Device(${vm}:*)\\Write Bytes/sec`] },
      { title: 'Network adapters (bytes/s)', paths: [
        `\\Hyper-V Virtual Network Adapter(${vm}:*)\\Bytes Received/sec`,
        `\\Hyper-V Virtual Network Adapter(${vm}:*)\\Bytes Sent/sec`] },
    ];
  }
  return [
    { title: 'Processor (% Total Run Time)', max: 100, paths: [
      '\\Hyper-V Hypervisor Root Virtual Processor(_Total)\\% Total Run Time',
      '\\Hyper-V Hypervisor Virtual Processor(_Total)\\% Total Run Time'] },
    { title: 'Memory (Available MBytes)', paths: ['\\Memory\\Available MBytes'] },
    { title: 'Physical disks (% Idle Time)', max: 100, paths: ['\\PhysicalDisk(_Total)\\% Idle Time'] },
  ];
}

function svg(tag, attrs) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  return el;
}

function draw(chart, history, now) {
  const series = history.paths.filter((p) => chart.patterns.some((re) => re.test(p)));
  const width = 560;
  const height = 120;
  const points = series.map((path) => history.samples
    .filter((s) => path in s.values).map((s) => [s.time, s.values[path]]));
  const top = chart.max || Math.max(1, ...points.flat().map(([, v]) => v)) * 1.1;
  const x = (t) => ((t - (now - WINDOW_S)) / WINDOW_S) * width;
  const y = (v) => height - (v / top) * height;
  const plot = svg('svg', { viewBox: `0 0 ${width} ${height}`, class: 'chart', role: 'img' });
  for (const frac of [0.25, 0.5, 0.75]) {
    plot.append(svg('line', { x1: 0, x2: width, y1: height * frac, y2: height * frac, class: 'gridline' }));
  }
  points.forEach((pts, i) => {
    if (!pts.length) return;
    plot.append(svg('polyline', { fill: 'none', stroke: COLORS[i % COLORS.length], 'stroke-width': 2,
      points: pts.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(' ') }));
  });
  const legend = series.map((path, i) => {
    const last = points[i].length ? points[i][points[i].length - 1][1] : null;
    return h('li', {}, h('span', { class: 'swatch', style: `background:${COLORS[i % COLORS.length]}` }),
      `${path}: ${last === null ? '—' : last.toFixed(1)}`);
  });
  return h('figure', { class: 'perf-chart', dataset: { chart: chart.title } },
    h('figcaption', {}, `${chart.title} — max ${top.toFixed(0)}`), plot,
    h('ul', { class: 'legend' }, legend.length ? legend : h('li', {}, 'no samples yet')));
}

const toRegex = (pattern) => new RegExp('^' + pattern.replace(/[.+?^${}()|[\]\\]/g, '\\$&')
  .replace(/\*/g, '.*') + '$', 'i');

export async function performanceDialog(vm) {
  const list = charts(vm).map((c) => ({ ...c, patterns: c.paths.map(toRegex) }));
  const box = h('div', { class: 'perf' });
  const status = h('p', { class: 'hint' });
  let timer = null;
  const refresh = async () => {
    // every path the history knows (for the VM); each chart picks its own: a counter
    // that does not exist (no network adapter) leaves its chart empty, not an error
    const query = [];
    const now = Date.now() / 1000;
    query.push(`since=${now - WINDOW_S}`);
    if (vm) query.push(`vm=${encodeURIComponent(vm)}`);
    try {
      const history = await api('GET', `/counters/history?${query.join('&')}`);
      clear(box, list.map((c) => draw(c, history, now)));
      status.textContent = `${history.samples.length} samples, one every ${history.interval_s} s; `
        + `last ${WINDOW_S / 60} minutes`;
      timer = setTimeout(refresh, Math.max(2, history.interval_s) * 1000);
    } catch (error) {
      status.textContent = error.message;
    }
  };
  await dialog({
    title: vm ? `Performance of ${vm}` : 'Host performance', id: 'performance', wide: true,
    build(b) { b.append(status, box); refresh(); },
    buttons: [{ label: 'Close', action: 'close', onclick: (close) => { clearTimeout(timer); close(null); } }],
  });
  clearTimeout(timer);
}
