// Types of `ebm-runtime/draw` (draw.js): results drawn on a canvas, in pages and workers.
import type { Images } from './index.js';

/** Draws a batch as a grid of `columns` (default: a square), `gap` pixels apart (default 1);
 *  resizes the canvas to fit and returns it. */
export function drawGrid<C extends HTMLCanvasElement | OffscreenCanvas>(canvas: C, images: Images, columns?: number, gap?: number): C;

/** Image `n` of a batch as an `ImageData` (a copy). */
export function imageData(images: Images, n: number): ImageData;
