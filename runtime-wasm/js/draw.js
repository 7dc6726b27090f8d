// Drawing results: a batch of images as a grid on a canvas (pages only; the runtime itself
// never touches the DOM).

/**
 * Draws `images` (a result or a progress frame) on `canvas` as a grid of `columns`, one pixel of
 * mid-gray between images; the canvas is resized to fit.
 */
export function drawGrid(canvas, images, columns, gap = 1) {
  const { count, width, height, rgba } = images;
  const rows = Math.ceil(count / columns);
  canvas.width = columns * (width + gap) - gap;
  canvas.height = rows * (height + gap) - gap;
  const context = canvas.getContext('2d');
  context.fillStyle = '#777';
  context.fillRect(0, 0, canvas.width, canvas.height);
  const size = width * height * 4;
  for (let n = 0; n < count; n++) {
    const one = new ImageData(rgba.slice(n * size, (n + 1) * size), width, height);
    context.putImageData(one, (n % columns) * (width + gap), Math.floor(n / columns) * (height + gap));
  }
}
