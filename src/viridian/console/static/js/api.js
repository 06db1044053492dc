// The console's only way to the service: the same JSON API the CLI uses, authenticated
// by the session cookie (sent by the browser) plus the CSRF token on state changes.

const csrfMeta = document.querySelector('meta[name="csrf-token"]');
export const csrf = csrfMeta ? csrfMeta.content : '';

export class ApiError extends Error {
  constructor(status, error) {
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code || 'error';
    this.details = error.details || {};
  }
}

export async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (method !== 'GET') headers['X-CSRF-Token'] = csrf;
  const options = { method, headers, credentials: 'same-origin' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    options.body = JSON.stringify(body);
  }
  const response = await fetch('/api/v1' + path, options);
  if (response.status === 401) {
    location.href = '/login';
    throw new ApiError(401, { message: 'the session ended; log in again' });
  }
  const type = response.headers.get('content-type') || '';
  const data = type.includes('json') ? await response.json() : await response.blob();
  if (!response.ok) {
    const error = data && data.error ? data.error
      : { code: 'unavailable', message: `${method} ${path}: HTTP ${response.status}` };
    throw new ApiError(response.status, error);
  }
  return data;
}

export const vmPath = (name) => '/vms/' + encodeURIComponent(name);

// Why the service would refuse ``action`` for this VM whatever its state ('' when it can
// work), from a full vm object (GET /vms/{name}): the service's own reasons, its
// ``unavailable`` map (docs/api.md, "VMs") — the console repeats no rule of the service.
export function actionBlocker(vm, action) {
  return (vm && vm.unavailable && vm.unavailable[action]) || '';
}


const FINISHED = new Set(['completed', 'failed', 'cancelled']);

// Follow a job until it ends; onProgress(job) after every look. Resolves with the job.
export async function followJob(job, onProgress = () => {}) {
  onProgress(job);
  while (!FINISHED.has(job.state)) {
    job = await api('GET', `/jobs/${job.id}?wait=1`);
    onProgress(job);
  }
  return job;
}

// Subscribe to the service's event stream: handlers = {vms, jobs, host}.
export function subscribe(handlers, onState = () => {}) {
  const source = new EventSource('/api/v1/events');
  for (const [kind, handle] of Object.entries(handlers)) {
    source.addEventListener(kind, (event) => handle(JSON.parse(event.data)));
  }
  source.onopen = () => onState(true);
  source.onerror = () => onState(false);
  return source;
}

export async function logout() {
  await fetch('/logout', { method: 'POST', headers: { 'X-CSRF-Token': csrf } });
  location.href = '/login';
}
