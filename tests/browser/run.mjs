// Browser tests: the demo page and the runtime in real headless Chromium, on SwiftShader
// WebGPU and on the CPU fallback. Prints every measured number; exits 1 on any failure.
//
//   node run.mjs --www ../../www --fixtures DIR [--screenshot PNG] [--report JSON]
//   node run.mjs --www ../../www --bench OUT.json [--query '?steps=20&count=16']   (benchmark page only)
//
// DIR holds `native/samples.npy` written by
//   trainer sample www/models/mnist-shortrun.ebm --count 4 --seed 7 --steps 10 --noise-free --device flex --out DIR/native
// and the MEG fixture (`meg/model.ebm`, `meg/native.json`) written by
//   $CARGO_TARGET_DIR/debug/examples/meg_fixture DIR/meg     (cargo build -p runtime-wasm --example meg_fixture)
import { readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { chromium } from 'playwright-core';
import { serveStatic } from '../../scripts/serve.mjs';
import { check, parseArgs, readNpy, results, summary } from './common.mjs';

const args = parseArgs();
const www = resolve(args.www ?? '../../www');
const fixtures = resolve(args.fixtures ?? '.');
const executablePath = process.env.CHROMIUM ?? '/usr/bin/chromium';
const NATIVE = { count: 4, seed: 7, steps: 10 };

function serve() {
  // The benchmark's TensorFlow.js reference, when installed (tests/browser/tfjs).
  const tfjs = new URL('./tfjs/node_modules/', import.meta.url).pathname;
  return serveStatic({ '/': www, '/fixtures/': fixtures, '/tfjs/': tfjs });
}

function stats(values) {
  let min = Infinity; let max = -Infinity; let sum = 0; let sq = 0;
  for (const v of values) { min = Math.min(min, v); max = Math.max(max, v); sum += v; sq += v * v; }
  const mean = sum / values.length;
  return { min, max, mean, std: Math.sqrt(Math.max(0, sq / values.length - mean * mean)) };
}

const WEBGPU_FLAGS = ['--enable-unsafe-webgpu', '--enable-features=Vulkan', '--use-webgpu-adapter=swiftshader', '--use-angle=swiftshader', '--no-sandbox', '--headless=new'];
const NO_WEBGPU_FLAGS = ['--disable-blink-features=WebGPU', '--disable-features=WebGPU', '--no-sandbox', '--headless=new'];

async function openDemo(browser, base, query) {
  const page = await browser.newPage({ viewport: { width: 1000, height: 1500 } });
  const pageErrors = [];
  page.on('pageerror', (error) => pageErrors.push(error.message));
  page.on('console', (message) => { if (message.type() === 'error') pageErrors.push(message.text()); });
  await page.goto(`${base}/index.html${query}`);
  await page.waitForFunction(() => window.demo && window.demo.ready, null, { timeout: 60_000 });
  await page.evaluate(() => window.demo.ready);
  return { page, pageErrors };
}

// Samples through the page's runtime (in its worker) and returns plain arrays.
async function sampleInPage(page, options) {
  return page.evaluate(async (options) => {
    const r = await window.demo.state.model.sample(options);
    return { count: r.count, channels: r.channels, height: r.height, width: r.width, values: Array.from(r.values), rgba: Array.from(r.rgba), millis: r.millis, backend: r.backend };
  }, options);
}

async function errorOf(page, body) {
  return page.evaluate(async (body) => {
    try { await eval(body); return null; } catch (error) { return { code: error.code ?? null, message: error.message }; }
  }, body);
}

function compareWithNative(label, result, native, tolerance) {
  let maxDiff = 0;
  for (let i = 0; i < native.values.length; i++) maxDiff = Math.max(maxDiff, Math.abs(result.values[i] - native.values[i]));
  const sameShape = JSON.stringify([result.count, result.channels, result.height, result.width]) === JSON.stringify(native.shape);
  check(`${label}: noise-free seed ${NATIVE.seed}, ${NATIVE.steps} steps equals native \`trainer sample\` (flex)`, sameShape && maxDiff <= tolerance,
    `max |browser − native| = ${maxDiff.toExponential(2)} (tolerance ${tolerance}) over ${native.values.length} values`);
  return maxDiff;
}

async function commonChecks(label, page, native, tolerance) {
  const sample = await sampleInPage(page, { count: 16, seed: 3, steps: 20 });
  const s = stats(sample.values);
  check(`${label}: 16 samples are not blank and lie in range`, s.std > 0.1 && s.min >= -3 && s.max <= 3 && sample.rgba.length === 16 * 32 * 32 * 4,
    `min ${s.min.toFixed(3)}, max ${s.max.toFixed(3)}, std ${s.std.toFixed(3)}; ${sample.millis.toFixed(0)} ms for 20 steps on ${sample.backend}`);
  const perImage = [];
  for (let n = 0; n < 16; n++) perImage.push(stats(sample.values.slice(n * 1024, (n + 1) * 1024)).std);
  check(`${label}: no image is constant`, Math.min(...perImage) > 0.05, `smallest per-image std ${Math.min(...perImage).toFixed(3)}`);
  const result = await sampleInPage(page, { count: NATIVE.count, seed: NATIVE.seed, steps: NATIVE.steps, noiseFree: true });
  return { maxDiff: compareWithNative(label, result, native, tolerance), sample };
}

// The bundled multigrid model in the page's runtime: the cascade reaches 64×64 through every
// grid, and inpainting through the cascade never moves a known pixel.
async function multigridChecks(label, page) {
  const result = await page.evaluate(async () => {
    const listed = await (await fetch('models/models.json')).json();
    const model = await window.demo.state.runtime.loadModel(listed.find((m) => m.family === 'multigrid').url);
    const sizes = [];
    const cascade = await model.cascade({ count: 2, steps: 3, seed: 4, frameEvery: 3, onProgress: (p) => sizes.push(p.images?.height) });
    const values = Array.from(cascade.values);
    const images = values.slice(0, 4096);
    const missing = images.map((_, i) => (Math.floor(i / 64) >= 20 && Math.floor(i / 64) < 40 && i % 64 >= 20 && i % 64 < 40 ? 1 : 0));
    const inpainted = await model.inpaint({ image: Float32Array.from(images), mask: Float32Array.from(missing), count: 1, steps: 3, seed: 5 });
    let knownChanged = 0; let missingMoved = 0;
    inpainted.values.forEach((v, i) => { if (missing[i]) { if (v !== images[i]) missingMoved++; } else if (v !== images[i]) knownChanged++; });
    let min = Infinity; let max = -Infinity;
    for (const v of values) { min = Math.min(min, v); max = Math.max(max, v); }
    return { grids: model.info.grids, sizes, shape: [cascade.count, cascade.channels, cascade.height, cascade.width], finite: values.every(Number.isFinite), min, max, knownChanged, missingMoved, backend: cascade.backend, millis: cascade.millis };
  });
  check(`${label}: the multigrid cascade runs 4×4 → 16×16 → 64×64`, JSON.stringify(result.sizes) === '[4,16,64]' && JSON.stringify(result.shape) === '[2,1,64,64]' && result.finite && result.max > result.min,
    `frames ${JSON.stringify(result.sizes)}, shape ${JSON.stringify(result.shape)}, values ${result.min.toFixed(1)}…${result.max.toFixed(1)}, ${result.millis.toFixed(0)} ms on ${result.backend}`);
  check(`${label}: multigrid inpainting moves only the missing pixels`, result.knownChanged === 0 && result.missingMoved > 300,
    `${result.missingMoved} of 400 missing pixels sampled, ${result.knownChanged} known pixels changed`);
}

// The MEG fixture (an untrained MNIST 28×28×1 model with its own MALA defaults) in the page's
// runtime: with 0 MALA steps the images are the generator's G(z) of the seed's codes, as
// natively; with the model's MALA steps the chain — run a step at a time for progress — is the
// native one-call chain (codes and MALA noise from the same seeded generator), and the
// acceptance rate is reported; settings and tasks that do not apply are typed errors.
async function megChecks(label, page, native, tolerance) {
  const result = await page.evaluate(async ({ count, seed }) => {
    const model = await window.demo.state.runtime.loadModel('fixtures/meg/model.ebm');
    const plain = await model.sample({ count, seed, malaSteps: 0 });
    const events = [];
    const mala = await model.sample({ count, seed, onProgress: (e) => events.push(e.acceptanceRate) });
    const errorOf = async (task, options) => {
      try { await model[task](options); return null; } catch (error) { return { code: error.code ?? null, message: error.message }; }
    };
    const errors = {
      negativeSteps: await errorOf('sample', { malaSteps: -1 }),
      zeroTemperature: await errorOf('sample', { temperature: 0 }),
      langevinSteps: await errorOf('sample', { steps: 3 }),
      interpolation: await errorOf('interpolate', {}),
    };
    await model.dispose();
    const plainOf = (r) => ({ shape: [r.count, r.channels, r.height, r.width], values: Array.from(r.values), acceptanceRate: r.acceptanceRate, millis: r.millis, backend: r.backend });
    return { family: model.info.family, defaults: model.info.defaults, plain: plainOf(plain), mala: plainOf(mala), events, errors };
  }, { count: native.count, seed: native.seed });
  const maxDiff = (values, reference) => values.reduce((m, v, i) => Math.max(m, Math.abs(v - reference[i])), 0);
  const shape = JSON.stringify(native.shape);
  const plainDiff = maxDiff(result.plain.values, native.generator);
  check(`${label}: MEG with 0 MALA steps gives the generator's G(z) of seed ${native.seed}, as natively`,
    result.family === 'meg' && JSON.stringify(result.plain.shape) === shape && plainDiff <= tolerance && result.plain.acceptanceRate === null,
    `shape ${JSON.stringify(result.plain.shape)}, max |browser − native| = ${plainDiff.toExponential(2)} (tolerance ${tolerance}), acceptanceRate ${result.plain.acceptanceRate}`);
  const s = stats(result.mala.values);
  const rate = result.mala.acceptanceRate;
  const eventsOk = result.events.length === native.malaSteps && result.events.every((r) => r >= 0 && r <= 1) && result.events.at(-1) === rate;
  check(`${label}: MEG with ${native.malaSteps} MALA steps: finite images in [−1, 1], acceptance rate in [0, 1] in the result and every progress event`,
    JSON.stringify(result.mala.shape) === shape && result.mala.values.every(Number.isFinite) && s.min >= -1 && s.max <= 1 && s.std > 0.01 && rate >= 0 && rate <= 1 && eventsOk,
    `values ${s.min.toFixed(3)}…${s.max.toFixed(3)} (std ${s.std.toFixed(3)}), acceptance rate ${rate?.toFixed(3)}, ${result.events.length} progress events, ${result.mala.millis.toFixed(0)} ms on ${result.mala.backend}`);
  const malaDiff = maxDiff(result.mala.values, native.mala);
  check(`${label}: MEG: the step-at-a-time MALA chain equals the native one-call chain (seed ${native.seed})`,
    malaDiff <= tolerance && Math.abs(rate - native.acceptanceRate) < 1e-6,
    `max |browser − native| = ${malaDiff.toExponential(2)} (tolerance ${tolerance}); acceptance rate ${rate?.toFixed(4)} vs native ${native.acceptanceRate.toFixed(4)}`);
  const e = result.errors;
  check(`${label}: MEG: malaSteps −1, temperature 0, Langevin steps and interpolation are typed errors`,
    e.negativeSteps?.code === 'invalid-option' && e.zeroTemperature?.code === 'invalid-request' && /temperature/.test(e.zeroTemperature.message)
      && e.langevinSteps?.code === 'invalid-request' && e.interpolation?.code === 'invalid-request' && /meg/.test(e.interpolation.message),
    JSON.stringify(e));
  return { plainDiff, malaDiff, acceptanceRate: rate };
}

// The demo page on a MEG model: MALA steps and temperature instead of the Langevin controls,
// no interpolation or inpainting, and Generate reports the acceptance rate.
async function megDemoChecks(label, browser, base) {
  const { page, pageErrors } = await openDemo(browser, base, '?model=fixtures/meg/model.ebm');
  const visible = await page.evaluate(() => Object.fromEntries(['mala-steps', 'temperature', 'steps', 'noise', 'noise-free', 'interpolate', 'brush', 'generate']
    .map((id) => [id, document.getElementById(id).checkVisibility()])));
  const before = await page.evaluate(() => window.demo.generated);
  await page.click('#generate');
  await page.waitForFunction((n) => window.demo.generated > n || window.demo.errors.length, before, { timeout: 120_000 });
  const status = await page.locator('#status').textContent();
  const controlsOk = visible['mala-steps'] && visible.temperature && visible.generate && !visible.steps && !visible.noise && !visible['noise-free'] && !visible.interpolate && !visible.brush;
  check(`${label}: the demo on a MEG model shows MALA steps and temperature only, and Generate reports the acceptance rate`,
    controlsOk && /acceptance rate [01]\.\d{3}/.test(status) && pageErrors.length === 0, `${JSON.stringify(visible)}; "${status}"${pageErrors.length ? `; errors ${pageErrors.join(' | ')}` : ''}`);
  await page.close();
}

// The demo without a pointer or a wide screen: live status, labelled canvases, keyboard picking
// and painting, a paint surface that does not scroll under a finger, a phone-wide layout, and a
// failed device switch shown as an error.
async function accessibilityChecks(label, page) {
  const marks = await page.evaluate(() => {
    const status = document.getElementById('status');
    return {
      status: `${status.getAttribute('role')}/${status.getAttribute('aria-live')}`,
      unlabelled: [...document.querySelectorAll('canvas')].filter((canvas) => !canvas.getAttribute('aria-label')).map((canvas) => canvas.id),
      touchAction: getComputedStyle(document.getElementById('source')).touchAction,
    };
  });
  check(`${label}: the demo's status is a polite live region, every canvas is labelled, painting does not scroll under a finger`,
    marks.status === 'status/polite' && marks.unlabelled.length === 0 && marks.touchAction === 'none', JSON.stringify(marks));

  await page.evaluate(() => { document.getElementById('steps').value = 3; });
  const before = await page.evaluate(() => window.demo.generated);
  await page.click('#generate');
  await page.waitForFunction((n) => window.demo.generated > n || window.demo.errors.length, before, { timeout: 120_000 });
  await page.focus('#grid');
  for (const key of ['ArrowRight', 'ArrowRight', 'ArrowDown', 'Enter']) await page.keyboard.press(key);
  await page.focus('#source');
  for (const key of ['ArrowLeft', 'ArrowLeft', 'ArrowLeft', 'Space']) await page.keyboard.press(key);
  const keyboard = await page.evaluate(() => {
    const { last, picked, mask, brushAt } = window.demo.state;
    const size = last.channels * last.height * last.width;
    const expected = last.values.slice(6 * size, 7 * size);
    const same = picked && picked.values.every((v, i) => v === expected[i]);
    const painted = mask ? mask.reduce((sum, v) => sum + v, 0) : 0;
    return { same, brushAt, painted, atBrush: mask?.[brushAt.y * last.width + brushAt.x] ?? null, label: document.getElementById('grid').getAttribute('aria-label') };
  });
  check(`${label}: arrows and Enter pick an image of the grid, arrows and Space paint on it`,
    keyboard.same && keyboard.brushAt.x === 16 - 3 && keyboard.brushAt.y === 16 && keyboard.atBrush === 1 && keyboard.painted > 9 && /16 generated images/.test(keyboard.label), JSON.stringify(keyboard));

  const viewport = page.viewportSize();
  await page.setViewportSize({ width: 360, height: 740 });
  const phone = await page.evaluate(() => ({ page: document.documentElement.scrollWidth, grid: Math.round(document.getElementById('grid').getBoundingClientRect().width) }));
  await page.setViewportSize(viewport);
  check(`${label}: on a 360 px wide phone nothing is wider than the screen`, phone.page <= 360 && phone.grid <= 360 - 32, JSON.stringify(phone));

  const [errorsBefore, deviceBefore] = await page.evaluate(() => [window.demo.errors.length, document.getElementById('device').value]);
  await page.selectOption('#device', 'webgpu');
  await page.waitForFunction((n) => window.demo.errors.length > n, errorsBefore, { timeout: 120_000 });
  await page.waitForFunction(() => window.demo.state.model, null, { timeout: 120_000 });
  const switched = await page.evaluate(() => ({
    error: document.getElementById('error').hidden ? null : document.getElementById('error').textContent,
    device: document.getElementById('device').value,
    badge: document.getElementById('backend').dataset.state,
  }));
  check(`${label}: a failed switch to WebGPU is shown as an error and the page goes on on the CPU`,
    /no-webgpu/.test(switched.error ?? '') && /switching to webgpu failed/.test(switched.error) && switched.device === deviceBefore && switched.badge === 'cpu', JSON.stringify(switched));
}

async function bench(base, outPath) {
  const browser = await chromium.launch({ executablePath, args: WEBGPU_FLAGS });
  try {
    const page = await browser.newPage();
    await page.goto(`${base}/bench.html${args.query ?? ''}`);
    await page.waitForFunction(() => window.benchResult, null, { timeout: 590_000 });
    const result = await page.evaluate(() => window.benchResult);
    console.log(await page.locator('#out').textContent());
    await writeFile(outPath, JSON.stringify(result, null, 2));
    console.log(`bench result written to ${outPath}`);
  } finally {
    await browser.close();
  }
}

async function main() {
  const server = await serve();
  const base = `http://127.0.0.1:${server.address().port}`;
  if (args.bench) {
    await bench(base, args.bench);
    server.close();
    return;
  }
  const native = readNpy(await readFile(join(fixtures, 'native', 'samples.npy')));
  const megNative = JSON.parse(await readFile(join(fixtures, 'meg', 'native.json'), 'utf8'));
  const report = {};

  // ---- WebGPU (SwiftShader) ----
  const gpuBrowser = await chromium.launch({ executablePath, args: WEBGPU_FLAGS });
  try {
    const { page, pageErrors } = await openDemo(gpuBrowser, base, '?device=webgpu');
    // Unless the module exports its static constructors, wasm-ld wraps every export in a call to
    // them, which re-ran cubecl's registrations at each WebGPU dispatch (runtime-wasm/build.rs).
    const wasmExports = await page.evaluate(async () =>
      WebAssembly.Module.exports(await WebAssembly.compileStreaming(fetch('pkg/ebm_runtime_bg.wasm'))).map((e) => e.name));
    check('the runtime exports its static constructors, so they run once instead of before every call',
      wasmExports.includes('__wasm_call_ctors'), `${wasmExports.length} exports`);
    // SwiftShader is a software adapter: 'auto' takes the faster CPU backend and says why.
    const auto = await page.evaluate(async () => (await (await import('./pkg/ebm.js')).createRuntime({ device: 'auto' })).backend);
    check('auto passes over a software WebGPU adapter for the CPU backend, saying why',
      auto.kind === 'cpu' && /software renderer/.test(auto.fallbackReason ?? ''), JSON.stringify(auto));
    const badge = await page.locator('#backend').getAttribute('data-state');
    const badgeText = await page.locator('#backend').textContent();
    check('webgpu: the page runs on WebGPU and says so', badge === 'webgpu' && badgeText.startsWith('WebGPU'), badgeText);
    report.webgpu = await commonChecks('webgpu', page, native, 2e-3);
    // The default model is the zoo's digits model, and the page says what the zoo measured.
    const quality = await page.locator('#quality').textContent();
    check('the demo opens on the zoo\'s digits model and shows its measured quality',
      /read as a digit/.test(quality) && /FID \d+\.\d over \d+ samples/.test(quality), quality);

    // The demo's own buttons: generate (live chain), interpolate, inpaint.
    // The screenshot shows the model's own chain length; the plain test run keeps it short.
    await page.evaluate((steps) => {
      document.getElementById('steps').value = steps;
      document.getElementById('steps').dispatchEvent(new Event('input'));
      window.demo.maxGap = 0;
      let last = performance.now();
      window.demo.ticker = setInterval(() => { const now = performance.now(); window.demo.maxGap = Math.max(window.demo.maxGap, now - last); last = now; }, 10);
    }, args.screenshot ? 40 : 12);
    const before = await page.evaluate(() => window.demo.generated);
    await page.click('#generate');
    await page.waitForFunction((n) => window.demo.generated > n || window.demo.errors.length, before, { timeout: 300_000 });
    const gap = await page.evaluate(() => { clearInterval(window.demo.ticker); return window.demo.maxGap; });
    const status = await page.locator('#status').textContent();
    check('webgpu: Generate draws the grid and reports timing', /steps\/s\) on webgpu/.test(status), status);
    check('webgpu: the page stays responsive while sampling (worker)', gap < 250, `longest main-thread gap ${gap.toFixed(0)} ms`);
    await page.click('#interpolate');
    await page.waitForFunction(() => window.demo.lastInterpolation || window.demo.errors.length, null, { timeout: 300_000 });
    const strip = await page.evaluate(() => window.demo.lastInterpolation && window.demo.lastInterpolation.count);
    check('webgpu: the interpolation strip has 8 images', strip === 8, `${strip} images`);

    // Inpainting through the brush: pick the first image, paint its centre, fill in.
    await page.click('#grid', { position: { x: 20, y: 20 } });
    const box = await page.locator('#source').boundingBox();
    await page.mouse.move(box.x + box.width * 0.35, box.y + box.height * 0.5);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width * 0.65, box.y + box.height * 0.5, { steps: 8 });
    await page.mouse.up();
    const inpaint = await page.evaluate(async () => {
      const picked = window.demo.state.picked;
      const mask = Array.from(window.demo.state.mask);
      document.getElementById('inpaint').click();
      const started = performance.now();
      while (!window.demo.lastInpainting && !window.demo.errors.length && performance.now() - started < 300000) await new Promise((r) => setTimeout(r, 100));
      const out = window.demo.lastInpainting;
      if (!out) return { error: window.demo.errors };
      let frozenChanged = 0; let freeChanged = 0; let masked = 0;
      for (let i = 0; i < mask.length; i++) {
        const moved = Math.abs(out.values[i] - picked.values[i]);
        if (mask[i]) { masked++; if (moved > 1e-4) freeChanged++; } else if (moved !== 0) frozenChanged++;
      }
      return { masked, frozenChanged, freeChanged };
    });
    check('webgpu: brush inpainting moves only painted pixels', inpaint.masked > 20 && inpaint.frozenChanged === 0 && inpaint.freeChanged > inpaint.masked / 2,
      JSON.stringify(inpaint));

    if (args.screenshot) {
      await page.screenshot({ path: args.screenshot, fullPage: true });
      console.log(`     screenshot written to ${args.screenshot}`);
    }

    // Cancellation: a long chain stops promptly.
    const cancel = await page.evaluate(async () => {
      const controller = new AbortController();
      const started = performance.now();
      setTimeout(() => controller.abort(), 1500);
      try {
        await window.demo.state.model.sample({ count: 16, steps: 100000, signal: controller.signal });
        return { code: null };
      } catch (error) {
        return { code: error.code, after: performance.now() - started };
      }
    });
    check('webgpu: an AbortSignal cancels a 100000-step chain', cancel.code === 'cancelled' && cancel.after < 10_000, JSON.stringify(cancel));

    // Bad requests answer with typed errors.
    const tooMany = await errorOf(page, 'window.demo.state.model.sample({count: 5000})');
    check('webgpu: too many images is a typed error', tooMany?.code === 'invalid-request' || tooMany?.code === 'batch-too-large', JSON.stringify(tooMany));
    const badOption = await errorOf(page, 'window.demo.state.model.sample({steps: -3})');
    check('webgpu: a negative step count is a typed error', badOption?.code === 'invalid-option', JSON.stringify(badOption));
    const badMask = await errorOf(page, 'window.demo.state.model.inpaint({image: new Float32Array(10), mask: new Float32Array(10)})');
    check('webgpu: a wrong-sized inpainting image is a typed error', badMask?.code === 'invalid-request' && /1024/.test(badMask.message), JSON.stringify(badMask));

    // Device loss: reported once, then the runtime recovers on the next call.
    await page.evaluate(() => window.demo.state.runtime.destroyDeviceForTesting());
    const lost = await errorOf(page, 'window.demo.state.model.sample({count: 2, steps: 2})');
    check('webgpu: a lost device is reported as device-lost', lost?.code === 'device-lost', JSON.stringify(lost));
    const recovered = await sampleInPage(page, { count: 2, steps: 2 });
    check('webgpu: the next call recovers with a fresh runtime', recovered.count === 2 && stats(recovered.values).std > 0.05, `backend ${recovered.backend}`);

    // A panic inside the wasm instance: a typed error with the panic's message, then recovery.
    const crash = await errorOf(page, 'window.demo.state.runtime.panicForTesting()');
    check('webgpu: a panic in the runtime is a crashed error carrying its message', crash?.code === 'crashed' && /deliberate panic for testing/.test(crash.message), JSON.stringify(crash));
    const asyncCrash = await errorOf(page, 'window.demo.state.runtime.panicForTesting({ later: true })');
    check('webgpu: a panic inside asynchronous work rejects the call instead of hanging', asyncCrash?.code === 'crashed' && /asynchronous panic/.test(asyncCrash.message), JSON.stringify(asyncCrash));
    const afterCrash = await sampleInPage(page, { count: 2, steps: 2 });
    check('webgpu: the next call after a crash works again', afterCrash.count === 2 && stats(afterCrash.values).std > 0.05, `backend ${afterCrash.backend}`);

    // A corrupted model file (one flipped byte) and a truncated one give readable errors in the page.
    const good = await readFile(join(www, 'models', 'mnist-shortrun.ebm'));
    const flipped = Buffer.from(good); flipped[flipped.length >> 1] ^= 0x5a;
    await page.setInputFiles('#file', { name: 'corrupt.ebm', mimeType: 'application/octet-stream', buffer: flipped });
    await page.waitForFunction(() => !document.getElementById('error').hidden, null, { timeout: 60_000 });
    const shown = await page.locator('#error').textContent();
    check('webgpu: a corrupted model file shows a readable error', /invalid-model/.test(shown) && /checksum|CRC/i.test(shown), shown);
    await page.evaluate(() => { document.getElementById('error').hidden = true; });
    await page.setInputFiles('#file', { name: 'truncated.ebm', mimeType: 'application/octet-stream', buffer: good.subarray(0, 100) });
    await page.waitForFunction(() => !document.getElementById('error').hidden, null, { timeout: 60_000 });
    const truncated = await page.locator('#error').textContent();
    check('webgpu: a truncated model file shows a readable error', /invalid-model/.test(truncated) && /truncated|ends|short/i.test(truncated), truncated);
    await multigridChecks('webgpu', page);
    report.webgpuMeg = await megChecks('webgpu', page, megNative, 2e-3);
    check('webgpu: no uncaught errors in the page', pageErrors.length === 0, pageErrors.join(' | ') || 'none');
  } finally {
    await gpuBrowser.close();
  }

  // ---- no WebGPU: auto falls back to the CPU ----
  const cpuBrowser = await chromium.launch({ executablePath, args: NO_WEBGPU_FLAGS });
  try {
    const { page, pageErrors } = await openDemo(cpuBrowser, base, '');
    const hasGpu = await page.evaluate(() => Boolean(navigator.gpu));
    const badge = await page.locator('#backend').getAttribute('data-state');
    const badgeText = await page.locator('#backend').textContent();
    check('no-webgpu: the page falls back to the CPU and says why', badge === 'cpu' && /fallback: WebGPU is not available/.test(badgeText), `${badgeText} (navigator.gpu ${hasGpu ? 'present without an adapter' : 'absent'})`);
    report.cpu = await commonChecks('cpu', page, native, 1e-4);
    const canvas = await page.evaluate(async () => {
      const r = await window.demo.state.model.sample({ count: 1, steps: 3, width: 48, height: 40 });
      return [r.count, r.channels, r.height, r.width, r.rgba.length];
    });
    check('cpu: a convolutional net samples a canvas larger than its training images', JSON.stringify(canvas) === JSON.stringify([1, 1, 40, 48, 40 * 48 * 4]), JSON.stringify(canvas));
    // The endless texture of the demo, on the bundled FRAME texture model.
    const texture = await page.evaluate(async () => {
      const { EndlessTexture } = await import('./texture.js');
      const listed = await (await fetch('models/models.json')).json();
      const model = await window.demo.state.runtime.loadModel(listed.find((m) => m.family === 'frame').url);
      const canvas = document.createElement('canvas');
      const { height, width } = model.info;
      const endless = new EndlessTexture(model, canvas, { height: 2 * height, width: 2 * width, strip: width, overlap: width / 2, chain: { steps: 4, seed: 3 } });
      await endless.start();
      const before = endless.values.slice();
      const widthBefore = endless.width;
      await endless.extend();
      let keptChanged = 0;
      for (let row = 0; row < 2 * height; row++) {
        for (let x = 0; x < widthBefore; x++) if (endless.values[row * endless.width + x] !== before[row * widthBefore + x]) keptChanged++;
      }
      let moved = 0;
      for (let row = 0; row < 2 * height; row++) {
        for (let x = widthBefore; x < endless.width; x++) if (endless.values[row * endless.width + x] !== 0) moved++;
      }
      return { anySize: model.info.anySize, training: [height, width], widthBefore, widthAfter: endless.width, canvas: [canvas.width, canvas.height], keptChanged, moved, strip: width * 2 * height };
    });
    check('cpu: the endless texture samples a canvas twice the training size and extends it by a strip, the shown part unchanged',
      texture.anySize && texture.widthBefore === 2 * texture.training[1] && texture.widthAfter === 3 * texture.training[1]
        && texture.canvas[0] === texture.widthAfter && texture.keptChanged === 0 && texture.moved === texture.strip, JSON.stringify(texture));
    const half = await errorOf(page, 'window.demo.state.model.sample({ width: 48 })');
    check('cpu: width without height is a typed error', half?.code === 'invalid-option', JSON.stringify(half));
    await multigridChecks('cpu', page);
    report.cpuMeg = await megChecks('cpu', page, megNative, 1e-4);
    await megDemoChecks('cpu', cpuBrowser, base);
    await accessibilityChecks('cpu', page);
    const forced = await page.evaluate(async () => {
      const { createRuntime } = await import('./pkg/ebm.js');
      try { await createRuntime({ device: 'webgpu' }); return null; } catch (error) { return { code: error.code, message: error.message }; }
    });
    check('no-webgpu: asking for WebGPU explicitly is a typed error', forced?.code === 'no-webgpu', JSON.stringify(forced));
    check('no-webgpu: no uncaught errors in the page', pageErrors.length === 0, pageErrors.join(' | ') || 'none');

    // The one-element embedding of the README.
    const embed = await cpuBrowser.newPage();
    await embed.goto(`${base}/embed.html`);
    await embed.evaluate(() => document.querySelector('ebm-sampler').addEventListener('generated', (e) => { window.embedded = e.detail.count; }));
    await embed.click('ebm-sampler button');
    await embed.waitForFunction(() => window.embedded, null, { timeout: 120_000 });
    const drawn = await embed.evaluate(() => {
      const canvas = document.querySelector('ebm-sampler').shadowRoot.querySelector('canvas');
      const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
      const levels = new Set();
      for (let i = 0; i < pixels.length; i += 4) levels.add(pixels[i]);
      return { width: canvas.width, height: canvas.height, levels: levels.size, status: document.querySelector('ebm-sampler').shadowRoot.querySelector('p').textContent };
    });
    check('embed: <ebm-sampler> draws a 4×4 grid of samples', drawn.width === 4 * 33 - 1 && drawn.height === 4 * 33 - 1 && drawn.levels > 50, JSON.stringify(drawn));
  } finally {
    await cpuBrowser.close();
  }

  server.close();
  const status = summary();
  if (args.report) await writeFile(args.report, JSON.stringify({ results, report: { webgpuMaxDiff: report.webgpu?.maxDiff, cpuMaxDiff: report.cpu?.maxDiff, webgpuMeg: report.webgpuMeg, cpuMeg: report.cpuMeg } }, null, 2));
  process.exit(status);
}

main().catch((error) => { console.error(error); process.exit(1); });
