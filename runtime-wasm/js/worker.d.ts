// Types of `ebm-runtime/worker` (client.js): the same runtime in a dedicated Web Worker.
import type { EbmRuntime, RuntimeOptions } from './index.js';

export type * from './index.js';
export { EbmError, clearCache } from './index.js';

export interface WorkerRuntimeOptions extends RuntimeOptions {
  /** The worker script (default: worker.js beside client.js; another origin goes through a
   *  same-origin blob that imports it). */
  workerUrl?: string | URL;
}

export interface WorkerRuntime extends EbmRuntime {
  /** Stops the worker; pending and later calls reject with `disposed`. */
  terminate(): void;
}

/** Starts a worker and a runtime in it; same API as `createRuntime`. */
export function createWorkerRuntime(options?: WorkerRuntimeOptions): Promise<WorkerRuntime>;
