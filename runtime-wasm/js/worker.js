// Web Worker entry: runs the runtime off the main thread for `createWorkerRuntime`.
import { createRuntime, EbmError } from './ebm.js';

let runtime = null;
const models = new Map();
const controllers = new Map();
let nextModel = 1;

function reply(id, message, transfer = []) {
  self.postMessage({ id, ...message }, transfer);
}

function fail(id, error) {
  const code = error instanceof EbmError ? error.code : 'crashed';
  reply(id, { ok: false, error: { code, message: error.message ?? String(error) } });
}

function buffersOf(images) {
  return images ? [images.rgba.buffer, images.values.buffer] : [];
}

self.onmessage = async ({ data }) => {
  const { id, op } = data;
  if (op === 'cancel') {
    controllers.get(data.target)?.abort();
    return;
  }
  try {
    if (op === 'create') {
      runtime = await createRuntime({ ...data.options, onProgress: (progress) => reply(id, { loadProgress: progress }) });
      reply(id, { ok: true, value: runtime.backend });
    } else if (op === 'load') {
      const controller = new AbortController();
      controllers.set(id, controller);
      const model = await runtime.loadModel(data.source, {
        signal: controller.signal,
        ...(data.cache === undefined ? {} : { cache: data.cache }),
        onProgress: (progress) => reply(id, { loadProgress: progress }),
      });
      const handle = nextModel++;
      models.set(handle, model);
      reply(id, { ok: true, value: { handle, info: model.info } });
    } else if (op === 'run') {
      const model = models.get(data.model);
      if (!model) throw new EbmError('invalid-option', 'this model was disposed');
      const controller = new AbortController();
      controllers.set(id, controller);
      const onProgress = data.progress
        ? (event) => reply(id, { progress: event }, buffersOf(event.images))
        : undefined;
      const result = await model.run(data.task, { ...data.options, onProgress, signal: controller.signal });
      reply(id, { ok: true, value: { ...result, backendInfo: runtime.backend } }, buffersOf(result));
    } else if (op === 'dispose') {
      models.get(data.model)?.dispose();
      models.delete(data.model);
      reply(id, { ok: true });
    } else if (op === 'panic') {
      await (data.later ? runtime.panicLaterForTesting() : runtime.panicForTesting());
      reply(id, { ok: true });
    } else if (op === 'destroyDevice') {
      runtime.destroyDeviceForTesting();
      reply(id, { ok: true });
    } else {
      throw new EbmError('invalid-option', `unknown operation ${op}`);
    }
  } catch (error) {
    fail(id, error);
  } finally {
    controllers.delete(id);
  }
};
