// Package tests: the browser runtime as a web developer adopts it. Packs www/pkg with `npm pack`,
// installs the tarball into a fresh app and then checks, in headless Chromium on the CPU backend:
//   - a Vite build of that app samples (main thread, worker, <ebm-sampler>) and matches the
//     native trainer;
//   - a plain page imports the package from another origin (as from a CDN), worker included;
//   - `tsc --noEmit --strict` compiles a TypeScript consumer against the packed declarations;
//   - loading: the Cache API on request, a typed error without WebAssembly SIMD;
//   - memory: 20 crashes and restarts, and 1000 sample calls, keep the page's memory flat.
// Prints every measured number; exits 1 on any failure.
//
//   node package.mjs --pkg ../../www/pkg --fixtures DIR     (DIR/native/samples.npy as for run.mjs)
import { execFileSync } from 'node:child_process';
import { cp, mkdtemp, readdir, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium } from 'playwright-core';
import { serveStatic } from '../../scripts/serve.mjs';
import { check, maxDiff, parseArgs, readNpy, summary } from './common.mjs';

const here = new URL('.', import.meta.url).pathname;
const args = parseArgs();
const pkg = resolve(args.pkg ?? join(here, '../../www/pkg'));
const fixtures = resolve(args.fixtures ?? '.');
const modelFile = resolve(args.model ?? join(here, '../../www/models/mnist-shortrun.ebm'));
const executablePath = process.env.CHROMIUM ?? '/usr/bin/chromium';
const FLAGS = ['--disable-blink-features=WebGPU', '--disable-features=WebGPU', '--no-sandbox', '--headless=new', '--js-flags=--expose-gc'];
const TOLERANCE = 1e-4;

function run(command, argv, cwd) {
  return execFileSync(command, argv, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

// What `exercise.js` returned, checked the same way for every way of loading the package.
function checkOutcome(label, outcome, native) {
  if (!outcome?.ok) {
    check(`${label}: the page samples`, false, outcome?.error ?? 'no outcome');
    return;
  }
  const { main, worker, element } = outcome.out;
  const mainDiff = maxDiff(main.values, native);
  check(`${label}: createRuntime samples seed 7 as the native trainer does`, main.backend === 'cpu' && mainDiff <= TOLERANCE, `max |browser − native| = ${mainDiff.toExponential(2)} over ${native.length} values`);
  const download = main.runtimeDownload;
  check(`${label}: the runtime's download reports progress up to its full size`,
    download?.stage === 'runtime' && download.loaded > 1e6 && (download.total === null || download.loaded === download.total) && main.progressEvents > 1,
    `${main.progressEvents} events, last ${JSON.stringify(download)}`);
  check(`${label}: results give a PNG blob, an ImageBitmap grid and per-image ImageData`,
    main.png.type === 'image/png' && JSON.stringify(main.png.signature) === '[137,80,78,71]'
      && JSON.stringify(main.bitmap) === JSON.stringify([4 * 33 - 1, 32]) && JSON.stringify(main.imageData) === JSON.stringify([32, 32, 4096]),
    JSON.stringify({ png: main.png, bitmap: main.bitmap, imageData: main.imageData }));
  check(`${label}: dispose() rejects the call in flight and later calls with 'disposed', and stops the chain`,
    main.pendingAfterDispose === 'disposed' && main.callAfterDispose === 'disposed'
      && main.chainAfterDispose.stepsThen > 0 && main.chainAfterDispose.stepsLater === main.chainAfterDispose.stepsThen,
    `${main.pendingAfterDispose}, ${main.callAfterDispose}; chain progress events ${JSON.stringify(main.chainAfterDispose)}`);
  const workerDiff = maxDiff(worker.values, native);
  check(`${label}: createWorkerRuntime samples in its worker as the native trainer does`, worker.backend === 'cpu' && workerDiff <= TOLERANCE && worker.png === 'image/png',
    `max |browser − native| = ${workerDiff.toExponential(2)}`);
  check(`${label}: terminate() rejects the call in flight and later calls with 'disposed'`,
    worker.pendingAfterTerminate === 'disposed' && worker.callAfterTerminate === 'disposed', `${worker.pendingAfterTerminate}, ${worker.callAfterTerminate}`);
  check(`${label}: <ebm-sampler> generates, draws, fires progress and announces its status`,
    element.count === 4 && JSON.stringify(element.canvas) === '[65,65]' && element.progress >= 2 && element.live === 'polite' && /4 images in/.test(element.status),
    JSON.stringify(element));
}

async function pageOutcome(browser, url) {
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (error) => errors.push(error.message));
  page.on('console', (message) => { if (message.type() === 'error') errors.push(message.text()); });
  await page.goto(url);
  await page.waitForFunction(() => window.outcome, null, { timeout: 240_000 });
  const outcome = await page.evaluate(() => window.outcome);
  await page.close();
  return { outcome, errors };
}

// The JavaScript heap with its ArrayBuffers, after a full GC (wasm memories are not in it).
async function heapOf(page, cdp) {
  await page.evaluate(async () => { for (let i = 0; i < 3; i++) { globalThis.gc?.(); await new Promise((r) => setTimeout(r, 50)); } });
  await cdp.send('HeapProfiler.collectGarbage');
  const usage = await cdp.send('Runtime.getHeapUsage');
  return usage.usedSize + (usage.backingStorageSize ?? 0);
}

// The wasm memories still reachable: every instance's memory is watched through a WeakRef, so
// one that nothing holds any more disappears after a GC.
function wasmMemory(page) {
  return page.evaluate(() => {
    const live = window.memories.map((ref) => ref.deref()).filter(Boolean);
    return { live: live.length, bytes: live.reduce((sum, memory) => sum + memory.buffer.byteLength, 0) };
  });
}

// Loading: the Cache API on request, and a typed error where WebAssembly SIMD is missing.
async function loadingChecks(browser, base) {
  const page = await browser.newPage();
  await page.goto(`${base}/blank.html`);
  const cached = await page.evaluate(async () => {
    const ebm = await import('./pkg/ebm.js');
    await ebm.clearCache();
    const runtime = await ebm.createRuntime({ device: 'cpu', cache: true });
    await runtime.loadModel('./model.ebm');
    const keys = (await (await caches.open('ebm-runtime')).keys()).map((request) => new URL(request.url).pathname);
    runtime.dispose();
    const cleared = await ebm.clearCache();
    return { keys, cleared, after: await caches.has('ebm-runtime') };
  });
  check('loading: cache: true keeps the runtime and the model in the Cache API, and clearCache() removes them',
    cached.keys.some((path) => path.endsWith('.wasm')) && cached.keys.includes('/model.ebm') && cached.cleared && !cached.after, JSON.stringify(cached));
  const badCache = await page.evaluate(async () => {
    const ebm = await import('./pkg/ebm.js');
    try { await ebm.createRuntime({ device: 'cpu', cache: 'yes' }); return null; } catch (error) { return { code: error.code, message: error.message }; }
  });
  check('loading: a cache option that is not true or false is a typed error', badCache?.code === 'invalid-option' && /cache/.test(badCache.message), JSON.stringify(badCache));
  const unsupported = await page.evaluate(async () => {
    WebAssembly.validate = () => false; // a browser without SIMD
    const ebm = await import('./pkg/ebm.js?no-simd');
    try { await ebm.createRuntime({ device: 'cpu' }); return null; } catch (error) { return { code: error.code, message: error.message }; }
  });
  check('loading: a browser without WebAssembly SIMD gets an unsupported-browser error', unsupported?.code === 'unsupported-browser' && /SIMD/.test(unsupported.message), JSON.stringify(unsupported));
  await page.close();
}

const MiB = (bytes) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

async function memoryChecks(browser, base) {
  const page = await browser.newPage();
  const cdp = await page.context().newCDPSession(page);
  await page.goto(`${base}/blank.html`);
  await page.evaluate(async () => {
    const ebm = await import('./pkg/ebm.js');
    window.runtime = await ebm.createRuntime({ device: 'cpu' });
    window.model = await window.runtime.loadModel('./model.ebm');
    await window.model.sample({ count: 2, steps: 2 });
    window.memories = [new WeakRef(window.runtime.instance.memory)];
  });
  const heapOne = await heapOf(page, cdp);
  const one = await wasmMemory(page);
  const crashes = await page.evaluate(async () => {
    const codes = [];
    let restarts = 0;
    const restart = window.runtime.restart.bind(window.runtime);
    window.runtime.restart = (...args) => { restarts += 1; return restart(...args); };
    for (let i = 0; i < 20; i++) {
      try { await window.runtime.panicForTesting(); } catch (error) { codes.push(error.code); }
      // Two calls at once after a crash: they share one restart.
      await Promise.all([window.model.sample({ count: 2, steps: 2 }), window.model.sample({ count: 2, steps: 2 })]);
      window.memories.push(new WeakRef(window.runtime.instance.memory));
    }
    return { codes, restarts };
  });
  check('memory: 20 crashes, each followed by two concurrent calls, restart once each',
    crashes.codes.length === 20 && crashes.codes.every((code) => code === 'crashed') && crashes.restarts === 20,
    `${crashes.codes.length} crashed errors, ${crashes.restarts} restarts`);
  const heapCrashed = await heapOf(page, cdp);
  const crashed = await wasmMemory(page);
  check('memory: after 20 crashes and restarts the page holds at most 1.5× one instance',
    crashed.bytes <= 1.5 * one.bytes && heapCrashed <= 1.5 * heapOne,
    `wasm: ${MiB(one.bytes)} with one instance, ${MiB(crashed.bytes)} in ${crashed.live} live instance(s) after 20 restarts; JS heap ${MiB(heapOne)} → ${MiB(heapCrashed)}`);
  await page.evaluate(async () => { for (let i = 0; i < 100; i++) await window.model.sample({ count: 1, steps: 1 }); });
  const heapWarm = await heapOf(page, cdp);
  const warm = await wasmMemory(page);
  await page.evaluate(async () => { for (let i = 0; i < 900; i++) await window.model.sample({ count: 1, steps: 1 }); });
  const heapLater = await heapOf(page, cdp);
  const later = await wasmMemory(page);
  check('memory: 1000 sample calls in a loop keep memory flat (within 1.2× of the 100th call)',
    later.bytes <= 1.2 * warm.bytes && heapLater <= 1.2 * heapWarm,
    `wasm ${MiB(warm.bytes)} → ${MiB(later.bytes)}, JS heap ${MiB(heapWarm)} → ${MiB(heapLater)}`);
  await page.close();
}

async function main() {
  const native = readNpy(await readFile(join(fixtures, 'native', 'samples.npy'))).values;
  const work = await mkdtemp(join(tmpdir(), 'ebm-package-'));
  const servers = [];
  try {
    // ---- the tarball, installed into a fresh app ----
    const tarball = join(work, run('npm', ['pack', '--silent', '--pack-destination', work], pkg).trim().split('\n').at(-1));
    const packed = run('tar', ['tzf', tarball]).trim().split('\n').map((name) => name.replace(/^package\//, ''));
    const manifest = JSON.parse(await readFile(join(pkg, 'package.json'), 'utf8'));
    const missing = manifest.files.filter((name) => !packed.includes(name));
    check('npm pack: the tarball holds every file the manifest lists', missing.length === 0, `${packed.length} files${missing.length ? `; missing ${missing.join(', ')}` : ''}`);
    const app = join(work, 'app');
    await mkdir(join(app, 'public'), { recursive: true });
    await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'vite-consumer', private: true, type: 'module' }));
    run('npm', ['install', '--no-audit', '--no-fund', '--no-package-lock', tarball], app);
    await cp(join(here, 'package/app'), app, { recursive: true });
    await cp(join(here, 'package/exercise.js'), join(app, 'exercise.js'));
    await cp(modelFile, join(app, 'public/model.ebm'));

    // ---- TypeScript consumer ----
    await cp(join(here, 'package/consumer.ts'), join(app, 'consumer.ts'));
    await cp(join(here, 'package/tsconfig.json'), join(app, 'tsconfig.json'));
    let tsc = '';
    try { run(join(here, 'node_modules/.bin/tsc'), ['-p', 'tsconfig.json'], app); } catch (error) { tsc = `${error.stdout}${error.stderr}`; }
    check('types: a strict TypeScript consumer of every entry point compiles against the packed declarations', tsc === '', tsc.trim() || 'tsc --noEmit --strict: no errors');

    // ---- Vite ----
    run(join(here, 'node_modules/.bin/vite'), ['build', '--logLevel', 'warn'], app);
    const assets = await readdir(join(app, 'dist/assets'));
    check('vite: the build emits the worker as its own bundle and the wasm once',
      assets.some((name) => /^worker-.*\.js$/.test(name)) && assets.filter((name) => name.endsWith('.wasm')).length === 1, assets.join(', '));

    const browser = await chromium.launch({ executablePath, args: FLAGS });
    try {
      const dist = await serveStatic({ '/': join(app, 'dist') });
      servers.push(dist);
      const vite = await pageOutcome(browser, `http://127.0.0.1:${dist.address().port}/`);
      checkOutcome('vite', vite.outcome, native);
      check('vite: no uncaught errors in the page', vite.errors.length === 0, vite.errors.join(' | ') || 'none');

      // ---- another origin: the installed package on one server, the page on another ----
      const cdn = await serveStatic({ '/ebm-runtime/': join(app, 'node_modules/ebm-runtime') });
      const site = await serveStatic({ '/': join(here, 'package'), '/model.ebm': modelFile, '/pkg/': join(app, 'node_modules/ebm-runtime') });
      servers.push(cdn, site);
      const siteBase = `http://127.0.0.1:${site.address().port}`;
      const cdnBase = `http://127.0.0.1:${cdn.address().port}/ebm-runtime`;
      const crossOrigin = await pageOutcome(browser, `${siteBase}/cdn.html?pkg=${encodeURIComponent(cdnBase)}`);
      checkOutcome('cross-origin', crossOrigin.outcome, native);
      check('cross-origin: no uncaught errors in the page', crossOrigin.errors.length === 0, crossOrigin.errors.join(' | ') || 'none');

      await loadingChecks(browser, siteBase);
      await memoryChecks(browser, siteBase);
    } finally {
      await browser.close();
    }
  } finally {
    for (const server of servers) server.close();
    await rm(work, { recursive: true, force: true });
  }
  process.exit(summary());
}

main().catch((error) => { console.error(error); process.exit(1); });
