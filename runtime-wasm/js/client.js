// The same API as ebm.js, running in a Web Worker so pages stay responsive.
import { EbmError, TaskMethods, clearCache } from './ebm.js';
import { withImageHelpers } from './draw.js';

export { EbmError, clearCache };

let moduleWorkers; // the probe's answer, found once

// Whether this browser starts module workers: one that does not ignores `type` and never
// reads the option.
function supportsModuleWorkers() {
  if (moduleWorkers !== undefined) return moduleWorkers;
  moduleWorkers = false;
  try {
    new Worker('data:,', { get type() { moduleWorkers = true; return 'module'; } }).terminate();
  } catch { /* a worker-less context: reported below */ }
  return moduleWorkers;
}

// A worker script on another origin (a CDN) cannot be started directly; a same-origin blob
// that imports it can, when the CDN answers with CORS headers as CDNs do.
function trampoline(url) {
  const blob = new Blob([`import ${JSON.stringify(String(url))};\n`], { type: 'text/javascript' });
  return URL.createObjectURL(blob);
}

function startWorker(workerUrl) {
  if (typeof Worker !== 'function' || !supportsModuleWorkers()) {
    throw new EbmError('unsupported-browser', 'this browser cannot start module workers; use createRuntime from ebm.js instead');
  }
  const here = typeof location === 'undefined' ? null : location.href;
  if (workerUrl) {
    const url = new URL(workerUrl, here ?? undefined);
    if (here && url.origin !== new URL(here).origin) {
      const blob = trampoline(url);
      return { worker: new Worker(blob, { type: 'module' }), blob };
    }
    return { worker: new Worker(url, { type: 'module' }) };
  }
  if (here && new URL(import.meta.url).origin !== new URL(here).origin) {
    const blob = trampoline(new URL('./worker.js', import.meta.url).href);
    return { worker: new Worker(blob, { type: 'module' }), blob };
  }
  // This exact form is what bundlers (Vite, webpack 5) recognise and bundle as a worker entry.
  return { worker: new Worker(new URL('./worker.js', import.meta.url), { type: 'module' }) };
}

/**
 * Starts a worker and a runtime in it.
 * @param {{device?: 'auto'|'webgpu'|'cpu', workerUrl?: string|URL, wasmUrl?: string|URL, cache?: boolean, onProgress?: Function}} [options]
 */
export async function createWorkerRuntime({ workerUrl, onProgress, ...options } = {}) {
  const { worker, blob } = startWorker(workerUrl);
  const client = new WorkerRuntime(worker);
  if (options.wasmUrl instanceof URL) options.wasmUrl = options.wasmUrl.href;
  try {
    client.backend = await client.request({ op: 'create', options }, { onProgress });
    return client;
  } catch (error) {
    client.terminate();
    throw error;
  } finally {
    if (blob) URL.revokeObjectURL(blob);
  }
}

class WorkerRuntime {
  constructor(worker) {
    this.worker = worker;
    this.pending = new Map();
    this.nextId = 1;
    this.backend = null;
    this.terminated = false;
    worker.onmessage = ({ data }) => {
      const entry = this.pending.get(data.id);
      if (!entry) return;
      if (data.progress) { entry.onProgress?.(data.progress); return; }
      if (data.loadProgress) { entry.onProgress?.(data.loadProgress); return; }
      this.settle(data.id);
      if (data.ok) entry.resolve(data.value);
      else entry.reject(new EbmError(data.error.code, data.error.message));
    };
    worker.onerror = (event) => {
      event.preventDefault?.();
      const error = new EbmError('crashed', `the worker failed: ${event.message || 'its script did not load or threw'}`);
      this.rejectAll(error);
      // Before the runtime answered, the worker is unusable (its script failed to load).
      if (!this.backend) this.terminate();
    };
  }

  // Forgets request `id` and its abort listener.
  settle(id) {
    const entry = this.pending.get(id);
    this.pending.delete(id);
    if (entry?.signal) entry.signal.removeEventListener('abort', entry.onAbort);
  }

  rejectAll(error) {
    for (const [id, entry] of [...this.pending]) {
      this.settle(id);
      entry.reject(error);
    }
  }

  request(message, { onProgress, signal, transfer = [] } = {}) {
    return new Promise((resolve, reject) => {
      if (this.terminated) { reject(new EbmError('disposed', 'this worker runtime was terminated')); return; }
      if (signal?.aborted) { reject(new EbmError('cancelled', 'sampling was cancelled')); return; }
      const id = this.nextId++;
      const onAbort = () => this.worker.postMessage({ op: 'cancel', target: id });
      this.pending.set(id, { resolve, reject, onProgress, signal, onAbort });
      signal?.addEventListener('abort', onAbort, { once: true });
      this.worker.postMessage({ id, ...message }, transfer);
    });
  }

  async loadModel(source, { onProgress, signal, cache } = {}) {
    const payload = source instanceof URL ? source.href
      : typeof source === 'string' ? new URL(source, location.href).href
      : source instanceof Blob ? new Uint8Array(await source.arrayBuffer())
      : source;
    const { handle, info } = await this.request({ op: 'load', source: payload, cache }, { onProgress, signal });
    if (this.backend) this.backend = { ...this.backend };
    return new WorkerModel(this, handle, info);
  }

  destroyDeviceForTesting() { return this.request({ op: 'destroyDevice' }); }

  panicForTesting({ later = false } = {}) { return this.request({ op: 'panic', later }); }

  /** Stops the worker; calls still pending reject with a `disposed` error, as do later ones. */
  terminate() {
    if (this.terminated) return;
    this.terminated = true;
    this.worker.terminate();
    this.worker.onmessage = null;
    this.worker.onerror = null;
    this.rejectAll(new EbmError('disposed', 'the worker runtime was terminated while this call ran'));
  }

  /** The same as `terminate()`. */
  dispose() { this.terminate(); }
}

class WorkerModel {
  constructor(client, handle, info) {
    this.client = client;
    this.handle = handle;
    this.info = info;
    this.disposed = false;
  }

  async run(task, options = {}) {
    if (this.disposed) throw new EbmError('disposed', 'this model was disposed');
    const { onProgress, signal, ...rest } = options ?? {};
    const result = await this.client.request(
      { op: 'run', model: this.handle, task, options: rest, progress: Boolean(onProgress) },
      { onProgress, signal },
    );
    this.client.backend = result.backendInfo;
    delete result.backendInfo;
    return withImageHelpers(result);
  }

  /** Frees the model in the worker; later calls reject with a `disposed` error. */
  async dispose() {
    if (this.disposed) return;
    this.disposed = true;
    if (!this.client.terminated) await this.client.request({ op: 'dispose', model: this.handle });
  }
}

Object.assign(WorkerModel.prototype, TaskMethods);
