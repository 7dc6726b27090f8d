// Types of `ebm-runtime/element` (element.js): importing it registers <ebm-sampler>.
import type { ChainProgress, EbmError, SampleResult } from './index.js';

// Not an extension of HTMLElementEventMap: its `progress` and `error` are other event types.
export interface EbmSamplerEventMap {
  progress: CustomEvent<ChainProgress>;
  generated: CustomEvent<SampleResult>;
  error: CustomEvent<EbmError>;
}

/** `<ebm-sampler model="…" count="16" steps seed device="auto|webgpu|cpu" scale="3">`. */
export class EbmSampler extends HTMLElement {
  static readonly observedAttributes: string[];
  /** Samples `count` images, drawing the chain as it forms. */
  generate(): Promise<void>;
  /** Stops the chain in progress. */
  stop(): void;
  addEventListener<K extends keyof EbmSamplerEventMap>(type: K, listener: (this: EbmSampler, event: EbmSamplerEventMap[K]) => unknown, options?: boolean | AddEventListenerOptions): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject, options?: boolean | AddEventListenerOptions): void;
}

declare global {
  interface HTMLElementTagNameMap {
    'ebm-sampler': EbmSampler;
  }
}
