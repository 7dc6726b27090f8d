// The endless texture: a canvas larger than the model's training image, then extended strip by
// strip as the reader scrolls right. Each new strip is an inpainting task on a window whose left
// part (the last columns already shown) is frozen, so the texture continues across the seam.
// When the model file carries its persistent chains from training (`info.storedChains`), the
// canvas continues one of those chains and each strip starts from a tile cut from another, so
// the Langevin chain blends a tile into its neighbours; otherwise everything starts from the
// model's own initialisation.

/** Columns `from..to` of a `[1, C, H, W]` value array. */
export function columns(values, { channels, height, width }, from, to) {
  const out = new Float32Array(channels * height * (to - from));
  for (let row = 0; row < channels * height; row++) {
    out.set(values.subarray(row * width + from, row * width + to), row * (to - from));
  }
  return out;
}

/** `a` (width `wa`) and `b` (width `wb`) side by side: `[1, C, H, wa + wb]`. */
export function joinColumns(a, wa, b, wb, channels, height) {
  const out = new Float32Array(channels * height * (wa + wb));
  for (let row = 0; row < channels * height; row++) {
    out.set(a.subarray(row * wa, (row + 1) * wa), row * (wa + wb));
    out.set(b.subarray(row * wb, (row + 1) * wb), row * (wa + wb) + wa);
  }
  return out;
}

/**
 * A `channels × height × width` tile cut from chain `index` of `chains` (`{shape, values}`),
 * starting at column `from`; rows and columns wrap around the chain's size.
 */
export function tile(chains, index, height, width, from) {
  const [count, channels, h, w] = chains.shape;
  const chain = chains.values.subarray((index % count) * channels * h * w, (index % count + 1) * channels * h * w);
  const out = new Float32Array(channels * height * width);
  for (let c = 0; c < channels; c++) {
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) out[(c * height + y) * width + x] = chain[(c * h + (y % h)) * w + ((from + x) % w)];
    }
  }
  return out;
}

/**
 * A growing texture on `canvas` from `model` (a texture model: `model.info.anySize`).
 * `height` and `width` start the canvas; `strip` columns are added per extension with
 * `overlap` known columns as context.
 */
export class EndlessTexture {
  constructor(model, canvas, { height, width, strip, overlap, chain = {} }) {
    Object.assign(this, { model, canvas, height, width: 0, strip, overlap, chain, initialWidth: width });
    this.values = null;
    this.rgba = null;
    this.channels = model.info.channels;
    this.extensions = 0;
  }

  /** Samples the first canvas. */
  async start(onProgress) {
    const chains = this.model.info.storedChains;
    const { channels, height } = this;
    const width = this.initialWidth;
    const seed = this.chain.seed ?? 1;
    const result = chains
      // Continue a stored chain: nothing frozen, started from the chain's state.
      ? await this.model.inpaint({ ...this.chain, image: tile(chains, seed, height, width, 0), mask: new Float32Array(channels * height * width).fill(1), count: 1, height, width, startFromImage: true, onProgress })
      : await this.model.sample({ ...this.chain, count: 1, height, width, onProgress });
    this.values = result.values;
    // Kept as floats so that the same column helpers cut and join the RGBA rows.
    this.rgba = Float32Array.from(result.rgba);
    this.width = result.width;
    this.draw();
    return result;
  }

  /** Adds `strip` columns on the right, continuing the last `overlap` columns. */
  async extend(onProgress) {
    const { channels, height, overlap, strip } = this;
    const known = columns(this.values, this, this.width - overlap, this.width);
    const chains = this.model.info.storedChains;
    const seed = (this.chain.seed ?? 1) + 1 + this.extensions;
    const start = chains ? tile(chains, seed, height, strip, (seed * 7919) % chains.shape[3]) : new Float32Array(channels * height * strip);
    const image = joinColumns(known, overlap, start, strip, channels, height);
    const mask = joinColumns(new Float32Array(channels * height * overlap), overlap, new Float32Array(channels * height * strip).fill(1), strip, channels, height);
    const result = await this.model.inpaint({ ...this.chain, image, mask, count: 1, height, width: overlap + strip, seed, startFromImage: Boolean(chains), onProgress });
    const fresh = columns(result.values, { channels, height, width: overlap + strip }, overlap, overlap + strip);
    this.values = joinColumns(this.values, this.width, fresh, strip, channels, height);
    const freshRgba = columns(Float32Array.from(result.rgba), { channels: 1, height, width: (overlap + strip) * 4 }, overlap * 4, (overlap + strip) * 4);
    this.rgba = joinColumns(this.rgba, this.width * 4, freshRgba, strip * 4, 1, height);
    this.width += strip;
    this.extensions += 1;
    this.draw();
    return result;
  }

  draw() {
    this.canvas.width = this.width;
    this.canvas.height = this.height;
    const pixels = Uint8ClampedArray.from(this.rgba);
    this.canvas.getContext('2d').putImageData(new ImageData(pixels, this.width, this.height), 0, 0);
  }
}
