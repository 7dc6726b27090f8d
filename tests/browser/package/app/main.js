// A Vite app that installed the packed package: bare imports, no configuration.
import * as ebm from 'ebm-runtime';
import * as worker from 'ebm-runtime/worker';
import 'ebm-runtime/element';
import { exercise } from './exercise.js';

exercise({ ebm, worker, model: new URL('model.ebm', location.href).href })
  .then((out) => { window.outcome = { ok: true, out }; })
  .catch((error) => { window.outcome = { ok: false, error: `${error.code ?? error.name}: ${error.message}` }; });
