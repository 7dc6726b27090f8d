// Drawing results: a batch of images as a grid on a canvas, and the result's own image helpers
// (`imageData`, `toImageBitmap`, `toBlob`). Works on an HTMLCanvasElement or an
// OffscreenCanvas, so in pages and in workers; the runtime itself never touches the DOM.

/**
 * Draws `images` (a result or a progress frame) on `canvas` as a grid of `columns` (default:
 * a square), `gap` pixels of mid-gray between images; the canvas is resized to fit.
 */
export function drawGrid(canvas, images, columns = Math.ceil(Math.sqrt(images.count)), gap = 1) {
  const { count, width, height } = images;
  const rows = Math.ceil(count / columns);
  canvas.width = columns * (width + gap) - gap;
  canvas.height = rows * (height + gap) - gap;
  const context = canvas.getContext('2d');
  context.fillStyle = '#777';
  context.fillRect(0, 0, canvas.width, canvas.height);
  for (let n = 0; n < count; n++) {
    context.putImageData(imageData(images, n), (n % columns) * (width + gap), Math.floor(n / columns) * (height + gap));
  }
  return canvas;
}

/** Image `n` of a batch as an `ImageData` (a copy). */
export function imageData(images, n) {
  const { count, width, height, rgba } = images;
  if (!Number.isInteger(n) || n < 0 || n >= count) throw new RangeError(`image ${n} is not one of the batch's ${count}`);
  const size = width * height * 4;
  return new ImageData(rgba.slice(n * size, (n + 1) * size), width, height);
}

function gridCanvas(images, { columns, gap } = {}) {
  const canvas = typeof OffscreenCanvas === 'function' ? new OffscreenCanvas(1, 1) : document.createElement('canvas');
  return drawGrid(canvas, images, columns, gap);
}

// Methods every result carries. Not enumerable: a worker's structured clone skips them, and
// the worker client adds them again on its side.
const HELPERS = {
  /** Image `n` as an `ImageData`. */
  imageData(n) { return imageData(this, n); },
  /** The batch as a grid (`{columns, gap}`) in an `ImageBitmap`. */
  toImageBitmap(layout) { return createImageBitmap(gridCanvas(this, layout)); },
  /** The batch as a grid (`{columns, gap}`) encoded as `type` (default PNG). */
  toBlob(type = 'image/png', layout) {
    const canvas = gridCanvas(this, layout);
    if (canvas.convertToBlob) return canvas.convertToBlob({ type });
    return new Promise((resolve, reject) => canvas.toBlob((blob) => (blob ? resolve(blob) : reject(new Error(`cannot encode ${type}`))), type));
  },
};

/** Gives a result its image helpers. */
export function withImageHelpers(result) {
  for (const [name, method] of Object.entries(HELPERS)) {
    Object.defineProperty(result, name, { value: method, enumerable: false, configurable: true, writable: true });
  }
  return result;
}
