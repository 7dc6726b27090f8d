// A TypeScript consumer of the packed package, compiled with `tsc --noEmit --strict` by
// tests/browser/package.mjs: when the declarations drift from what the entries export, or an
// option changes type, this stops compiling. It is type-checked only, never run.
import { createRuntime, clearCache, EbmError, type EbmErrorCode, type SampleResult, type ChainProgress } from 'ebm-runtime';
// @ts-expect-error the main entry does not export the worker client
import { createWorkerRuntime as notHere } from 'ebm-runtime';
import { createWorkerRuntime, type WorkerRuntime } from 'ebm-runtime/worker';
import { drawGrid, imageData } from 'ebm-runtime/draw';
import 'ebm-runtime/element';
import type { EbmSampler } from 'ebm-runtime/element';

export async function consume(): Promise<number> {
  const runtime = await createRuntime({ device: 'cpu', cache: true, onProgress: (p) => console.log(p.stage, p.loaded, p.total ?? 0) });
  const model = await runtime.loadModel('model.ebm', { signal: new AbortController().signal, cache: false });
  const frames: ChainProgress[] = [];
  const result: SampleResult = await model.sample({ count: 4, seed: 7, steps: 10, noiseFree: true, onProgress: (e) => frames.push(e) });
  const png: Blob = await result.toBlob('image/png', { columns: 2 });
  const bitmap: ImageBitmap = await result.toImageBitmap();
  const first: ImageData = result.imageData(0);
  const offscreen: OffscreenCanvas = drawGrid(new OffscreenCanvas(1, 1), result);
  const onPage: HTMLCanvasElement = drawGrid(document.createElement('canvas'), result, 2, 0);
  const second: ImageData = imageData(result, 1);
  // @ts-expect-error count is a number
  await model.sample({ count: '4' });
  // @ts-expect-error there is no such device
  await createRuntime({ device: 'gpu' });
  await model.dispose();
  runtime.dispose();

  const threaded: WorkerRuntime = await createWorkerRuntime({ device: 'auto', workerUrl: new URL('https://cdn.example/worker.js') });
  const megModel = await threaded.loadModel(new Uint8Array(8));
  await megModel.sample({ malaSteps: 20, temperature: 1 });
  threaded.terminate();

  const element: EbmSampler = document.createElement('ebm-sampler');
  element.addEventListener('generated', (event) => console.log(event.detail.count, event.detail.millis));
  element.addEventListener('progress', (event) => console.log(event.detail.step, event.detail.total));
  element.addEventListener('error', (event) => { const code: EbmErrorCode = event.detail.code; console.log(code); });
  element.stop();
  await element.generate();

  try {
    await clearCache();
  } catch (error) {
    if (error instanceof EbmError) console.log(error.code satisfies EbmErrorCode);
  }
  return png.size + bitmap.width + first.width + offscreen.width + onPage.width + second.height + frames.length + (notHere ? 1 : 0);
}
