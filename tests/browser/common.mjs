// What the browser test drivers (run.mjs, package.mjs, firefox.mjs) share: their arguments,
// the check log and its summary, and reading the native trainer's output.

/** `--name value` pairs (a flag without a value is `true`). */
export function parseArgs(argv = process.argv.slice(2)) {
  return Object.fromEntries(argv.reduce((pairs, arg, i, all) => {
    if (arg.startsWith('--')) pairs.push([arg.slice(2), all[i + 1] && !all[i + 1].startsWith('--') ? all[i + 1] : true]);
    return pairs;
  }, []));
}

/** Every check so far, in order. */
export const results = [];

/** Records and prints one check with its measured detail. */
export function check(name, ok, detail) {
  results.push({ name, ok, detail });
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}${detail ? ` — ${detail}` : ''}`);
}

/** Prints the tally; the exit status the driver should end with. */
export function summary() {
  const failed = results.filter((r) => !r.ok);
  console.log(`\n${results.length - failed.length} passed, ${failed.length} failed`);
  return failed.length ? 1 : 0;
}

/** A float32 `.npy` file (the trainer's `samples.npy`): its shape and values. */
export function readNpy(bytes) {
  const headerLength = bytes.readUInt16LE(8);
  const header = bytes.subarray(10, 10 + headerLength).toString('latin1');
  const shape = header.match(/'shape': \(([^)]*)\)/)[1].split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  const data = bytes.subarray(10 + headerLength);
  const values = new Float32Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
  return { shape, values };
}

/** The largest absolute difference; Infinity when the lengths differ or `a` is missing. */
export function maxDiff(a, b) {
  if (!a || a.length !== b.length) return Infinity;
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}
