// Turns wasm-bindgen's `--target web` glue into a module that exports one factory,
// `createGlue()`, each call of which returns a fresh copy of the glue's state (the instance's
// exports, its memory views, its finalizers).
//
// Why: the glue keeps that state in module globals, and a crashed wasm instance cannot be
// re-initialised through it. Importing a second copy of the module (`?instance=2`) worked in a
// plain page but defeats bundlers (a dynamic import of a computed URL is not followed) and
// leaks a module the browser never frees. A factory is one static import that bundlers see,
// and an old instance's finalizers keep pointing at the old instance, never at the new one.
//
//   node runtime-wasm/tools/glue-factory.mjs www/pkg/ebm_runtime.js
import { readFileSync, writeFileSync } from 'node:fs';

const path = process.argv[2];
if (!path) {
  console.error('usage: node glue-factory.mjs GLUE.js');
  process.exit(2);
}
const source = readFileSync(path, 'utf8');
if (source.includes('export function createGlue()')) {
  console.error(`glue-factory: ${path} is already a factory`);
  process.exit(0);
}

const names = [];
const body = [];
for (const line of source.split('\n')) {
  const declared = line.match(/^export (class|function|async function) ([A-Za-z_$][\w$]*)/);
  if (declared) {
    names.push(declared[2]);
    body.push(line.slice('export '.length));
  } else if (/^export \{ initSync, __wbg_init as default \};\s*$/.test(line)) {
    names.push('initSync', 'init: __wbg_init');
  } else if (/^(export|import)\b/.test(line)) {
    // A form this script does not know (a snippet import, another export list): stop rather
    // than emit a module that fails at run time.
    console.error(`glue-factory: ${path}: unexpected top-level statement: ${line}`);
    process.exit(1);
  } else {
    body.push(line);
  }
}
if (!names.includes('init: __wbg_init')) {
  console.error(`glue-factory: ${path} has no \`export { initSync, __wbg_init as default }\`; wasm-bindgen changed its output`);
  process.exit(1);
}

// Not indented: a line inside a multi-line template literal would change.
writeFileSync(path, `// wasm-bindgen's glue wrapped by runtime-wasm/tools/glue-factory.mjs: every createGlue() call
// returns an independent copy of its state, for a fresh wasm instance after a crash.
export function createGlue() {
${body.join('\n')}
  return { ${names.join(', ')} };
}
`);
console.log(`glue-factory: ${path}: createGlue() returns ${names.map((n) => n.split(':')[0]).join(', ')}`);
