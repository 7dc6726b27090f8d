// A small static file server for the demo (any static server works; this one needs only Node).
//   node scripts/serve.mjs [--port 8000] [--root www]
import { createServer } from 'node:http';
import { readFile, stat } from 'node:fs/promises';
import { extname, join, normalize, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm', '.json': 'application/json', '.css': 'text/css', '.png': 'image/png', '.ts': 'text/plain' };

/** Serves `mounts` (`{'/prefix/': directory}`, longest prefix wins) on 127.0.0.1:`port` (0: any free port). */
export function serveStatic(mounts, port = 0) {
  const entries = Object.entries(mounts).map(([prefix, dir]) => [prefix, resolve(dir)]).sort((a, b) => b[0].length - a[0].length);
  const server = createServer(async (request, response) => {
    try {
      const path = decodeURIComponent(new URL(request.url, 'http://localhost').pathname);
      const [prefix, root] = entries.find(([p]) => path.startsWith(p)) ?? [];
      if (!root) throw new Error('no mount');
      let file = normalize(join(root, path.slice(prefix.length)));
      if (!file.startsWith(root)) throw new Error('outside the root');
      if ((await stat(file)).isDirectory()) file = join(file, 'index.html');
      const body = await readFile(file);
      // CORS: pages on other origins may import the package from here, as from a CDN.
      response.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream', 'content-length': body.length, 'cache-control': 'no-store', 'access-control-allow-origin': '*' });
      response.end(body);
    } catch {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
    }
  });
  return new Promise((done) => server.listen(port, '127.0.0.1', () => done(server)));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const arg = (name, fallback) => { const i = process.argv.indexOf(`--${name}`); return i > 0 ? process.argv[i + 1] : fallback; };
  const server = await serveStatic({ '/': arg('root', 'www') }, Number(arg('port', 8000)));
  console.log(`serving ${resolve(arg('root', 'www'))} at http://127.0.0.1:${server.address().port}/ (Ctrl-C stops)`);
}
