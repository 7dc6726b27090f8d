// The demo page: everything heavy runs in a Web Worker through the runtime's worker client.
import { createWorkerRuntime } from './pkg/client.js';
import { drawGrid } from './pkg/draw.js';
import { EndlessTexture } from './texture.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const state = { runtime: null, device: null, model: null, info: null, last: null, cursor: 0, picked: null, mask: null, brushAt: null, controller: null, texture: null };
// Tests and the benchmark read this.
window.demo = { state, ready: null, generated: 0, errors: [] };

function showError(error) {
  const box = $('error');
  box.hidden = false;
  box.textContent = `${error.code ? `[${error.code}] ` : ''}${error.message ?? error}`;
  window.demo.errors.push({ code: error.code ?? null, message: error.message ?? String(error) });
}

function clearError() { $('error').hidden = true; }

function setBusy(busy) {
  for (const id of ['generate', 'interpolate', 'inpaint', 'texture-start']) $(id).disabled = busy || !state.model;
  $('texture-extend').disabled = busy || !state.texture;
  $('stop').disabled = !busy;
  // Screen readers hold a busy live region's changes: they hear the outcome, not every step.
  $('status').setAttribute('aria-busy', String(busy));
}

function describeBackend(backend) {
  if (backend.kind === 'webgpu') {
    const a = backend.adapter ?? {};
    return `WebGPU — ${a.name || 'adapter'} (${a.deviceType}, ${a.backend})`;
  }
  return backend.fallbackReason ? `CPU — fallback: ${backend.fallbackReason}` : 'CPU (by choice)';
}

function showBackend() {
  const badge = $('backend');
  badge.dataset.state = state.runtime.backend.kind;
  badge.textContent = describeBackend(state.runtime.backend);
}

const COUNT = 16;
const COLUMNS = 4;

const isMeg = () => state.info?.family === 'meg';

// A MEG model's chain: latent-space MALA on E(G(z)); the others: Langevin in pixel space.
function chainOptions() {
  if (isMeg()) {
    return { malaSteps: Number($('mala-steps').value), temperature: Number($('temperature').value), seed: Number($('seed').value) };
  }
  return {
    steps: Number($('steps').value),
    stepSize: Number($('step-size').value),
    noise: Number($('noise').value),
    noiseFree: $('noise-free').checked,
    seed: Number($('seed').value),
  };
}

async function startRuntime(device) {
  state.runtime?.terminate();
  state.model = null;
  $('backend').dataset.state = 'starting';
  $('backend').textContent = 'starting…';
  state.runtime = await createWorkerRuntime({ device });
  showBackend();
}

async function loadModel(source, label) {
  clearError();
  setBusy(true);
  $('status').textContent = `loading ${label}…`;
  try {
    const model = await state.runtime.loadModel(source, {
      onProgress: ({ loaded, total }) => {
        $('status').textContent = `loading ${label}: ${(loaded / 1024).toFixed(0)}${total ? ` / ${(total / 1024).toFixed(0)}` : ''} KiB`;
      },
    });
    state.model = model;
    state.info = model.info;
    state.texture = null;
    // The endless texture is for texture models (any canvas size, stationary by design).
    $('texture-section').hidden = !(model.info.family === 'frame' && model.info.anySize);
    // Interpolation walks the short-run map's noise space; multigrid chains start from colours.
    $('interpolate').hidden = model.info.family === 'multigrid';
    // A MEG model samples through its generator: MALA settings instead of Langevin ones, and
    // neither interpolation nor inpainting.
    const meg = model.info.family === 'meg';
    for (const label of document.querySelectorAll('.langevin')) label.hidden = meg;
    for (const label of document.querySelectorAll('.mala')) label.hidden = !meg;
    $('interpolation-section').hidden = meg;
    $('inpainting-section').hidden = meg;
    const d = model.info.defaults;
    fitSlider('steps', d.steps, 1);
    fitSlider('step-size', d.stepSize);
    fitSlider('noise', d.noise);
    fitSlider('mala-steps', d.malaSteps, 1);
    fitSlider('temperature', d.temperature);
    // β must stay above 0: the slider starts one step up, on the default's grid.
    $('temperature').min = $('temperature').step;
    updateOutputs();
    const started = performance.now();
    await model.warmUp();
    const provenance = model.info.manifest.provenance ?? {};
    $('quality').textContent = qualityLine(state.listing?.find((m) => m.url === source));
    $('status').textContent = `${label}: ${model.info.family}, ${model.info.channels}×${model.info.height}×${model.info.width}, trained ${provenance.iterations ?? '?'} iterations on ${provenance.dataset || 'unknown data'}; warmed up in ${(performance.now() - started).toFixed(0)} ms. Press Generate.`;
  } catch (error) {
    state.model = null;
    $('status').textContent = `could not load ${label}`;
    showError(error);
  } finally {
    setBusy(false);
  }
}

async function generate() {
  clearError();
  setBusy(true);
  state.controller = new AbortController();
  const options = chainOptions();
  const meg = isMeg();
  const started = performance.now();
  try {
    // Multigrid models sample coarse to fine (1×1 → 4 → 16 → 64); the others in one chain.
    const method = state.info.family === 'multigrid' ? 'cascade' : 'sample';
    const chainSteps = meg ? options.malaSteps : options.steps;
    const result = await state.model[method]({
      ...options,
      count: COUNT,
      frameEvery: Math.max(1, Math.round(chainSteps / 40)),
      signal: state.controller.signal,
      onProgress: (event) => {
        if (event.images) drawGrid($('grid'), event.images, COLUMNS);
        const seconds = (performance.now() - started) / 1000;
        const measure = meg ? `mean −E(G(z)) ${event.logDensity.toFixed(2)} · accepted ${(100 * event.acceptanceRate).toFixed(0)} %` : `mean f(x) ${event.logDensity.toFixed(2)}`;
        $('status').textContent = `step ${event.step}/${event.total} · ${measure} · ${(event.step / seconds).toFixed(1)} steps/s`;
      },
    });
    state.last = result;
    drawPicker();
    $('grid').setAttribute('aria-label', `${result.count} generated images of ${result.width}×${result.height} pixels`);
    window.demo.generated += 1;
    window.demo.lastResult = result;
    if (meg) {
      const acceptance = result.acceptanceRate == null ? 'the generator alone' : `acceptance rate ${result.acceptanceRate.toFixed(3)}`;
      $('status').textContent = `${result.count} images, G(z) after ${chainSteps} MALA steps (β ${options.temperature}): ${acceptance}; ${result.millis.toFixed(0)} ms on ${result.backend}`;
    } else {
      const steps = method === 'cascade' ? options.steps * state.info.grids.length : options.steps;
      const where = method === 'cascade' ? `${options.steps} steps per grid (${state.info.grids.join(' → ')})` : `${steps} steps`;
      $('status').textContent = `${result.count} images, ${where} in ${result.millis.toFixed(0)} ms (${(steps / result.millis * 1000).toFixed(1)} steps/s) on ${result.backend} · click one to inpaint it`;
    }
  } catch (error) {
    showError(error);
    if (error.code === 'cancelled') $('status').textContent = 'stopped';
    if (error.code === 'device-lost' || error.code === 'crashed') showBackend();
  } finally {
    setBusy(false);
  }
}

async function interpolate() {
  clearError();
  setBusy(true);
  try {
    const result = await state.model.interpolate({ ...chainOptions(), pairs: 1, points: 8 });
    drawGrid($('strip'), result, 8);
    $('strip').setAttribute('aria-label', `${result.count} images interpolated between two chains`);
    window.demo.lastInterpolation = result;
  } catch (error) {
    showError(error);
  } finally {
    setBusy(false);
  }
}

// ---- inpainting: pick an image, paint a mask, fill in ----

function pickImage(index) {
  const r = state.last;
  if (!r || index >= r.count) return;
  const size = r.channels * r.height * r.width;
  state.picked = { values: r.values.slice(index * size, (index + 1) * size), rgba: r.rgba.slice(index * r.width * r.height * 4, (index + 1) * r.width * r.height * 4), width: r.width, height: r.height, channels: r.channels };
  state.mask = new Float32Array(r.height * r.width);
  state.brushAt = { x: r.width >> 1, y: r.height >> 1 };
  drawSource();
  $('inpaint').disabled = !state.model;
}

function drawSource() {
  const p = state.picked;
  if (!p) return;
  const canvas = $('source');
  canvas.width = p.width;
  canvas.height = p.height;
  const shown = p.rgba.slice();
  for (let i = 0; i < state.mask.length; i++) {
    if (state.mask[i]) { shown[i * 4] = 230; shown[i * 4 + 1] = 40; shown[i * 4 + 2] = 40; }
  }
  // The keyboard's brush: its centre pixel in blue while the canvas has focus.
  if (document.activeElement === canvas && state.brushAt) {
    const i = (state.brushAt.y * p.width + state.brushAt.x) * 4;
    shown[i] = 30; shown[i + 1] = 110; shown[i + 2] = 255;
  }
  canvas.getContext('2d').putImageData(new ImageData(shown, p.width, p.height), 0, 0);
}

function paint(event) {
  const p = state.picked;
  if (!p || !(event.buttons & 1)) return;
  const rect = $('source').getBoundingClientRect();
  paintAt(Math.floor((event.clientX - rect.left) / rect.width * p.width), Math.floor((event.clientY - rect.top) / rect.height * p.height));
}

const ARROWS = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };

// Keyboard painting: arrows move the brush (Shift: 4 pixels), Space or Enter paints.
function paintKey(event) {
  const p = state.picked;
  if (!p) return;
  if (ARROWS[event.key]) {
    const [dx, dy] = ARROWS[event.key];
    const stride = event.shiftKey ? 4 : 1;
    state.brushAt = { x: Math.min(p.width - 1, Math.max(0, state.brushAt.x + dx * stride)), y: Math.min(p.height - 1, Math.max(0, state.brushAt.y + dy * stride)) };
    drawSource();
  } else if (event.key === ' ' || event.key === 'Enter') {
    paintAt(state.brushAt.x, state.brushAt.y);
  } else {
    return;
  }
  event.preventDefault();
}

// The generated grid with the keyboard's choice outlined while the grid has focus.
function drawPicker() {
  if (!state.last) return;
  const canvas = $('grid');
  drawGrid(canvas, state.last, COLUMNS);
  if (document.activeElement !== canvas) return;
  const { width, height } = state.last;
  const context = canvas.getContext('2d');
  context.strokeStyle = '#1a73e8';
  context.lineWidth = 1;
  context.strokeRect((state.cursor % COLUMNS) * (width + 1) + 0.5, Math.floor(state.cursor / COLUMNS) * (height + 1) + 0.5, width - 1, height - 1);
}

// Keyboard picking: arrows move the outline over the grid, Enter or Space picks that image.
function pickKey(event) {
  if (!state.last) return;
  if (ARROWS[event.key]) {
    const [dx, dy] = ARROWS[event.key];
    const next = state.cursor + dx + dy * COLUMNS;
    if (next >= 0 && next < state.last.count) state.cursor = next;
    drawPicker();
  } else if (event.key === ' ' || event.key === 'Enter') {
    pickImage(state.cursor);
    $('status').textContent = `image ${state.cursor + 1} picked for inpainting`;
  } else {
    return;
  }
  event.preventDefault();
}

function paintAt(x, y) {
  const p = state.picked;
  const radius = Number($('brush').value);
  for (let dy = -radius; dy <= radius; dy++) {
    for (let dx = -radius; dx <= radius; dx++) {
      const px = x + dx;
      const py = y + dy;
      if (dx * dx + dy * dy <= radius * radius && px >= 0 && py >= 0 && px < p.width && py < p.height) state.mask[py * p.width + px] = 1;
    }
  }
  drawSource();
}

async function inpaint() {
  const p = state.picked;
  if (!p) { showError(new Error('click a generated image first')); return; }
  clearError();
  setBusy(true);
  try {
    const plane = p.width * p.height;
    const mask = new Float32Array(p.channels * plane);
    for (let c = 0; c < p.channels; c++) mask.set(state.mask, c * plane);
    const result = await state.model.inpaint({ ...chainOptions(), image: p.values, mask, count: 1 });
    drawGrid($('filled'), result, 1);
    $('filled').setAttribute('aria-label', 'the picked image with the painted pixels filled in');
    window.demo.lastInpainting = result;
  } catch (error) {
    showError(error);
  } finally {
    setBusy(false);
  }
}

// ---- endless texture (models whose net takes any canvas size) ----

async function textureStep(first) {
  clearError();
  setBusy(true);
  const started = performance.now();
  try {
    const { height, width } = state.info;
    if (first) {
      state.texture = new EndlessTexture(state.model, $('texture'), { height: 2 * height, width: 2 * width, strip: width, overlap: Math.ceil(width / 2), chain: chainOptions() });
    }
    const onProgress = (event) => { $('texture-status').textContent = `step ${event.step}/${event.total}`; };
    await (first ? state.texture.start(onProgress) : state.texture.extend(onProgress));
    $('texture-status').textContent = `${state.texture.width}×${state.texture.height} pixels (trained on ${width}×${height}); last strip in ${((performance.now() - started) / 1000).toFixed(1)} s`;
    window.demo.texture = state.texture;
  } catch (error) {
    showError(error);
  } finally {
    setBusy(false);
  }
}

/** Sets a slider to a model's default, widening its range and step to suit the value. */
function fitSlider(id, value, step) {
  const slider = $(id);
  if (value == null) return;
  slider.dataset.max ??= slider.max;
  slider.max = Math.max(Number(slider.dataset.max), 4 * value);
  slider.step = step ?? (value > 0 ? value / 20 : slider.step);
  slider.value = value;
}

function updateOutputs() {
  $('steps-out').textContent = $('steps').value;
  $('step-size-out').textContent = Number($('step-size').value).toPrecision(3);
  $('noise-out').textContent = Number($('noise').value).toFixed(3);
  $('mala-steps-out').textContent = $('mala-steps').value;
  $('temperature-out').textContent = Number($('temperature').value).toPrecision(2);
}

// What the zoo measured for a listed model (models/models.json, written by
// `scripts/train-zoo.sh report --install`), in one line; empty for models without figures.
function qualityLine(entry) {
  const q = entry?.quality;
  if (!q || !Object.keys(q).length) return '';
  const parts = [];
  if (q.confident_share !== undefined) {
    parts.push(`${(100 * q.confident_share).toFixed(1)} % of ${q.samples} samples read as a digit with confidence above 0.9 (real digits ${(100 * q.real_confident_share).toFixed(1)} %), label entropy ${q.label_entropy.toFixed(2)} nats`);
  }
  if (q.fid !== undefined) parts.push(`FID ${q.fid.toFixed(1)} over ${q.fid_samples} samples (real-vs-real floor ${q.fid_floor.toFixed(1)})`);
  if (q.fresh_distance !== undefined) {
    const persistent = q.persistent_distance === null ? '' : ` (persistent chains ${q.persistent_distance.toFixed(3)})`;
    parts.push(`first-layer statistics of fresh chains ${q.fresh_distance.toFixed(3)} from the training image's${persistent}`);
  }
  const hours = entry.training_seconds / 3600;
  const trained = entry.iterations ? `; trained ${entry.iterations} iterations in ${hours.toFixed(2)} h (recipe ${entry.recipe})` : '';
  return `Measured: ${parts.join('; ')}${trained}.`;
}

async function main() {
  const models = await (await fetch('models/models.json')).json();
  state.listing = models;
  for (const m of models) $('model').add(new Option(m.name, m.url));
  const device = params.get('device') ?? 'auto';
  $('device').value = device;
  for (const id of ['steps', 'step-size', 'noise', 'mala-steps', 'temperature']) $(id).addEventListener('input', updateOutputs);
  updateOutputs();
  $('generate').onclick = generate;
  $('stop').onclick = () => state.controller?.abort();
  $('interpolate').onclick = interpolate;
  $('inpaint').onclick = inpaint;
  $('texture-start').onclick = () => textureStep(true);
  $('texture-extend').onclick = () => textureStep(false);
  $('texture-scroll').addEventListener('scroll', () => {
    const box = $('texture-scroll');
    // Near the right end: extend, unless a strip is already on its way.
    if (state.texture && !$('texture-extend').disabled && box.scrollLeft + box.clientWidth >= box.scrollWidth - 16) textureStep(false);
  });
  $('clear-mask').onclick = () => { if (state.mask) { state.mask.fill(0); drawSource(); } };
  $('source').addEventListener('pointerdown', paint);
  $('source').addEventListener('pointermove', paint);
  $('source').addEventListener('keydown', paintKey);
  $('source').addEventListener('focus', drawSource);
  $('source').addEventListener('blur', drawSource);
  $('grid').addEventListener('keydown', pickKey);
  $('grid').addEventListener('focus', drawPicker);
  $('grid').addEventListener('blur', drawPicker);
  $('grid').addEventListener('click', (event) => {
    if (!state.last) return;
    const rect = $('grid').getBoundingClientRect();
    const column = Math.floor((event.clientX - rect.left) / rect.width * COLUMNS);
    const row = Math.floor((event.clientY - rect.top) / rect.height * Math.ceil(state.last.count / COLUMNS));
    pickImage(row * COLUMNS + column);
  });
  $('model').onchange = () => loadModel($('model').value, $('model').selectedOptions[0].text);
  $('device').onchange = async () => {
    const wanted = $('device').value;
    try {
      await startRuntime(wanted);
      state.device = wanted;
      await loadModel($('model').value, $('model').selectedOptions[0].text);
    } catch (error) {
      // Back to the device that worked, then say what failed (loading clears the error box).
      $('backend').dataset.state = 'error';
      $('backend').textContent = `could not start ${wanted}`;
      $('device').value = state.device;
      try {
        await startRuntime(state.device);
        await loadModel($('model').value, $('model').selectedOptions[0].text);
      } catch (again) {
        $('backend').dataset.state = 'error';
        $('backend').textContent = 'no runtime';
      }
      showError(Object.assign(new Error(`switching to ${wanted} failed: ${error.message}`), { code: error.code }));
    }
  };
  $('file').onchange = () => {
    const file = $('file').files[0];
    if (file) loadModel(file, file.name);
  };
  try {
    await startRuntime(device);
    state.device = device;
  } catch (error) {
    $('backend').dataset.state = 'error';
    $('backend').textContent = 'no runtime';
    showError(error);
    return;
  }
  const wanted = params.get('model');
  await loadModel(wanted ?? models[0].url, wanted ?? models[0].name);
}

window.demo.ready = main();
