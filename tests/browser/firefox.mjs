// Browser tests in a second engine: the runtime in headless Firefox (Debian's firefox-esr),
// driven over WebDriver BiDi. Firefox on Linux ships without WebGPU, so the default profile
// checks the CPU fallback; a second profile turns `dom.webgpu.enabled` on (and its blocklist off)
// and records what
// Firefox's WebGPU offers there (on a machine without a GPU: a software Vulkan adapter).
// Prints every measured number; exits 1 on any failure.
//
//   node firefox.mjs --www ../../www --fixtures DIR      (DIR/native/samples.npy as for run.mjs)
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import puppeteer from 'puppeteer-core';
import { serveStatic } from '../../scripts/serve.mjs';
import { check, maxDiff, parseArgs, readNpy, summary } from './common.mjs';

const args = parseArgs();
const www = resolve(args.www ?? '../../www');
const fixtures = resolve(args.fixtures ?? '.');
const executablePath = process.env.FIREFOX ?? '/usr/bin/firefox-esr';
const NATIVE = { count: 4, seed: 7, steps: 10, noiseFree: true };

async function launch(prefs = {}) {
  return puppeteer.launch({ browser: 'firefox', executablePath, headless: true, protocol: 'webDriverBiDi', extraPrefsFirefox: prefs });
}

async function openPage(browser, url) {
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (error) => errors.push(error.message));
  await page.goto(url);
  return { page, errors };
}

// The same chain as `trainer sample --noise-free --seed 7` on runtime `device`, in this thread
// and in a worker.
async function nativeChains(page, device) {
  return page.evaluate(async (device, options) => {
    const [{ createRuntime }, { createWorkerRuntime }] = await Promise.all([import('./pkg/ebm.js'), import('./pkg/client.js')]);
    const out = {};
    try {
      const runtime = await createRuntime({ device });
      const model = await runtime.loadModel('models/mnist-shortrun.ebm');
      const started = performance.now();
      const result = await model.sample(options);
      out.main = { backend: runtime.backend, values: Array.from(result.values), millis: performance.now() - started };
      runtime.dispose();
      const threaded = await createWorkerRuntime({ device });
      const remote = await threaded.loadModel('models/mnist-shortrun.ebm');
      out.worker = { backend: threaded.backend.kind, values: Array.from((await remote.sample(options)).values) };
      threaded.terminate();
    } catch (error) {
      out.error = `${error.code}: ${error.message}`;
    }
    return out;
  }, device, NATIVE);
}

async function main() {
  const native = readNpy(await readFile(join(fixtures, 'native', 'samples.npy'))).values;
  const server = await serveStatic({ '/': www });
  const base = `http://127.0.0.1:${server.address().port}`;

  // ---- Firefox as shipped: no WebGPU, the CPU fallback ----
  const browser = await launch();
  try {
    const version = await browser.version();
    const { page, errors } = await openPage(browser, `${base}/embed.html`);
    const auto = await nativeChains(page, 'auto');
    check(`${version}: auto falls back to the CPU and says why`, auto.main?.backend.kind === 'cpu' && /WebGPU is not available/.test(auto.main.backend.fallbackReason ?? ''),
      auto.error ?? JSON.stringify(auto.main.backend));
    const mainDiff = maxDiff(auto.main?.values, native);
    const workerDiff = maxDiff(auto.worker?.values, native);
    check('firefox cpu: noise-free seed 7, 10 steps equals native `trainer sample`, in the page and in a worker',
      mainDiff <= 1e-4 && workerDiff <= 1e-4 && auto.worker.backend === 'cpu',
      `max |browser − native| = ${mainDiff.toExponential(2)} (page), ${workerDiff.toExponential(2)} (worker), tolerance 1e-4; ${auto.main?.millis.toFixed(0)} ms`);

    const errorsSeen = await page.evaluate(async () => {
      const { createRuntime } = await import('./pkg/ebm.js');
      const codeOf = async (body) => { try { await body(); return null; } catch (error) { return { code: error.code, message: error.message }; } };
      const runtime = await createRuntime({ device: 'cpu' });
      const bytes = new Uint8Array(await (await fetch('models/mnist-shortrun.ebm')).arrayBuffer());
      const model = await runtime.loadModel(bytes);
      const corrupted = bytes.slice();
      corrupted[corrupted.length >> 1] ^= 0xff;
      const controller = new AbortController();
      const started = performance.now();
      setTimeout(() => controller.abort(), 300);
      const cancelled = await codeOf(() => model.sample({ count: 4, steps: 100000, signal: controller.signal }));
      return {
        badOption: await codeOf(() => model.sample({ steps: -3 })),
        corrupted: await codeOf(() => runtime.loadModel(corrupted)),
        truncated: await codeOf(() => runtime.loadModel(bytes.slice(0, 100))),
        cancelled: { ...cancelled, after: performance.now() - started },
        noGpu: await codeOf(() => createRuntime({ device: 'webgpu' })),
      };
    });
    check('firefox cpu: bad options, damaged model files and a forced WebGPU are typed errors',
      errorsSeen.badOption?.code === 'invalid-option' && errorsSeen.corrupted?.code === 'invalid-model' && /checksum/.test(errorsSeen.corrupted.message)
        && errorsSeen.truncated?.code === 'invalid-model' && errorsSeen.noGpu?.code === 'no-webgpu',
      JSON.stringify({ badOption: errorsSeen.badOption?.code, corrupted: errorsSeen.corrupted?.message, truncated: errorsSeen.truncated?.message, noGpu: errorsSeen.noGpu?.code }));
    check('firefox cpu: an AbortSignal cancels a 100000-step chain', errorsSeen.cancelled.code === 'cancelled' && errorsSeen.cancelled.after < 10_000,
      `${errorsSeen.cancelled.code} after ${errorsSeen.cancelled.after.toFixed(0)} ms`);

    const element = await page.evaluate(async () => {
      const sampler = document.querySelector('ebm-sampler');
      sampler.setAttribute('device', 'cpu');
      const generated = new Promise((done) => sampler.addEventListener('generated', (event) => done(event.detail.count), { once: true }));
      sampler.shadowRoot.querySelector('button').click();
      const count = await generated;
      const canvas = sampler.shadowRoot.querySelector('canvas');
      const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
      const levels = new Set();
      for (let i = 0; i < pixels.length; i += 4) levels.add(pixels[i]);
      return { count, width: canvas.width, height: canvas.height, levels: levels.size, status: sampler.shadowRoot.querySelector('[role=status]').textContent };
    });
    check('firefox: <ebm-sampler> draws a 4×4 grid of samples', element.count === 16 && element.width === 4 * 33 - 1 && element.height === 4 * 33 - 1 && element.levels > 50, JSON.stringify(element));
    check('firefox cpu: no uncaught errors in the page', errors.length === 0, errors.join(' | ') || 'none');
  } finally {
    await browser.close();
  }

  // ---- dom.webgpu.enabled and the blocklist off: what Firefox's WebGPU does on this machine ----
  // Firefox blocks WebGPU on adapters it has not vetted (here a software one) unless told not to.
  const gpuBrowser = await launch({ 'dom.webgpu.enabled': true, 'gfx.webgpu.ignore-blocklist': true });
  try {
    const { page, errors } = await openPage(gpuBrowser, `${base}/embed.html`);
    const adapter = await page.evaluate(async () => {
      if (!navigator.gpu) return null;
      const found = await navigator.gpu.requestAdapter();
      return found ? { vendor: found.info?.vendor ?? '', architecture: found.info?.architecture ?? '', fallback: Boolean(found.info?.isFallbackAdapter ?? found.isFallbackAdapter) } : 'none';
    });
    console.log(`     firefox with WebGPU enabled: navigator.gpu ${adapter === null ? 'absent' : `adapter ${JSON.stringify(adapter)}`}`);
    if (adapter && adapter !== 'none') {
      const gpu = await nativeChains(page, 'webgpu');
      const diff = maxDiff(gpu.main?.values, native);
      check('firefox webgpu: noise-free seed 7 on Firefox\'s WebGPU equals native `trainer sample` within 2e-3',
        gpu.main?.backend.kind === 'webgpu' && diff <= 2e-3, gpu.error ?? `${JSON.stringify(gpu.main.backend.adapter)}; max |browser − native| = ${diff.toExponential(2)}; ${gpu.main.millis.toFixed(0)} ms`);
      const auto = await nativeChains(page, 'auto');
      check('firefox webgpu: auto names its choice between Firefox\'s adapter and the CPU', Boolean(auto.main?.backend.kind) && (auto.main.backend.kind === 'webgpu' || Boolean(auto.main.backend.fallbackReason)),
        auto.error ?? `${auto.main.backend.kind}${auto.main.backend.fallbackReason ? `: ${auto.main.backend.fallbackReason}` : ''}`);
    } else {
      check('firefox webgpu: Firefox offers no WebGPU adapter here, so there is nothing more to test', adapter === null || adapter === 'none', String(adapter));
    }
    check('firefox webgpu: no uncaught errors in the page', errors.length === 0, errors.join(' | ') || 'none');
  } finally {
    await gpuBrowser.close();
  }

  server.close();
  process.exit(summary());
}

main().catch((error) => { console.error(error); process.exit(1); });
