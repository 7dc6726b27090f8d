// Energy-based model sampler for the web: the public ES module API.
//
// Wraps the wasm-bindgen module (`ebm_runtime.js`) with URL loading and download progress,
// typed errors, and recovery: a WebGPU device loss or a crash of the wasm instance is reported
// once, and the next call transparently starts a fresh instance and reloads the models.

import { createGlue } from './ebm_runtime.js';
import { withImageHelpers } from './draw.js';

/** An error from the runtime; `code` is stable (see index.d.ts). */
export class EbmError extends Error {
  constructor(code, message, options) {
    super(message, options);
    this.name = 'EbmError';
    this.code = code;
  }
}

// Errors from the wasm side arrive as `Error`s named EbmError with a code; anything else that
// escapes the instance (a trap, `RuntimeError: unreachable`) means the instance is gone.
function wrapError(error, instance) {
  if (error instanceof EbmError) return error;
  if (error && error.name === 'EbmError' && typeof error.code === 'string') {
    return new EbmError(error.code, error.message);
  }
  if (error && error.name === 'AbortError') return new EbmError('cancelled', 'sampling was cancelled');
  const panic = instance && safeLastPanic(instance);
  const detail = panic ? `${panic}` : `${error && error.message ? error.message : error}`;
  return new EbmError('crashed', `the runtime crashed (${detail}); the next call starts a fresh one`);
}

function safeLastPanic(instance) {
  try { return instance.glue.lastPanic(); } catch { return undefined; }
}

const CACHE_NAME = 'ebm-runtime';

/** Deletes what `cache: true` stored in the Cache API (the runtime and models). Resolves to
 *  whether there was anything to delete. */
export async function clearCache() {
  if (typeof caches === 'undefined') return false;
  return caches.delete(CACHE_NAME);
}

// Fetches `url`, from the Cache API first when `cache` is set. `stored` settles once a
// download is in the cache: the copy fills as the caller reads the response, so await it
// after reading, not before (the download's progress would otherwise arrive all at once).
async function fetchCached(url, { cache, signal } = {}) {
  const store = cache && typeof caches !== 'undefined' ? await caches.open(CACHE_NAME).catch(() => null) : null;
  const key = String(url);
  const hit = store && await store.match(key);
  if (hit) return { response: hit, stored: Promise.resolve() };
  const response = await fetch(url, { signal });
  const stored = store && response.ok ? store.put(key, response.clone()).catch(() => {}) : Promise.resolve();
  return { response, stored };
}

// A response whose body reports its bytes to `onProgress` as they arrive.
function withProgress(response, onProgress, stage) {
  const total = Number(response.headers.get('content-length')) || null;
  if (!onProgress || !response.body) return response;
  let loaded = 0;
  const counted = response.body.pipeThrough(new TransformStream({
    transform(chunk, controller) {
      loaded += chunk.byteLength;
      onProgress({ stage, loaded, total });
      controller.enqueue(chunk);
    },
  }));
  return new Response(counted, { status: response.status, headers: response.headers });
}

// The smallest module with a SIMD instruction (i32.const 0; i8x16.splat): the runtime needs
// SIMD, and a browser without it should hear so instead of a compile error.
const SIMD_PROBE = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 8, 1, 6, 0, 65, 0, 253, 15, 11]);

let compiled = null; // {url, module: Promise<WebAssembly.Module>} shared by every instance

async function compileRuntime(url, { onProgress, cache }) {
  if (typeof WebAssembly !== 'object' || !WebAssembly.validate(SIMD_PROBE)) {
    throw new EbmError('unsupported-browser', 'this browser lacks WebAssembly SIMD, which the runtime needs');
  }
  let response;
  let stored;
  try {
    ({ response, stored } = await fetchCached(url, { cache }));
  } catch (error) {
    throw new EbmError('fetch-failed', `cannot download the runtime ${url}: ${error.message ?? error}`);
  }
  if (!response.ok) throw new EbmError('fetch-failed', `cannot download the runtime ${url}: HTTP ${response.status}`);
  const counted = withProgress(response, onProgress, 'runtime');
  try {
    // Streaming compilation overlaps the download; it needs the wasm MIME type.
    const module = /^application\/wasm/.test(response.headers.get('content-type') ?? '')
      ? await WebAssembly.compileStreaming(counted)
      : await WebAssembly.compile(await counted.arrayBuffer());
    await stored;
    return module;
  } catch (error) {
    // A download cut short is not the browser's fault.
    if (!(error instanceof WebAssembly.CompileError)) throw new EbmError('fetch-failed', `cannot download the runtime ${url}: ${error.message ?? error}`);
    throw new EbmError('unsupported-browser', `this browser cannot compile the runtime (${error.message ?? error})`);
  }
}

// A fresh wasm instance with its own copy of the glue's state; the compiled module is shared.
async function newInstance({ wasmUrl, onProgress, cache }) {
  const url = String(wasmUrl ?? new URL('./ebm_runtime_bg.wasm', import.meta.url));
  if (!compiled || compiled.url !== url) {
    compiled = { url, module: compileRuntime(url, { onProgress, cache }) };
    compiled.module.catch(() => { compiled = null; });
  }
  const module = await compiled.module;
  const glue = createGlue();
  const exports = await glue.init({ module_or_path: module });
  // The static constructors (cubecl's registries), once: the module exports them so that the
  // linker does not re-run them at the start of every exported function (runtime-wasm/build.rs).
  exports.__wasm_call_ctors?.();
  return { glue, alive: true, memory: exports.memory };
}

// Probes WebGPU before the wasm side touches it, so that a browser without it gets a clear
// reason, and names the adapter (wgpu cannot see the browser's adapter info).
async function probeWebgpu() {
  if (typeof navigator === 'undefined' || !('gpu' in navigator) || !navigator.gpu) {
    return { reason: 'this browser has no navigator.gpu' };
  }
  try {
    const adapter = await navigator.gpu.requestAdapter();
    if (!adapter) return { reason: 'navigator.gpu.requestAdapter() found no adapter' };
    const info = adapter.info ?? {};
    const name = [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(' ');
    return { reason: null, name };
  } catch (error) {
    return { reason: `requestAdapter failed: ${error.message ?? error}` };
  }
}

async function readModel(source, { onProgress, signal, cache } = {}) {
  if (source instanceof Uint8Array) return source;
  if (source instanceof ArrayBuffer) return new Uint8Array(source);
  if (ArrayBuffer.isView(source)) return new Uint8Array(source.buffer, source.byteOffset, source.byteLength);
  if (typeof Blob !== 'undefined' && source instanceof Blob) return new Uint8Array(await source.arrayBuffer());
  if (typeof source !== 'string' && !(source instanceof URL)) {
    throw new EbmError('invalid-option', 'a model source must be a URL, a string, a Blob, an ArrayBuffer or a Uint8Array');
  }
  let response;
  let stored;
  try {
    ({ response, stored } = await fetchCached(source, { cache, signal }));
  } catch (error) {
    if (error && error.name === 'AbortError') throw new EbmError('cancelled', 'the download was cancelled');
    throw new EbmError('fetch-failed', `cannot download ${source}: ${error.message ?? error}`);
  }
  if (!response.ok) throw new EbmError('fetch-failed', `cannot download ${source}: HTTP ${response.status}`);
  try {
    const bytes = new Uint8Array(await withProgress(response, onProgress, 'model').arrayBuffer());
    if (!response.body) onProgress?.({ stage: 'model', loaded: bytes.length, total: bytes.length });
    await stored;
    return bytes;
  } catch (error) {
    if (error && error.name === 'AbortError') throw new EbmError('cancelled', 'the download was cancelled');
    throw new EbmError('fetch-failed', `cannot download ${source}: ${error.message ?? error}`);
  }
}

/**
 * Creates a runtime. `device`: 'auto' (WebGPU on a hardware adapter, else the CPU: a software
 * adapter such as SwiftShader is slower than the CPU backend), 'webgpu' or 'cpu'.
 * `onProgress` hears the runtime's download (`{stage: 'runtime', loaded, total}`); `cache: true`
 * keeps the runtime and the models in the Cache API (`clearCache()` empties it).
 * @param {{device?: 'auto'|'webgpu'|'cpu', wasmUrl?: string|URL, cache?: boolean, onProgress?: Function}} [options]
 */
export async function createRuntime(options = {}) {
  const runtime = new EbmRuntime(options);
  await runtime.ensureAlive(options.onProgress);
  return runtime;
}

export class EbmRuntime {
  constructor({ device = 'auto', wasmUrl, cache = false } = {}) {
    if (!['auto', 'webgpu', 'cpu'].includes(device)) {
      throw new EbmError('invalid-option', `option "device": "${device}" is not one of auto, webgpu, cpu`);
    }
    if (typeof cache !== 'boolean') throw new EbmError('invalid-option', `option "cache": ${JSON.stringify(cache)} is not true or false`);
    this.preference = device;
    this.wasmUrl = wasmUrl;
    this.cache = cache;
    this.instance = null;
    this.restarting = null;
    this.disposed = false;
    this.models = new Set();
    this.backend = null;
  }

  /** (Re)starts the wasm instance and reloads every model. */
  async restart(onProgress) {
    const instance = await newInstance({ wasmUrl: this.wasmUrl, onProgress, cache: this.cache });
    let device = this.preference;
    let fallbackReason = null;
    let adapterName = '';
    if (device !== 'cpu') {
      ({ reason: fallbackReason, name: adapterName = '' } = await probeWebgpu());
      if (fallbackReason && device === 'webgpu') throw new EbmError('no-webgpu', `WebGPU is not available: ${fallbackReason}`);
      if (fallbackReason) device = 'cpu';
    }
    let runtime;
    try {
      runtime = await instance.glue.createRuntime(device);
    } catch (error) {
      throw wrapError(error, instance);
    }
    if (this.disposed) {
      try { runtime.free(); } catch { /* nothing to free */ }
      throw new EbmError('disposed', 'this runtime was disposed while it started');
    }
    this.instance = { ...instance, runtime, pending: new Set() };
    this.watchForCrashes();
    this.backend = JSON.parse(runtime.backendJson());
    if (fallbackReason) this.backend.fallbackReason = `WebGPU is not available: ${fallbackReason}`;
    if (this.backend.adapter && !this.backend.adapter.name) this.backend.adapter.name = adapterName;
    for (const model of this.models) model.attach(this);
  }

  // A panic inside asynchronous wasm work traps in a callback of wasm-bindgen's task queue,
  // not in the caller's promise chain: it surfaces as a global error. Fail the calls in flight
  // instead of leaving their promises hanging.
  watchForCrashes() {
    if (this.crashWatcher || typeof globalThis.addEventListener !== 'function') return;
    const onCrash = (raw) => {
      if (!(raw instanceof WebAssembly.RuntimeError) || !this.instance?.alive) return false;
      const instance = this.instance;
      instance.alive = false;
      const error = wrapError(raw, instance);
      for (const reject of instance.pending) reject(error);
      instance.pending.clear();
      return true;
    };
    this.crashWatcher = {
      error: (event) => { if (onCrash(event.error)) event.preventDefault(); },
      unhandledrejection: (event) => { if (onCrash(event.reason)) event.preventDefault(); },
    };
    for (const [name, listener] of Object.entries(this.crashWatcher)) globalThis.addEventListener(name, listener);
  }

  // Starts an instance when there is none or the last one crashed. Calls that arrive while a
  // restart runs wait for that one instead of starting their own.
  async ensureAlive(onProgress) {
    if (this.disposed) throw new EbmError('disposed', 'this runtime was disposed');
    if (this.instance?.alive) return;
    this.restarting ??= this.restart(onProgress).finally(() => { this.restarting = null; });
    await this.restarting;
  }

  // Runs `body(instance)`, turning failures into EbmErrors and marking the instance dead when
  // it crashed or lost its device.
  async call(body) {
    await this.ensureAlive();
    // dispose() may have run while this call waited for the instance.
    if (this.disposed) throw new EbmError('disposed', 'this runtime was disposed');
    const instance = this.instance;
    let reject;
    const crashed = new Promise((_, r) => { reject = r; });
    instance.pending.add(reject);
    try {
      return await Promise.race([body(instance), crashed]);
    } catch (raw) {
      const error = wrapError(raw, instance);
      if (error.code === 'crashed' || error.code === 'device-lost') instance.alive = false;
      throw error;
    } finally {
      instance.pending.delete(reject);
    }
  }

  /**
   * Loads a model from a URL, Blob or bytes. Resolves to an EbmModel.
   * @param {string|URL|Blob|ArrayBuffer|Uint8Array} source
   * @param {{onProgress?: (p: {stage: 'model', loaded: number, total: number|null}) => void, signal?: AbortSignal, cache?: boolean}} [options]
   */
  async loadModel(source, options = {}) {
    if (this.disposed) throw new EbmError('disposed', 'this runtime was disposed');
    const bytes = await readModel(source, { cache: this.cache, ...options });
    const model = new EbmModel(bytes);
    await this.call(async () => model.attach(this));
    this.models.add(model);
    return model;
  }

  /**
   * Frees every model and the wasm instance and stops listening for crashes; calls still in
   * flight reject with a `disposed` error, and so does every later call.
   */
  dispose() {
    if (this.disposed) return;
    this.disposed = true;
    for (const model of [...this.models]) model.dispose();
    const instance = this.instance;
    this.instance = null;
    if (instance) {
      const error = new EbmError('disposed', 'the runtime was disposed while this call ran');
      for (const reject of instance.pending) reject(error);
      instance.pending.clear();
      instance.alive = false;
      try { instance.runtime.free(); } catch { /* a crashed instance */ }
    }
    for (const [name, listener] of Object.entries(this.crashWatcher ?? {})) globalThis.removeEventListener(name, listener);
    this.crashWatcher = null;
  }

  /** Makes the wasm instance panic, to test crash recovery. */
  panicForTesting() {
    return this.call(async (instance) => instance.runtime.panicForTesting());
  }

  /** Makes asynchronous wasm work panic, to test that no promise hangs on a crash. */
  panicLaterForTesting() {
    return this.call(async (instance) => instance.runtime.panicLaterForTesting());
  }

  /** Destroys the WebGPU device, to test device-loss recovery. */
  destroyDeviceForTesting() {
    this.instance?.runtime.destroyDeviceForTesting();
  }
}

// The task entry points every model handle offers, on top of its own `run(task, options)`.
export const TaskMethods = {
  /** Short-run synthesis from the model's chain start; MEG: G(z) refined by latent MALA. */
  sample(options) { return this.run('sample', options); },
  /** Multigrid cascade: a 1×1 start up-scaled through every grid's chain (1 → 4 → 16 → 64). */
  cascade(options) { return this.run('cascade', options); },
  /** Noise-free images along z_ρ = ρ·z₁ + √(1−ρ²)·z₂. */
  interpolate(options) { return this.run('interpolate', options); },
  /** Fills in the masked pixels of `image`; the others never move. */
  inpaint(options) { return this.run('inpaint', options); },
  /** Compiles the shaders and allocates buffers with one small chain (MEG: one MALA step). */
  async warmUp() { await this.run('sample', this.info.family === 'meg' ? { count: 1, malaSteps: 1 } : { count: 1, steps: 2 }); },
};

export class EbmModel {
  constructor(bytes) {
    this.bytes = bytes;
    this.handle = null;
    this.runtime = null;
    this.info = null;
    this.disposed = false;
    this.running = new Map(); // the wasm calls in flight → their AbortControllers
  }

  attach(runtime) {
    this.runtime = runtime;
    this.running.clear(); // calls of a crashed instance never settle
    try {
      this.handle = runtime.instance.runtime.loadModel(this.bytes);
    } catch (error) {
      throw wrapError(error, runtime.instance);
    }
    this.info = JSON.parse(this.handle.infoJson());
    this.info.storedChains = this.handle.extraTensor('extra.chains');
  }

  async run(task, options = {}) {
    const { onProgress, signal, ...rest } = options ?? {};
    if (this.disposed) throw new EbmError('disposed', 'this model was disposed');
    if (signal?.aborted) throw new EbmError('cancelled', 'sampling was cancelled');
    // The chain watches its own controller, which the caller's signal and dispose() both abort.
    const controller = new AbortController();
    const forward = () => controller.abort();
    signal?.addEventListener('abort', forward, { once: true });
    const started = performance.now();
    try {
      const result = await this.runtime.call(() => this.track(this.handle.run(task, rest, onProgress ?? undefined, controller.signal), controller));
      result.millis = performance.now() - started;
      result.backend = this.runtime.backend.kind;
      return withImageHelpers(result);
    } finally {
      signal?.removeEventListener('abort', forward);
    }
  }

  // Keeps `call` in `running` until the wasm side is done with it: a disposed model's memory
  // is freed only then, since the chain still holds it.
  track(call, controller) {
    this.running.set(call, controller);
    const done = () => {
      this.running.delete(call);
      if (this.disposed && this.running.size === 0) this.free();
    };
    call.then(done, done);
    return call;
  }

  free() {
    try { this.handle?.free(); } catch { /* the instance is gone */ }
    this.handle = null;
  }

  /** Frees the model's memory (once its chains have stopped); later calls reject with a
   *  `disposed` error and chains in flight are cancelled. */
  dispose() {
    if (this.disposed) return;
    this.disposed = true;
    this.runtime?.models.delete(this);
    for (const controller of this.running.values()) controller.abort();
    if (this.running.size === 0) this.free();
  }
}

Object.assign(EbmModel.prototype, TaskMethods);
