// The same API as ebm.js, running in a Web Worker so pages stay responsive.
import { EbmError, TaskMethods } from './ebm.js';

export { EbmError };

/**
 * Starts a worker and a runtime in it.
 * @param {{device?: 'auto'|'webgpu'|'cpu', workerUrl?: string|URL}} [options]
 */
export async function createWorkerRuntime({ workerUrl, ...options } = {}) {
  const worker = new Worker(workerUrl ?? new URL('./worker.js', import.meta.url), { type: 'module' });
  const client = new WorkerRuntime(worker);
  client.backend = await client.request({ op: 'create', options });
  return client;
}

class WorkerRuntime {
  constructor(worker) {
    this.worker = worker;
    this.pending = new Map();
    this.nextId = 1;
    this.backend = null;
    worker.onmessage = ({ data }) => {
      const entry = this.pending.get(data.id);
      if (!entry) return;
      if (data.progress) { entry.onProgress?.(data.progress); return; }
      if (data.loadProgress) { entry.onProgress?.(data.loadProgress); return; }
      this.pending.delete(data.id);
      if (data.ok) entry.resolve(data.value);
      else entry.reject(new EbmError(data.error.code, data.error.message));
    };
    worker.onerror = (event) => {
      const error = new EbmError('crashed', `the worker failed: ${event.message ?? 'unknown error'}`);
      for (const entry of this.pending.values()) entry.reject(error);
      this.pending.clear();
    };
  }

  request(message, { onProgress, signal, transfer = [] } = {}) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      if (signal?.aborted) { reject(new EbmError('cancelled', 'sampling was cancelled')); return; }
      this.pending.set(id, { resolve, reject, onProgress });
      signal?.addEventListener('abort', () => this.worker.postMessage({ op: 'cancel', target: id }), { once: true });
      this.worker.postMessage({ id, ...message }, transfer);
    });
  }

  async loadModel(source, { onProgress, signal } = {}) {
    const payload = source instanceof URL ? source.href
      : typeof source === 'string' ? new URL(source, location.href).href
      : source instanceof Blob ? new Uint8Array(await source.arrayBuffer())
      : source;
    const { handle, info } = await this.request({ op: 'load', source: payload }, { onProgress, signal });
    if (this.backend) this.backend = { ...this.backend };
    return new WorkerModel(this, handle, info);
  }

  destroyDeviceForTesting() { return this.request({ op: 'destroyDevice' }); }

  panicForTesting({ later = false } = {}) { return this.request({ op: 'panic', later }); }

  /** Stops the worker. */
  terminate() { this.worker.terminate(); }
}

class WorkerModel {
  constructor(client, handle, info) {
    this.client = client;
    this.handle = handle;
    this.info = info;
  }

  async run(task, options = {}) {
    const { onProgress, signal, ...rest } = options ?? {};
    const result = await this.client.request(
      { op: 'run', model: this.handle, task, options: rest, progress: Boolean(onProgress) },
      { onProgress, signal },
    );
    this.client.backend = result.backendInfo;
    delete result.backendInfo;
    return result;
  }

  dispose() { return this.client.request({ op: 'dispose', model: this.handle }); }
}

Object.assign(WorkerModel.prototype, TaskMethods);
