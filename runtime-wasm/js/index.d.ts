// Types of the package's main entry (`ebm-runtime`, ebm.js): the runtime in the calling thread.
// The other entries have their own: worker.d.ts, element.d.ts, draw.d.ts.

/** Stable error codes of {@link EbmError}. */
export type EbmErrorCode =
  | 'invalid-model'     // the file is damaged, not a model file, or describes an unusable model
  | 'invalid-request'   // the request does not fit the model (sizes, settings, inputs)
  | 'invalid-option'    // an option has the wrong type or value
  | 'no-webgpu'         // device 'webgpu' was asked for and is unavailable
  | 'batch-too-large'   // more images than the adapter's buffers hold
  | 'cancelled'         // the AbortSignal fired
  | 'device-lost'       // the WebGPU device was lost; the next call starts a fresh runtime
  | 'execution-failed'  // the device failed to run or read back a computation
  | 'diverged'          // the chain produced NaN/Inf (step size too large)
  | 'crashed'           // the wasm instance aborted; the next call starts a fresh one
  | 'fetch-failed'      // a model or the runtime could not be downloaded
  | 'disposed'          // the runtime or model was disposed (or the worker terminated)
  | 'unsupported-browser'; // no WebAssembly SIMD, no module workers, or the runtime does not compile

export class EbmError extends Error {
  constructor(code: EbmErrorCode, message: string, options?: ErrorOptions);
  readonly name: 'EbmError';
  readonly code: EbmErrorCode;
}

export type DevicePreference = 'auto' | 'webgpu' | 'cpu';

export interface BackendInfo {
  kind: 'webgpu' | 'cpu';
  adapter: { name: string; vendor: number; deviceType: string; backend: string; driver: string } | null;
  /** Why `auto` fell back to the CPU. */
  fallbackReason: string | null;
  /** Largest buffer one tensor may use, bytes (bounds the batch size). */
  maxBufferBytes: number;
}

export interface ModelInfo {
  family: 'short_run' | 'multigrid' | 'frame' | 'meg' | string;
  channels: number;
  height: number;
  width: number;
  /** Model-space values mapped to black..white. */
  range: [number, number];
  /** Image side of each energy net, coarse to fine ([4, 16, 64] for multigrid models). */
  grids: number[];
  /** Langevin settings (`null` for MEG models, which take MALA settings instead). */
  defaults: {
    steps: number | null; stepSize: number | null; noise: number | null;
    /** MEG models: latent-space MALA steps, step size α and temperature β (else `null`). */
    malaSteps: number | null; malaStepSize: number | null; temperature: number | null;
  };
  /** The model file's full manifest (architecture, data, sampler, provenance). */
  manifest: unknown;
  /** Whether canvases of other sizes can be sampled (`width`/`height` options): texture nets. */
  anySize: boolean;
  /** A texture model's persistent chains from training, `[M, C, H', W']` model-space values: samples to continue from. */
  storedChains: { shape: number[]; values: Float32Array } | null;
}

/** A batch of images. */
export interface Images {
  count: number;
  channels: number;
  height: number;
  width: number;
  /** `count` RGBA images stacked vertically: `new ImageData(rgba, width, height * count)`. */
  rgba: Uint8ClampedArray;
  /** Model-space values, `[count, channels, height, width]` row-major. */
  values: Float32Array;
  range: [number, number];
  /** MEG models: the fraction of MALA proposals accepted over all chains and steps; `null`
   *  without MALA steps and for other families. */
  acceptanceRate: number | null;
}

/** Grid layout of the image helpers: `columns` (default: a square) and `gap` pixels between. */
export interface GridLayout {
  columns?: number;
  gap?: number;
}

export interface SampleResult extends Images {
  /** Wall time of the call. */
  millis: number;
  backend: 'webgpu' | 'cpu';
  /** Image `n` as an `ImageData` (a copy); a `RangeError` outside the batch. */
  imageData(n: number): ImageData;
  /** The batch drawn as a grid, in an `ImageBitmap`. */
  toImageBitmap(layout?: GridLayout): Promise<ImageBitmap>;
  /** The batch drawn as a grid and encoded (default `image/png`). */
  toBlob(type?: string, layout?: GridLayout): Promise<Blob>;
}

/** A progress report of a chain (not the DOM's `ProgressEvent`). */
export interface ChainProgress {
  step: number;
  total: number;
  /** Mean log-density (the net's f, or −E; MEG: −E(G(z))) over the chains at the latest step. */
  logDensity: number;
  /** MEG models: the fraction of MALA proposals accepted so far. */
  acceptanceRate?: number;
  /** Present every `frameEvery` steps. */
  images?: Images;
}

export interface ChainOptions {
  /** Seed of the chain starts (same seed, same start as `trainer sample --seed`; MEG: of the
   *  codes z and the MALA noise, the same chain as `trainer meg sample --seed`). Default 1. */
  seed?: number;
  /** Langevin steps (default: the model's). Langevin options are not for MEG models
   *  (`invalid-request`): they take the MALA options of `sample`. */
  steps?: number;
  /** Drift coefficient (default: the model's). */
  stepSize?: number;
  /** Noise standard deviation (default: the model's). */
  noise?: number;
  /** Switch the noise off. */
  noiseFree?: boolean;
  /** Hand back images with the progress event every this many steps. */
  frameEvery?: number;
  onProgress?: (event: ChainProgress) => void;
  signal?: AbortSignal;
}

export interface SampleOptions extends ChainOptions {
  /** Images (default 16). */
  count?: number;
  /** A canvas other than the training size (both or neither; `sample` only, nets without
   *  dense layers only — e.g. a FRAME texture larger than its training image). */
  width?: number;
  height?: number;
  /** MEG models only (`invalid-request` for others): MALA steps on E(G(z)) in the latent space
   *  (default: the model's; 0 = the generator alone). */
  malaSteps?: number;
  /** MEG models: MALA step size α (default: the model's). */
  malaStepSize?: number;
  /** MEG models: temperature β > 0, the chain targets exp(−β·E(G(z))) (default: the model's). */
  temperature?: number;
}

export interface InterpolateOptions extends ChainOptions {
  /** Rows (default 1). */
  pairs?: number;
  /** Images per row, ρ from 0 to 1 (default 8). */
  points?: number;
}

export interface InpaintOptions extends ChainOptions {
  /** Images in model space, `[count, C, H, W]`. */
  image: Float32Array | number[];
  /** Same length; non-zero where a pixel is to be filled in. */
  mask: Float32Array | Uint8Array | number[];
  /** Images (default 1). */
  count?: number;
  /** Canvas size other than the training size (texture models; both or neither). */
  width?: number;
  height?: number;
  /** Start the missing pixels from `image` instead of the model's initialisation. */
  startFromImage?: boolean;
}

/** Download progress: `stage` says whether the runtime (wasm) or a model is arriving. */
export interface DownloadProgress {
  stage: 'runtime' | 'model';
  loaded: number;
  /** `null` when the server sends no length. */
  total: number | null;
}

export interface LoadOptions {
  onProgress?: (progress: DownloadProgress) => void;
  signal?: AbortSignal;
  /** Keep the model in the Cache API, keyed by its URL (default: the runtime's `cache`). */
  cache?: boolean;
}

export interface EbmModel {
  readonly info: ModelInfo;
  /** Langevin synthesis; MEG models: G(z), z ~ N(0, I), refined by latent-space MALA. */
  sample(options?: SampleOptions): Promise<SampleResult>;
  /** Multigrid cascade from 1×1 start colours; progress counts steps over all grids and frames
   *  have the current grid's size. A single-net model is a one-grid cascade. */
  cascade(options?: SampleOptions): Promise<SampleResult>;
  /** Not for multigrid and MEG models (`invalid-request`). */
  interpolate(options?: InterpolateOptions): Promise<SampleResult>;
  /** Fills the masked pixels; a multigrid model does it through its cascade (known pixels
   *  imposed and frozen at every grid). Not for MEG models (`invalid-request`). */
  inpaint(options: InpaintOptions): Promise<SampleResult>;
  /** Compiles shaders and allocates buffers with one tiny chain. */
  warmUp(): Promise<void>;
  /** Frees the model; later calls reject with `disposed`. */
  dispose(): void | Promise<void>;
}

export interface EbmRuntime {
  readonly backend: BackendInfo;
  loadModel(source: string | URL | Blob | ArrayBuffer | Uint8Array, options?: LoadOptions): Promise<EbmModel>;
  /** Frees the models and the wasm instance; pending and later calls reject with `disposed`. */
  dispose(): void;
}

export interface RuntimeOptions {
  device?: DevicePreference;
  /** Where the wasm lives (default: beside ebm.js). */
  wasmUrl?: string | URL;
  /** Keep the runtime and the models in the Cache API (`clearCache()` empties it). Default false. */
  cache?: boolean;
  /** Progress of the runtime's download (`stage: 'runtime'`). */
  onProgress?: (progress: DownloadProgress) => void;
}

/** A runtime in the calling thread (page or worker). */
export function createRuntime(options?: RuntimeOptions): Promise<EbmRuntime>;

/** Deletes what `cache: true` stored; resolves to whether there was anything. */
export function clearCache(): Promise<boolean>;
