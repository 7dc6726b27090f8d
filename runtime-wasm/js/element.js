// `<ebm-sampler model="model.ebm">`: a one-element embedding. Shows a canvas, Generate and Stop;
// Generate samples `count` images (default 16) and draws the chain as it forms.
// Attributes (observed: a change applies to the next Generate, a new `model` is loaded then):
// model (URL, required), count, steps, seed, device (auto|webgpu|cpu), scale.
// Events: `progress` (detail: the progress event), `generated` (detail: the result), `error`
// (detail: the EbmError). The status line is a polite live region for screen readers.
import { createWorkerRuntime } from './client.js';
import { drawGrid } from './draw.js';

const runtimes = new Map(); // one worker per device preference, shared by all elements

function runtimeFor(device) {
  if (!runtimes.has(device)) {
    const starting = createWorkerRuntime({ device });
    // A failed start is not kept: the next Generate tries again.
    starting.catch(() => runtimes.delete(device));
    runtimes.set(device, starting);
  }
  return runtimes.get(device);
}

export class EbmSampler extends HTMLElement {
  static get observedAttributes() { return ['model', 'device']; }

  connectedCallback() {
    if (this.shadowRoot) return;
    const root = this.attachShadow({ mode: 'open' });
    root.innerHTML = `<style>canvas{image-rendering:pixelated;background:#777;display:block;max-width:100%}
      p{font:13px system-ui;margin:4px 0}</style>
      <canvas role="img" aria-label="generated images (none yet)"></canvas>
      <button part="generate">Generate</button> <button part="stop" disabled>Stop</button>
      <p role="status" aria-live="polite"></p>`;
    this.canvas = root.querySelector('canvas');
    [this.button, this.stopButton] = root.querySelectorAll('button');
    this.status = root.querySelector('p');
    this.button.onclick = () => this.generate();
    this.stopButton.onclick = () => this.stop();
  }

  // A new model or device: the loaded model no longer applies.
  attributeChangedCallback(name, before, after) {
    if (before === after) return;
    this.stop();
    this.model?.dispose();
    this.model = null;
  }

  disconnectedCallback() { this.stop(); }

  /** Stops the chain in progress, if any. */
  stop() { this.controller?.abort(); }

  async generate() {
    const number = (name, fallback) => Number(this.getAttribute(name) ?? fallback);
    this.button.disabled = true;
    this.stopButton.disabled = false;
    const controller = new AbortController();
    this.controller = controller;
    try {
      const device = this.getAttribute('device') ?? 'auto';
      const source = this.getAttribute('model');
      if (!source) throw Object.assign(new Error('the element has no model attribute'), { code: 'invalid-option' });
      const runtime = await runtimeFor(device);
      this.model ??= await runtime.loadModel(new URL(source, location.href), { signal: controller.signal });
      const count = number('count', 16);
      const columns = Math.ceil(Math.sqrt(count));
      const draw = (images) => {
        drawGrid(this.canvas, images, columns);
        this.canvas.style.width = `${this.canvas.width * number('scale', 3)}px`;
      };
      const options = {
        count,
        seed: number('seed', Date.now() % 100000),
        frameEvery: 2,
        signal: controller.signal,
        onProgress: (event) => {
          if (event.images) draw(event.images);
          this.status.textContent = `step ${event.step}/${event.total}`;
          this.dispatchEvent(new CustomEvent('progress', { detail: event }));
        },
      };
      // A MEG model's chain is latent-space MALA: `steps` counts its proposals.
      if (this.hasAttribute('steps')) options[this.model.info.family === 'meg' ? 'malaSteps' : 'steps'] = number('steps', 0);
      const result = await this.model.sample(options);
      draw(result);
      this.canvas.setAttribute('aria-label', `${result.count} generated images, ${result.width}×${result.height} each`);
      this.status.textContent = `${result.count} images in ${result.millis.toFixed(0)} ms on ${result.backend}`;
      this.dispatchEvent(new CustomEvent('generated', { detail: result }));
    } catch (error) {
      this.status.textContent = error.code === 'cancelled' ? 'stopped' : `${error.code ?? 'error'}: ${error.message}`;
      this.dispatchEvent(new CustomEvent('error', { detail: error }));
    } finally {
      if (this.controller === controller) this.controller = null;
      if (this.button) {
        this.button.disabled = false;
        this.stopButton.disabled = true;
      }
    }
  }
}

if (!customElements.get('ebm-sampler')) customElements.define('ebm-sampler', EbmSampler);
