// Runs in a page: the package's entry points used as a web developer would, on the CPU backend.
// The driver (tests/browser/package.mjs) loads it from a Vite build and from a plain page that
// imports the package from another origin, and checks what `exercise` returns.
const NATIVE = { count: 4, seed: 7, steps: 10, noiseFree: true };

const pause = (ms) => new Promise((done) => setTimeout(done, ms));

async function codeOf(promise) {
  try { await promise; return null; } catch (error) { return error.code ?? String(error); }
}

/** `ebm`, `worker`: the modules behind `ebm-runtime` and `ebm-runtime/worker`; the element
 *  module must already be imported. `model`: a model URL. */
export async function exercise({ ebm, worker, model }) {
  const out = {};

  const downloads = [];
  const runtime = await ebm.createRuntime({ device: 'cpu', onProgress: (p) => downloads.push(p) });
  const loaded = await runtime.loadModel(model);
  const result = await loaded.sample(NATIVE);
  const png = await result.toBlob();
  const bitmap = await result.toImageBitmap({ columns: 4 });
  const one = result.imageData(3);
  out.main = {
    backend: result.backend,
    values: Array.from(result.values),
    runtimeDownload: downloads.at(-1) ?? null,
    progressEvents: downloads.length,
    png: { type: png.type, signature: Array.from(new Uint8Array(await png.slice(0, 4).arrayBuffer())) },
    bitmap: [bitmap.width, bitmap.height],
    imageData: [one.width, one.height, one.data.length],
  };
  let steps = 0;
  const pending = loaded.sample({ count: 1, steps: 100000, onProgress: () => { steps += 1; } });
  await pause(300);
  runtime.dispose();
  out.main.pendingAfterDispose = await codeOf(pending);
  // The disposed chain must stop, not run on unseen: its progress stops.
  await pause(300);
  const stepsThen = steps;
  await pause(1000);
  out.main.chainAfterDispose = { stepsThen, stepsLater: steps };
  out.main.callAfterDispose = await codeOf(loaded.sample({ count: 1 }));

  const threaded = await worker.createWorkerRuntime({ device: 'cpu' });
  const workerModel = await threaded.loadModel(model);
  const workerResult = await workerModel.sample(NATIVE);
  out.worker = { backend: workerResult.backend, values: Array.from(workerResult.values), png: (await workerResult.toBlob()).type };
  const long = workerModel.sample({ count: 1, steps: 100000 });
  threaded.terminate();
  out.worker.pendingAfterTerminate = await codeOf(long);
  out.worker.callAfterTerminate = await codeOf(workerModel.sample({ count: 1 }));

  const element = document.createElement('ebm-sampler');
  element.setAttribute('model', model);
  element.setAttribute('count', '4');
  element.setAttribute('device', 'cpu');
  element.setAttribute('steps', '5');
  document.body.append(element);
  const generated = new Promise((resolve, reject) => {
    element.addEventListener('generated', (event) => resolve(event.detail), { once: true });
    element.addEventListener('error', (event) => reject(event.detail), { once: true });
  });
  let progress = 0;
  element.addEventListener('progress', () => { progress += 1; });
  await element.generate();
  const drawn = await generated;
  const canvas = element.shadowRoot.querySelector('canvas');
  const status = element.shadowRoot.querySelector('[role=status]');
  out.element = { count: drawn.count, canvas: [canvas.width, canvas.height], progress, status: status.textContent, live: status.getAttribute('aria-live') };
  return out;
}
