// `<ebm-sampler model="model.ebm">`: a one-element embedding. Shows a canvas and a button;
// pressing it samples `count` images (default 16) and draws the chain as it forms.
// Attributes: model (URL, required), count, steps, seed, device (auto|webgpu|cpu), scale.
import { createWorkerRuntime } from './client.js';
import { drawGrid } from './draw.js';

const runtimes = new Map(); // one worker per device preference, shared by all elements

function runtimeFor(device) {
  if (!runtimes.has(device)) runtimes.set(device, createWorkerRuntime({ device }));
  return runtimes.get(device);
}

class EbmSampler extends HTMLElement {
  connectedCallback() {
    if (this.shadowRoot) return;
    const root = this.attachShadow({ mode: 'open' });
    root.innerHTML = `<style>canvas{image-rendering:pixelated;background:#777;display:block}
      p{font:13px system-ui;margin:4px 0}</style>
      <canvas></canvas><button>Generate</button><p></p>`;
    this.canvas = root.querySelector('canvas');
    this.button = root.querySelector('button');
    this.status = root.querySelector('p');
    this.button.onclick = () => this.generate();
  }

  async generate() {
    const number = (name, fallback) => Number(this.getAttribute(name) ?? fallback);
    this.button.disabled = true;
    try {
      const runtime = await runtimeFor(this.getAttribute('device') ?? 'auto');
      this.model ??= await runtime.loadModel(new URL(this.getAttribute('model'), location.href));
      const count = number('count', 16);
      const columns = Math.ceil(Math.sqrt(count));
      const draw = (images) => {
        drawGrid(this.canvas, images, columns);
        this.canvas.style.width = `${this.canvas.width * number('scale', 3)}px`;
      };
      const options = { count, seed: number('seed', Date.now() % 100000), frameEvery: 2, onProgress: (e) => { if (e.images) draw(e.images); this.status.textContent = `step ${e.step}/${e.total}`; } };
      // A MEG model's chain is latent-space MALA: `steps` counts its proposals.
      if (this.hasAttribute('steps')) options[this.model.info.family === 'meg' ? 'malaSteps' : 'steps'] = number('steps', 0);
      const result = await this.model.sample(options);
      draw(result);
      this.status.textContent = `${result.count} images in ${result.millis.toFixed(0)} ms on ${result.backend}`;
      this.dispatchEvent(new CustomEvent('generated', { detail: result }));
    } catch (error) {
      this.status.textContent = `${error.code ?? 'error'}: ${error.message}`;
    } finally {
      this.button.disabled = false;
    }
  }
}

if (!customElements.get('ebm-sampler')) customElements.define('ebm-sampler', EbmSampler);
