//! Convolutions on the CPU as implicit matrix products over channels-last data.
//!
//! flex lowers a convolution to im2col tiles and a general matrix product, then transposes the
//! result back; on the energy nets' small images those copies cost about as much as the
//! multiply. Here each output pixel reads its receptive field straight from a zero-padded
//! channels-last copy of the input, one kernel row at a time (a contiguous run), and a register
//! tile of a few pixels × 16 output channels accumulates with multiply-adds. `pulp`
//! picks the instructions at run time (AVX2 + FMA on x86-64, NEON on ARM, SIMD128 in wasm)
//! through a safe interface, so nothing here is `unsafe`.
//!
//! Pixels at an image's edge skip the taps that would read padding (see [`Reach`]).
//!
//! The input gradient of a strided convolution splits the input pixels into `stride²` classes
//! by position modulo the stride; each class is an ordinary stride-1 product over the taps
//! that reach it, so no multiply is spent on the zeros a dilated formulation would add.

use std::cell::RefCell;

use pulp::{Arch, Simd, WithSimd};

/// Output channels one register tile accumulates.
const BLOCK: usize = 16;
/// Output pixels per parallel task where all read the same taps, and per pass of the tile loop.
const CHUNK: usize = 48;
/// Pixels moved together between layouts, so that each source line is reused while cached.
const RUN: usize = 16;

/// Geometry of a 2-D convolution with a square kernel, no dilation and no groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvShape {
    /// Images in the batch.
    pub batch: usize,
    /// Channels of the convolution's input.
    pub in_channels: usize,
    /// Channels of its output.
    pub out_channels: usize,
    /// Input height.
    pub height: usize,
    /// Input width.
    pub width: usize,
    /// Kernel side.
    pub kernel: usize,
    /// Stride, both axes.
    pub stride: usize,
    /// Zero padding, every side.
    pub padding: usize,
}

impl ConvShape {
    /// Output height and width.
    pub fn out_size(&self) -> [usize; 2] {
        let side = |size: usize| (size + 2 * self.padding - self.kernel) / self.stride + 1;
        [side(self.height), side(self.width)]
    }
}

/// How the values of an image batch lie in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `[batch][channel][row][column]`, burn's own.
    Nchw,
    /// `[batch][row][column][channel]`: what the kernels compute in, so a convolution that
    /// feeds another one hands its values over without moving them.
    Nhwc,
}

/// The values of an image batch `[batch, channels, height, width]` in some [`Layout`].
#[derive(Debug, Clone, Copy)]
pub struct Values<'a> {
    /// Every value, in `layout`'s order.
    pub data: &'a [f32],
    /// Their order.
    pub layout: Layout,
}

impl Layout {
    /// Steps between neighbours along batch, channel, row and column for `[channels, height,
    /// width]` images.
    fn strides(self, [channels, height, width]: [usize; 3]) -> [usize; 4] {
        match self {
            Layout::Nchw => [channels * height * width, height * width, width, 1],
            Layout::Nhwc => [height * width * channels, 1, width * channels, channels],
        }
    }
}

/// `conv2d` of `input` `[batch, in_channels, height, width]` with `weight`
/// `[out_channels, in_channels, kernel, kernel]` and an optional `bias` `[out_channels]`,
/// followed by a LeakyReLU of slope `leaky` (0: ReLU) where given.
/// Returns `[batch, out_channels, out_h, out_w]` in the `output` layout.
pub fn conv2d(shape: &ConvShape, input: Values<'_>, weight: &[f32], bias: Option<&[f32]>, leaky: Option<f32>, output: Layout) -> Vec<f32> {
    let &ConvShape { batch, in_channels, out_channels, height, width, kernel, padding, .. } = shape;
    let [out_h, out_w] = shape.out_size();
    let padded = ChannelsLast::new(input, None, batch, [in_channels; 2], [height, width], [padding, padding], [padding, padding]);
    let taps = all_taps(kernel);
    let data = [padding..padding + height, padding..padding + width];
    let reach = Reach::new(&padded, receptive_field_corners(shape), &taps, in_channels, data);
    let packed = pack(&taps, in_channels, out_channels, |(kh, kw), c, o| weight[((o * in_channels + c) * kernel + kh) * kernel + kw]);
    let row = padded_channels(out_channels);
    let mut start = vec![0.0; row];
    if let Some(bias) = bias {
        start[..out_channels].copy_from_slice(bias);
    }
    let product = Product { input: &padded.data, packed: &packed, start: &start, leaky };
    let pixels = product.run(&reach);
    recycle(padded.data);
    if output == Layout::Nhwc && row == out_channels {
        // The product's rows are the channels-last output already.
        return pixels;
    }
    let plane = out_h * out_w;
    let mut out = vec![0.0; batch * out_channels * plane];
    for_each_part(&mut out, out_channels * plane, |n, image| {
        let pixels = &pixels[n * plane * row..][..plane * row];
        store_pixels(image, output, [out_channels, plane], [0, 1, plane], |p| &pixels[p * row..][..out_channels]);
    });
    recycle(pixels);
    out
}

/// Gradient of `conv2d`'s input: `grad` `[batch, out_channels, out_h, out_w]` through the
/// same `weight`, returned as `[batch, in_channels, height, width]`. Input pixels that no
/// output reads (rows a stride skipped) get zero. With `leaky` = (the LeakyReLU's outputs,
/// its slope), `grad` is the cotangent of those outputs and goes through the activation's
/// derivative first. The result is in the `output` layout.
pub fn conv2d_input_grad(shape: &ConvShape, grad: Values<'_>, weight: &[f32], leaky: Option<(Values<'_>, f32)>, output: Layout) -> Vec<f32> {
    if shape.in_channels < BLOCK {
        return narrow_input_grad(shape, grad, weight, leaky, output);
    }
    let &ConvShape { batch, in_channels, out_channels, height, width, kernel, stride, padding } = shape;
    let [out_h, out_w] = shape.out_size();
    // Input row `i` of class `i % stride` gathers output rows `i / stride + shift` over the
    // taps `k` with `(i % stride + padding - k) % stride == 0`, `shift = (i % stride + padding - k) / stride`.
    let axis_taps = |residue: usize| -> Vec<(usize, isize)> {
        (0..kernel)
            .filter(|&k| (residue + padding).abs_diff(k) % stride == 0)
            .map(|k| (k, (residue as isize + padding as isize - k as isize).div_euclid(stride as isize)))
            // Ascending shifts: a class's taps along a row then read adjacent pixels (one run).
            .rev()
            .collect()
    };
    let classes: Vec<Vec<(usize, isize)>> = (0..stride).map(axis_taps).collect();
    let count = |residue: usize, size: usize| size.saturating_sub(residue).div_ceil(stride);
    // Zero margins so that every shift of every class lands inside the padded gradient.
    let margin = |size: usize, out: usize| -> [usize; 2] {
        let mut lo = 0isize;
        let mut hi = 0isize;
        for (residue, taps) in classes.iter().enumerate() {
            for &(_, shift) in taps {
                lo = lo.max(-shift);
                hi = hi.max(count(residue, size) as isize - 1 + shift - (out as isize - 1));
            }
        }
        [lo as usize, hi as usize]
    };
    let [top, bottom] = margin(height, out_h);
    let [left, right] = margin(width, out_w);
    let padded = ChannelsLast::new(grad, leaky, batch, [out_channels; 2], [out_h, out_w], [top, left], [bottom, right]);
    let row = padded_channels(in_channels);
    let plane = height * width;
    let mut out = vec![0.0; batch * in_channels * plane];
    for (rh, rows) in classes.iter().enumerate() {
        for (rw, cols) in classes.iter().enumerate() {
            let [count_h, count_w] = [count(rh, height), count(rw, width)];
            if rows.is_empty() || cols.is_empty() || count_h == 0 || count_w == 0 {
                continue;
            }
            let taps: Vec<(usize, usize)> = rows.iter().flat_map(|&(kh, _)| cols.iter().map(move |&(kw, _)| (kh, kw))).collect();
            let tap_corners: Vec<(usize, usize)> = rows
                .iter()
                .flat_map(|&(_, sh)| cols.iter().map(move |&(_, sw)| ((sh + top as isize) as usize, (sw + left as isize) as usize)))
                .collect();
            let packed = pack(&taps, out_channels, in_channels, |(kh, kw), o, c| weight[((o * in_channels + c) * kernel + kh) * kernel + kw]);
            let start = vec![0.0; row];
            let corners = (0..batch).flat_map(|n| (0..count_h).flat_map(move |a| (0..count_w).map(move |b| [n, a, b])));
            let reach = Reach::new(&padded, corners, &tap_corners, out_channels, [top..top + out_h, left..left + out_w]);
            let product = Product { input: &padded.data, packed: &packed, start: &start, leaky: None };
            let pixels = product.run(&reach);
            for_each_part(&mut out, in_channels * plane, |n, image| {
                for a in 0..count_h {
                    let line = (rh + a * stride) * width + rw;
                    let from = |b: usize| &pixels[((n * count_h + a) * count_w + b) * row..][..in_channels];
                    store_pixels(image, output, [in_channels, plane], [line, stride, count_w], from);
                }
            });
            recycle(pixels);
        }
    }
    recycle(padded.data);
    out
}

/// Writes the `channels` values `pixel(i)` of `count` pixels into `image` (one image of
/// `channels` × `plane` values in `layout`) at pixel positions `first + i · step`. NCHW writes go
/// in runs of [`RUN`] pixels, so that each source row is reused while cached.
fn store_pixels<'a>(image: &mut [f32], layout: Layout, [channels, plane]: [usize; 2], [first, step, count]: [usize; 3], pixel: impl Fn(usize) -> &'a [f32]) {
    match layout {
        Layout::Nhwc => (0..count).for_each(|i| image[(first + i * step) * channels..][..channels].copy_from_slice(pixel(i))),
        Layout::Nchw => {
            for start in (0..count).step_by(RUN) {
                let run = start..count.min(start + RUN);
                for (c, channel) in image.chunks_exact_mut(plane).enumerate() {
                    for i in run.clone() {
                        channel[first + i * step] = pixel(i)[c];
                    }
                }
            }
        }
    }
}

/// [`conv2d_input_grad`] for fewer input channels than a register tile holds (an RGB input
/// layer): each output pixel's products with the weights of every (input channel, tap) pair
/// fill whole tiles, and each product is then added into the input pixel its tap reads.
fn narrow_input_grad(shape: &ConvShape, grad: Values<'_>, weight: &[f32], leaky: Option<(Values<'_>, f32)>, output: Layout) -> Vec<f32> {
    let &ConvShape { batch, in_channels, out_channels, height, width, kernel, stride, padding } = shape;
    let [out_h, out_w] = shape.out_size();
    let cotangent = ChannelsLast::new(grad, leaky, batch, [out_channels; 2], [out_h, out_w], [0, 0], [0, 0]);
    // Columns `(input channel, kernel row, kernel column)`: burn's weight order after the output channel.
    let columns = in_channels * kernel * kernel;
    let packed = pack(&[(0, 0)], out_channels, columns, |_, o, column| weight[o * columns + column]);
    let start = vec![0.0; padded_channels(columns)];
    let row = start.len();
    let product = Product { input: &cotangent.data, packed: &packed, start: &start, leaky: None };
    let all = [0..out_h, 0..out_w];
    let image_len = in_channels * height * width;
    let [_, channel_step, row_step, column_step] = output.strides([in_channels, height, width]);
    // The taps of output coordinate `o` that land inside an image side of `size`.
    let inside = |o: usize, size: usize| padding.saturating_sub(o * stride)..(size + padding).saturating_sub(o * stride).min(kernel);
    let mut out = vec![0.0; batch * image_len];
    // One image per task, its product then its scatter: the products in flight hold a few
    // images' rows, however few output channels there are, and the scatter runs on every core.
    for_each_part(&mut out, image_len, |n, image| {
        let pixels = (0..out_h).flat_map(|y| (0..out_w).map(move |x| [n, y, x]));
        let products = product.run(&Reach::new(&cotangent, pixels, &[(0, 0)], out_channels, all.clone()));
        let mut rows_of_pixels = products.chunks_exact(row);
        for oh in 0..out_h {
            for ow in 0..out_w {
                let values = rows_of_pixels.next().unwrap_or_default();
                let (rows, cols) = (inside(oh, height), inside(ow, width));
                let first_column = (ow * stride + cols.start - padding) * column_step;
                for c in 0..in_channels {
                    for kh in rows.clone() {
                        let taps = &values[(c * kernel + kh) * kernel..][cols.clone()];
                        let line = c * channel_step + (oh * stride + kh - padding) * row_step + first_column;
                        let targets = image[line..].iter_mut().step_by(column_step);
                        targets.zip(taps).for_each(|(target, tap)| *target += tap);
                    }
                }
            }
        }
        recycle(products);
    });
    recycle(cotangent.data);
    out
}

/// Gradients of `conv2d`'s weight `[out_channels, in_channels, kernel, kernel]` and bias
/// `[out_channels]` for `grad` `[batch, out_channels, out_h, out_w]` on its output, given its
/// `input` `[batch, in_channels, height, width]`; `leaky` as in [`conv2d_input_grad`].
///
/// Each tap's weight gradient is a product over output pixels: tiles of input channels ×
/// 16 output channels accumulate `input · grad` along the pixels. The pixels are split between
/// threads, each with its own accumulators, summed at the end.
pub fn conv2d_parameter_grads(shape: &ConvShape, input: Values<'_>, grad: Values<'_>, leaky: Option<(Values<'_>, f32)>) -> (Vec<f32>, Vec<f32>) {
    let &ConvShape { batch, in_channels, out_channels, height, width, kernel, padding, .. } = shape;
    let [out_h, out_w] = shape.out_size();
    let padded = ChannelsLast::new(input, None, batch, [in_channels; 2], [height, width], [padding, padding], [padding, padding]);
    let row = padded_channels(out_channels);
    let cotangent = Cotangent { grad, derivative: leaky, channels: out_channels, plane: out_h * out_w };
    let bases: Vec<usize> = receptive_field_corners(shape).map(|[n, y, x]| padded.offset(n, y, x)).collect();
    let taps = all_taps(kernel);
    let runs = tap_runs(&padded, &taps, in_channels, [0..kernel, 0..kernel]);
    // Per part: weights as `[block][tap][input channel][BLOCK]` (the layout of `pack`), then the bias.
    let weights_len = row * taps.len() * in_channels;
    let part_len = weights_len + row;
    let parts = worker_count().min(bases.len().div_ceil(WEIGHT_CHUNK)).max(1);
    let per_part = bases.len().div_ceil(parts);
    let mut partials = vec![0.0; parts * part_len];
    for_each_part(&mut partials, part_len, |i, sums| {
        let pixels = (i * per_part).min(bases.len())..((i + 1) * per_part).min(bases.len());
        let (sums, bias) = sums.split_at_mut(weights_len);
        let task = Dispatch(WeightTiles { input: &padded.data, cotangent: &cotangent, bases: &bases, pixels, runs: &runs, sums, bias });
        Arch::new().dispatch(task);
    });
    recycle(padded.data);
    // The parts' sums added and reordered to burn's `[out][in][tap]`, a block of output
    // channels per task, reading each part's block in order (its 16 output rows, ≤ 256 KiB,
    // stay cached for the scattered writes): one thread gathering in burn's order took 14 ms
    // of the 256 → 512 layer's ~60 at batch 64, this 7.
    let parts: Vec<&[f32]> = partials.chunks_exact(part_len).collect();
    let per_output = in_channels * taps.len();
    let mut weight = vec![0.0; out_channels * per_output];
    for_each_part(&mut weight, BLOCK * per_output, |block, rows| {
        let outputs = rows.len() / per_output;
        for tap in 0..taps.len() {
            for c in 0..in_channels {
                let at = ((block * taps.len() + tap) * in_channels + c) * BLOCK;
                let mut line = [0.0; BLOCK];
                for part in &parts {
                    line.iter_mut().zip(&part[at..][..BLOCK]).for_each(|(sum, value)| *sum += value);
                }
                for (j, &value) in line.iter().enumerate().take(outputs) {
                    rows[j * per_output + c * taps.len() + tap] = value;
                }
            }
        }
    });
    let bias = (0..out_channels).map(|o| parts.iter().map(|part| part[weights_len + o]).sum()).collect();
    (weight, bias)
}

/// Output pixels per accumulation pass: each pass loads and stores every sum of its part
/// once, so the longer the pass, the less that traffic weighs.
const WEIGHT_CHUNK: usize = 256;

/// Input values per packed panel: a pass's panel (`WEIGHT_CHUNK` pixels of them, 256 KiB)
/// stays in the second-level cache while every block of output channels reads it.
const PANEL_VALUES: usize = 256;

/// Threads that share the work.
fn worker_count() -> usize {
    #[cfg(feature = "parallel")]
    return rayon::current_num_threads();
    #[cfg(not(feature = "parallel"))]
    1
}

/// Taps `(row, column)` of a `kernel`-sided kernel, row-major.
fn all_taps(kernel: usize) -> Vec<(usize, usize)> {
    (0..kernel).flat_map(|kh| (0..kernel).map(move |kw| (kh, kw))).collect()
}

/// `[image, row, column]` in the padded input of the first tap of each output pixel, in
/// `[batch][out_h][out_w]` order.
fn receptive_field_corners(shape: &ConvShape) -> impl Iterator<Item = [usize; 3]> {
    let [out_h, out_w] = shape.out_size();
    let stride = shape.stride;
    (0..shape.batch).flat_map(move |n| (0..out_h).flat_map(move |oh| (0..out_w).map(move |ow| [n, oh * stride, ow * stride])))
}

/// One part of [`conv2d_parameter_grads`]: `sums[block][i][j] += Σ_m input[bases[m] + o(i)] ·
/// cotangent[m][block·BLOCK + j]` over the pixels `m` of `pixels`, where `o(i)` walks the runs
/// (a kernel row's taps × input channels are one run of adjacent values).
///
/// Per pass, the input values of each panel are first copied pixel-major per tile, so that
/// the tile loops read them in order from the cache rather than one line per pixel from
/// memory, once for every block of output channels.
struct WeightTiles<'a> {
    input: &'a [f32],
    cotangent: &'a Cotangent<'a>,
    bases: &'a [usize],
    pixels: std::ops::Range<usize>,
    runs: &'a [Run],
    sums: &'a mut [f32],
    /// The bias gradient's sums, a whole number of blocks.
    bias: &'a mut [f32],
}

/// The cotangent of a convolution's outputs `[batch, channels, plane]` as the weight-gradient
/// passes read it: in place, in either layout, through the activation's derivative where one
/// is given (its outputs and slope).
struct Cotangent<'a> {
    grad: Values<'a>,
    derivative: Option<(Values<'a>, f32)>,
    channels: usize,
    plane: usize,
}

impl Cotangent<'_> {
    /// Channels `block·BLOCK..` of pixels `pixels` (`[batch][plane]` order), a line of `BLOCK`
    /// values per pixel in `lines`, zeros past the last channel.
    fn block_lines(&self, block: usize, pixels: std::ops::Range<usize>, lines: &mut [f32]) {
        let first = block * BLOCK;
        let count = BLOCK.min(self.channels - first);
        // (`[channels, 1, plane]`: a pixel's step is the column step of either layout.)
        let at = |values: &Values<'_>, m: usize| {
            let [per_image, channel_step, _, pixel_step] = values.layout.strides([self.channels, 1, self.plane]);
            (m / self.plane * per_image + first * channel_step + m % self.plane * pixel_step, channel_step)
        };
        for (m, line) in pixels.zip(lines.chunks_exact_mut(BLOCK)) {
            let (line, tail) = line.split_at_mut(count);
            tail.fill(0.0);
            let (g, g_step) = at(&self.grad, m);
            let derivative = self.derivative.map(|(outputs, slope)| {
                let (a, a_step) = at(&outputs, m);
                ((outputs.data, a, a_step), slope)
            });
            copy_pixel(line, (self.grad.data, g, g_step), derivative);
        }
    }
}

/// One pixel's values in a buffer: `(values, first, step between channels)`.
type Strided<'a> = (&'a [f32], usize, usize);

/// `pixel[c] = source[at + c · step]` for each of its values, carried through the LeakyReLU
/// whose outputs `(values, at, step)` and slope `derivative` gives: one pixel of
/// [`ChannelsLast::new`] or of [`Cotangent::block_lines`], adjacent values as slices.
#[inline(always)]
fn copy_pixel(pixel: &mut [f32], (source, at, step): Strided<'_>, derivative: Option<(Strided<'_>, f32)>) {
    let count = pixel.len();
    match derivative {
        None if step == 1 => pixel.copy_from_slice(&source[at..][..count]),
        None => pixel.iter_mut().enumerate().for_each(|(c, value)| *value = source[at + c * step]),
        Some(((outputs, out_at, 1), slope)) if step == 1 => {
            let pairs = source[at..][..count].iter().zip(&outputs[out_at..][..count]);
            pixel.iter_mut().zip(pairs).for_each(|(value, (&g, &a))| *value = before_activation(g, a, slope));
        }
        Some(((outputs, out_at, out_step), slope)) => {
            for (c, value) in pixel.iter_mut().enumerate() {
                *value = before_activation(source[at + c * step], outputs[out_at + c * out_step], slope);
            }
        }
    }
}

/// `values` input values, `widest` at a time, what is left in tiles as wide as fit (one-value
/// tiles load more than they multiply): `(first value, width)`. Tiles may straddle runs (the
/// panels gather their values), so an RGB layer's 27 values take four six-value tiles.
fn value_tiles(values: usize, widest: usize) -> Vec<(usize, usize)> {
    let mut tiles: Vec<(usize, usize)> = (0..values / widest).map(|t| (t * widest, widest)).collect();
    let mut i = values / widest * widest;
    for width in [4, 2] {
        if i + width <= values && widest > width {
            tiles.push((i, width));
            i += width;
        }
    }
    tiles.extend((i..values).map(|i| (i, 1)));
    tiles
}

impl TileLoop for WeightTiles<'_> {
    #[inline(always)]
    fn run<S: Simd, const C: usize, const V: usize>(self, simd: S) {
        let Self { input, cotangent, bases, pixels, runs, sums, bias } = self;
        let row = bias.len();
        let per_block = runs.iter().map(|run| run.length).sum::<usize>() * BLOCK;
        // Offset from a pixel's corner of each input value, in the order of the sums.
        let offsets: Vec<usize> = runs.iter().flat_map(|run| run.input..run.input + run.length).collect();
        let tiles = value_tiles(offsets.len(), C);
        // Consecutive tiles of at most `PANEL_VALUES` values each.
        let mut panels: Vec<&[(usize, usize)]> = Vec::new();
        let mut rest = tiles.as_slice();
        while !rest.is_empty() {
            let mut width = 0;
            let count = rest.iter().take_while(|&&(_, tile_width)| (width += tile_width, width <= PANEL_VALUES).1).count().max(1);
            let (panel, tail) = rest.split_at(count);
            panels.push(panel);
            rest = tail;
        }
        let mut panel = Vec::with_capacity(PANEL_VALUES.max(C) * WEIGHT_CHUNK);
        let mut blocked = Vec::with_capacity(row * WEIGHT_CHUNK);
        for first in pixels.clone().step_by(WEIGHT_CHUNK) {
            let chunk = first..pixels.end.min(first + WEIGHT_CHUNK);
            let corners = &bases[chunk.clone()];
            // The pass's cotangents block by block (lines of one block adjacent, the order the
            // tiles read), and their sums for the bias.
            blocked.resize(row * corners.len(), 0.0);
            for (block, lines) in blocked.chunks_exact_mut(corners.len() * BLOCK).enumerate() {
                cotangent.block_lines(block, chunk.clone(), lines);
                let block_bias = &mut bias[block * BLOCK..][..BLOCK];
                lines.chunks_exact(BLOCK).for_each(|line| block_bias.iter_mut().zip(line).for_each(|(sum, value)| *sum += value));
            }
            for &panel_tiles in &panels {
                panel.resize(panel_tiles.iter().map(|&(_, width)| width).sum::<usize>() * corners.len(), 0.0);
                let mut rest = panel.as_mut_slice();
                for &(value, width) in panel_tiles {
                    let (target, later) = rest.split_at_mut(width * corners.len());
                    rest = later;
                    let tile_offsets = &offsets[value..][..width];
                    match width {
                        w if w == C => gather::<C>(input, corners, tile_offsets, target),
                        4 => gather::<4>(input, corners, tile_offsets, target),
                        2 => gather::<2>(input, corners, tile_offsets, target),
                        _ => gather::<1>(input, corners, tile_offsets, target),
                    }
                }
                for block in 0..row / BLOCK {
                    let block_sums = &mut sums[block * per_block..][..per_block];
                    let lines = &blocked[block * corners.len() * BLOCK..][..corners.len() * BLOCK];
                    let mut values = panel.as_slice();
                    for &(value, width) in panel_tiles {
                        let (tile_values, rest) = values.split_at(width * corners.len());
                        values = rest;
                        let tile_sums = &mut block_sums[value * BLOCK..][..width * BLOCK];
                        match width {
                            w if w == C => weight_tile::<S, C, V>(simd, tile_values, lines, tile_sums),
                            4 => weight_tile::<S, 4, V>(simd, tile_values, lines, tile_sums),
                            2 => weight_tile::<S, 2, V>(simd, tile_values, lines, tile_sums),
                            _ => weight_tile::<S, 1, V>(simd, tile_values, lines, tile_sums),
                        }
                    }
                }
            }
        }
    }
}

/// `target[m][i] = input[corners[m] + offsets[i]]` for the `W` offsets of a tile: fixed-size
/// copies, one slice where the values are adjacent (most tiles).
#[inline(always)]
fn gather<const W: usize>(input: &[f32], corners: &[usize], offsets: &[usize], target: &mut [f32]) {
    let offsets: [usize; W] = core::array::from_fn(|i| offsets[i]);
    let slots = target.chunks_exact_mut(W).zip(corners);
    if offsets[W - 1] - offsets[0] == W - 1 {
        slots.for_each(|(slot, &corner)| slot.copy_from_slice(&input[corner + offsets[0]..][..W]));
    } else {
        slots.for_each(|(slot, &corner)| slot.iter_mut().zip(offsets).for_each(|(value, offset)| *value = input[corner + offset]));
    }
}

/// `sums[c][j] += Σ_m values[m][c] · lines[m][j]` for `C` input values per pixel.
#[inline(always)]
fn weight_tile<S: Simd, const C: usize, const V: usize>(simd: S, values: &[f32], lines: &[f32], sums: &mut [f32]) {
    let vectors = S::as_mut_simd_f32s(sums).0;
    let mut acc: [[S::f32s; V]; C] = core::array::from_fn(|c| core::array::from_fn(|v| vectors[c * V + v]));
    for (values, line) in values.chunks_exact(C).zip(lines.chunks_exact(BLOCK)) {
        let line = S::as_simd_f32s(line).0;
        for c in 0..C {
            let x = simd.splat_f32s(values[c]);
            for v in 0..V {
                acc[c][v] = simd.mul_add_e_f32s(x, line[v], acc[c][v]);
            }
        }
    }
    for (c, acc) in acc.iter().enumerate() {
        vectors[c * V..][..V].copy_from_slice(acc);
    }
}

/// Output channels rounded up to whole register tiles.
fn padded_channels(channels: usize) -> usize {
    channels.div_ceil(BLOCK) * BLOCK
}

/// Weights as `[channel block][tap][input channel][BLOCK]`, zero past the last output channel.
fn pack(taps: &[(usize, usize)], inputs: usize, outputs: usize, weight: impl Fn((usize, usize), usize, usize) -> f32) -> Vec<f32> {
    let mut packed = vec![0.0; outputs.div_ceil(BLOCK) * taps.len() * inputs * BLOCK];
    for block in 0..outputs.div_ceil(BLOCK) {
        let channels = outputs.min((block + 1) * BLOCK) - block * BLOCK;
        // Input channel outside the taps: the weights of one (output, input) pair are adjacent
        // in burn's layout, so each cache line read is used up before the next.
        for c in 0..inputs {
            for (t, &tap) in taps.iter().enumerate() {
                let slot = &mut packed[((block * taps.len() + t) * inputs + c) * BLOCK..][..channels];
                slot.iter_mut().enumerate().for_each(|(j, value)| *value = weight(tap, c, block * BLOCK + j));
            }
        }
    }
    packed
}

/// A zero-padded channels-last copy `[batch][rows][cols][channels]` of an image batch, times
/// a LeakyReLU's derivative where one is given (see [`conv2d_input_grad`]). Pixels may hold
/// more values than the tensor has channels (zeros after them).
struct ChannelsLast {
    data: Vec<f32>,
    rows: usize,
    cols: usize,
    channels: usize,
}

impl ChannelsLast {
    fn new(
        source: Values<'_>,
        leaky: Option<(Values<'_>, f32)>,
        batch: usize,
        [source_channels, channels]: [usize; 2],
        [height, width]: [usize; 2],
        [top, left]: [usize; 2],
        [bottom, right]: [usize; 2],
    ) -> Self {
        let rows = top + height + bottom;
        let cols = left + width + right;
        let mut data = zeroed(batch * rows * cols * channels);
        let dims = [source_channels, height, width];
        let [per_image, channel_step, row_step, column_step] = source.layout.strides(dims);
        let derivative = leaky.map(|(outputs, slope)| (outputs.data, outputs.layout.strides(dims), slope));
        let image_len = source_channels * height * width;
        // Rows are written in order; a channels-last source is read in order too, an NCHW one
        // walks `channels` source lines at once.
        for_each_part(&mut data, rows * cols * channels, |n, image| {
            let source = &source.data[n * per_image..][..image_len];
            let derivative = derivative.map(|(outputs, strides, slope)| (&outputs[n * strides[0]..][..image_len], strides, slope));
            for (y, line) in image[top * cols * channels..].chunks_exact_mut(cols * channels).take(height).enumerate() {
                for (x, pixel) in line[left * channels..].chunks_exact_mut(channels).take(width).enumerate() {
                    let derivative = derivative.map(|(outputs, [_, out_channel_step, out_row_step, out_column_step], slope)| {
                        ((outputs, y * out_row_step + x * out_column_step, out_channel_step), slope)
                    });
                    copy_pixel(&mut pixel[..source_channels], (source, y * row_step + x * column_step, channel_step), derivative);
                }
            }
        });
        Self { data, rows, cols, channels }
    }

    /// Offset of pixel (`y`, `x`) of image `n`, in padded coordinates.
    fn offset(&self, n: usize, y: usize, x: usize) -> usize {
        ((n * self.rows + y) * self.cols + x) * self.channels
    }
}

/// Adjacent input values that a product reads from a pixel's corner: `length` of them from
/// offset `input`, whose weights are the packed weights' values `weight..weight + length`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    input: usize,
    length: usize,
    weight: usize,
}

/// The runs of the taps at `(row, column)` offsets (in `padded`, `channels` values each, their
/// weights packed in that order) that lie within `[rows, columns]`: taps whose pixels
/// neighbour each other in channels-last order (a kernel row) merge into one longer inner loop.
fn tap_runs(padded: &ChannelsLast, taps: &[(usize, usize)], channels: usize, [rows, cols]: [std::ops::Range<usize>; 2]) -> Vec<Run> {
    let mut runs: Vec<Run> = Vec::new();
    for (t, &(y, x)) in taps.iter().enumerate().filter(|&(_, &(y, x))| rows.contains(&y) && cols.contains(&x)) {
        let (input, weight) = (padded.offset(0, y, x), t * channels);
        match runs.last_mut() {
            Some(run) if run.input + run.length == input && run.weight + run.length == weight => run.length += channels,
            _ => runs.push(Run { input, length: channels, weight }),
        }
    }
    runs
}

/// A product's pixels, task by task, grouped by which of their taps read data rather than zero
/// padding, so that no multiply is spent on padding: the multigrid nets' 3×3 padding-2 layers
/// (20–75 % of whose taps read zeros on their small images) and the short-run nets' strided
/// layers. Each task is a run of pixels in the order given, so its rows of the product stay in
/// that order and no copy sorts them back. Narrow layers keep one class (see
/// [`MIN_GROUPED_VALUES`]).
struct Reach {
    /// Per class, the runs of the taps its pixels read; class 0 reads them all.
    classes: Vec<Vec<Run>>,
    /// Pixels per task (the last task may have fewer).
    task: usize,
    /// Offset in the padded input of each pixel's corner, task after task, group after group.
    bases: Vec<usize>,
    /// The row of each of those pixels within its task; with one class, rows `0..CHUNK`, which
    /// every task shares (its pixels in order).
    rows: Vec<usize>,
    /// Groups `(class, range of bases)`, task after task.
    groups: Vec<(usize, std::ops::Range<usize>)>,
    /// The range of `groups` of each task.
    tasks: Vec<std::ops::Range<usize>>,
}

/// Upper bound on the pixels of a task when classes split them.
const MAX_TASK: usize = 512;

/// Values a pixel sums below which sorting pixels by their taps costs more than the padding's
/// multiplies save (the multigrid nets at widths ÷8: their first layer's forward pass took 30 %
/// longer when sorted).
const MIN_GROUPED_VALUES: usize = 256;

/// Pixels of a class that a task takes apart: whole tiles for every SIMD width (tiles of 6, 3
/// and 1 pixels). The rest join class 0, whose extra taps read zeros, in whole tiles too.
const CLASS_MULTIPLE: usize = 6;

impl Reach {
    /// Pixels with corners `[image, row, column]` in `padded`, reading taps at `(row, column)`
    /// offsets from their corner, `channels` values per tap, with the taps' weights packed in
    /// that order; only the `[rows, columns]` ranges of each padded image hold data.
    fn new(padded: &ChannelsLast, corners: impl Iterator<Item = [usize; 3]>, taps: &[(usize, usize)], channels: usize, data: [std::ops::Range<usize>; 2]) -> Self {
        let spans = [taps.iter().map(|&(y, _)| y + 1).max().unwrap_or(0), taps.iter().map(|&(_, x)| x + 1).max().unwrap_or(0)];
        let mut classes = vec![tap_runs(padded, taps, channels, [0..spans[0], 0..spans[1]])];
        if taps.len() * channels < MIN_GROUPED_VALUES {
            return Self::in_order(classes, corners.map(|[n, y, x]| padded.offset(n, y, x)).collect());
        }
        // Per axis and corner coordinate, the range of tap offsets that read data (bounded by
        // the span) as one index; per pair of indices, the class: equal ranges, equal taps, and
        // ranges that admit the same taps share the class too.
        let ranges = |axis: usize, size: usize| -> Vec<std::ops::Range<usize>> {
            let span = spans[axis];
            (0..size).map(|corner| data[axis].start.saturating_sub(corner).min(span)..data[axis].end.saturating_sub(corner).min(span)).collect()
        };
        let [row_ranges, col_ranges] = [ranges(0, padded.rows), ranges(1, padded.cols)];
        let index = |axis: usize, range: &std::ops::Range<usize>| range.start * (spans[axis] + 1) + range.end;
        let [row_keys, col_keys]: [Vec<usize>; 2] = [(0, &row_ranges), (1, &col_ranges)].map(|(axis, ranges)| ranges.iter().map(|range| index(axis, range)).collect());
        let width = (spans[1] + 1) * (spans[1] + 1);
        let mut known: Vec<Option<usize>> = vec![None; (spans[0] + 1) * (spans[0] + 1) * width];
        let pixels: Vec<(usize, usize)> = corners
            .map(|[n, y, x]| {
                let class = *known[row_keys[y] * width + col_keys[x]].get_or_insert_with(|| {
                    let runs = tap_runs(padded, taps, channels, [row_ranges[y].clone(), col_ranges[x].clone()]);
                    classes.iter().position(|known| *known == runs).unwrap_or_else(|| {
                        classes.push(runs);
                        classes.len() - 1
                    })
                });
                (padded.offset(n, y, x), class)
            })
            .collect();
        if classes.len() == 1 {
            return Self::in_order(classes, pixels.into_iter().map(|(base, _)| base).collect());
        }
        // Larger tasks when classes split them, so that each class fills whole tiles.
        let task = pixels.len().div_ceil(4 * worker_count()).clamp(CHUNK, MAX_TASK);
        let mut reach = Self { classes, task, bases: Vec::with_capacity(pixels.len()), rows: Vec::with_capacity(pixels.len()), groups: Vec::new(), tasks: Vec::new() };
        let mut members: Vec<Vec<usize>> = vec![Vec::new(); reach.classes.len()];
        for part in pixels.chunks(task) {
            members.iter_mut().for_each(Vec::clear);
            part.iter().enumerate().for_each(|(row, &(_, class))| members[class].push(row));
            for class in 1..members.len() {
                let whole = members[class].len() / CLASS_MULTIPLE * CLASS_MULTIPLE;
                let rest = members[class].split_off(whole);
                members[0].extend(rest);
            }
            let first_group = reach.groups.len();
            for (class, rows) in members.iter().enumerate().filter(|(_, rows)| !rows.is_empty()) {
                let first = reach.bases.len();
                reach.bases.extend(rows.iter().map(|&row| part[row].0));
                reach.rows.extend(rows);
                reach.groups.push((class, first..reach.bases.len()));
            }
            reach.tasks.push(first_group..reach.groups.len());
        }
        reach
    }

    /// The pixels at `bases`, all of the one class of `classes`, in tasks of [`CHUNK`] in order:
    /// a handful of small allocations, as the plain product had (per call, fresh pages for
    /// per-pixel lists cost the n_f 16 chain 5 %).
    fn in_order(classes: Vec<Vec<Run>>, bases: Vec<usize>) -> Self {
        let groups: Vec<(usize, std::ops::Range<usize>)> = (0..bases.len()).step_by(CHUNK).map(|first| (0, first..bases.len().min(first + CHUNK))).collect();
        let tasks = (0..groups.len()).map(|group| group..group + 1).collect();
        Self { classes, task: CHUNK, bases, rows: (0..CHUNK).collect(), groups, tasks }
    }

    /// The rows within their task of the pixels `pixels` (a group's range of `bases`).
    fn rows_of(&self, pixels: &std::ops::Range<usize>) -> &[usize] {
        match self.classes.len() {
            1 => &self.rows[..pixels.len()],
            _ => &self.rows[pixels.clone()],
        }
    }

    /// Task `task`'s passes of the tile loop `(runs, corners, rows)`: each group [`CHUNK`]
    /// pixels at a time, so that their input stays cached for every block of output channels.
    fn passes(&self, task: usize) -> impl Iterator<Item = (&[Run], &[usize], &[usize])> + '_ {
        self.groups[self.tasks[task].clone()].iter().flat_map(move |(class, pixels)| {
            let runs = self.classes[*class].as_slice();
            self.bases[pixels.clone()].chunks(CHUNK).zip(self.rows_of(pixels).chunks(CHUNK)).map(move |(bases, rows)| (runs, bases, rows))
        })
    }
}

/// `out[m][o] = start[o] + Σ_runs Σ_i input[bases[m] + run.input + i] · packed[o / BLOCK][run.weight + i][o % BLOCK]`
/// over the runs of pixel `m`'s class, then a LeakyReLU of slope `leaky` where given.
struct Product<'a> {
    input: &'a [f32],
    packed: &'a [f32],
    start: &'a [f32],
    leaky: Option<f32>,
}

impl Product<'_> {
    /// One row of `start.len()` values per pixel of `reach`, in the order they were given.
    fn run(&self, reach: &Reach) -> Vec<f32> {
        let row = self.start.len();
        let mut out = zeroed(reach.bases.len() * row);
        for_each_part(&mut out, reach.task * row, |i, out| {
            for (runs, bases, rows) in reach.passes(i) {
                Arch::new().dispatch(Dispatch(Tiles { product: self, runs, bases, rows, out: &mut *out }));
            }
            // While the task's rows are still cached.
            if let Some(slope) = self.leaky {
                out.iter_mut().for_each(|value| *value = leaky(*value, slope));
            }
        });
        out
    }
}

/// The register-tiled loop over one group of a task: pixels at corners `bases` whose sums go
/// to rows `rows` of `out`, all reading the taps of `runs`.
struct Tiles<'a, 'b> {
    product: &'a Product<'a>,
    runs: &'b [Run],
    bases: &'b [usize],
    rows: &'b [usize],
    out: &'b mut [f32],
}

/// A loop over register tiles of `A` broadcast values × `V` vectors (16 output channels).
trait TileLoop {
    fn run<S: Simd, const A: usize, const V: usize>(self, simd: S);
}

/// Runs a [`TileLoop`] with the tile of the instruction set `pulp` picks.
struct Dispatch<T>(T);

impl<T: TileLoop> WithSimd for Dispatch<T> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        // Broadcast values × vectors per tile: 12 accumulators, leaving registers for the
        // broadcast value and the loaded vectors.
        match S::F32_LANES {
            8 => self.0.run::<S, 6, 2>(simd),
            4 => self.0.run::<S, 3, 4>(simd),
            // The scalar fallback, and any width without a tile of its own.
            _ => self.0.run::<pulp::Scalar, 1, 16>(pulp::Scalar::new()),
        }
    }
}

impl TileLoop for Tiles<'_, '_> {
    #[inline(always)]
    fn run<S: Simd, const P: usize, const V: usize>(self, simd: S) {
        let Product { input, packed, start, .. } = *self.product;
        let row = start.len();
        let per_block = packed.len() / (row / BLOCK);
        for block in 0..row / BLOCK {
            let weights = S::as_simd_f32s(&packed[block * per_block..][..per_block]).0;
            let first = S::as_simd_f32s(&start[block * BLOCK..][..BLOCK]).0;
            let sums = TileSums::<S, V> { input, runs: self.runs, weights, first: core::array::from_fn(|v| first[v]), row };
            let out = &mut *self.out;
            let tiles = self.bases.chunks_exact(P);
            let (rest, rest_rows) = (tiles.remainder(), &self.rows[self.bases.len() - tiles.remainder().len()..]);
            for (tile, rows) in tiles.zip(self.rows.chunks_exact(P)) {
                sums.store::<P>(simd, tile, rows, out, block);
            }
            // The group's last pixels in one narrower tile (at most one per task).
            match rest.len() {
                0 => {}
                1 => sums.store::<1>(simd, rest, rest_rows, out, block),
                2 => sums.store::<2>(simd, rest, rest_rows, out, block),
                3 => sums.store::<3>(simd, rest, rest_rows, out, block),
                4 => sums.store::<4>(simd, rest, rest_rows, out, block),
                _ => sums.store::<5>(simd, rest, rest_rows, out, block),
            }
        }
    }
}

/// What every tile of one block of output channels reads.
struct TileSums<'a, S: Simd, const V: usize> {
    input: &'a [f32],
    runs: &'a [Run],
    /// The block's packed weights, `V` vectors per input value.
    weights: &'a [S::f32s],
    /// The accumulators' starting values.
    first: [S::f32s; V],
    /// Values per row of the output.
    row: usize,
}

impl<S: Simd, const V: usize> TileSums<'_, S, V> {
    /// Accumulators of `P` pixels × `V` vectors of output channels over every run.
    #[inline(always)]
    fn sum<const P: usize>(&self, simd: S, bases: &[usize]) -> [[S::f32s; V]; P] {
        let mut acc = [self.first; P];
        for run in self.runs {
            let run_weights = &self.weights[run.weight * V..][..run.length * V];
            let rows: [&[f32]; P] = core::array::from_fn(|p| &self.input[bases[p] + run.input..][..run.length]);
            for (c, w) in run_weights.chunks_exact(V).enumerate() {
                for p in 0..P {
                    let x = simd.splat_f32s(rows[p][c]);
                    for v in 0..V {
                        // The `_e` form: a fused multiply-add where the CPU has one (x86-64 FMA,
                        // NEON), a multiply and an add otherwise; the exact form falls back to a
                        // software fma per lane in wasm, 14× slower than flex's kernels.
                        acc[p][v] = simd.mul_add_e_f32s(x, w[v], acc[p][v]);
                    }
                }
            }
        }
        acc
    }

    /// The sums of the `P` pixels of `bases` into `block` of their `rows` of `out`.
    #[inline(always)]
    fn store<const P: usize>(&self, simd: S, bases: &[usize], rows: &[usize], out: &mut [f32], block: usize) {
        for (acc, &row) in self.sum::<P>(simd, bases).iter().zip(rows) {
            S::as_mut_simd_f32s(&mut out[row * self.row + block * BLOCK..][..BLOCK]).0[..V].copy_from_slice(acc);
        }
    }
}

thread_local! {
    /// Spare buffers of this thread. The channels-last copies and the products' rows are
    /// megabytes; allocated afresh, each 4 KiB page costs a fault on first touch, which on the
    /// small nets took as long as the copy itself.
    static SPARES: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
}

/// A buffer of `len` zeros, reusing a spare one where there is.
fn zeroed(len: usize) -> Vec<f32> {
    let mut buffer = SPARES.with(|spares| spares.borrow_mut().pop()).unwrap_or_default();
    buffer.clear();
    buffer.resize(len, 0.0);
    buffer
}

/// Keeps `buffer` for a later [`zeroed`] (two at most: a convolution holds two at once).
fn recycle(buffer: Vec<f32>) {
    SPARES.with(|spares| {
        let mut spares = spares.borrow_mut();
        if spares.len() < 2 {
            spares.push(buffer);
        }
    });
}

/// LeakyReLU of `slope` (0: ReLU); a NaN stays NaN, so divergence still shows. A select, not a
/// branch: on random signs a branch mispredicts every other value and blocks vectorising.
pub(super) fn leaky(y: f32, slope: f32) -> f32 {
    if y > 0.0 { y } else { y * slope }
}

/// The cotangent `g` of a LeakyReLU's output `a` carried to its input: the derivative has the
/// output's sign.
pub(super) fn before_activation(g: f32, a: f32, slope: f32) -> f32 {
    if a <= 0.0 { g * slope } else { g }
}

/// Calls `task(i, part)` for each consecutive `part_len`-long part of `data` (the last may be
/// shorter), on all cores where threads exist.
pub(crate) fn for_each_part(data: &mut [f32], part_len: usize, task: impl Fn(usize, &mut [f32]) + Send + Sync) {
    #[cfg(feature = "parallel")]
    {
        use rayon::prelude::*;
        data.par_chunks_mut(part_len).enumerate().for_each(|(i, part)| task(i, part));
    }
    #[cfg(not(feature = "parallel"))]
    data.chunks_mut(part_len).enumerate().for_each(|(i, part)| task(i, part));
}

/// Calls `task(i, first_part, second_part)` for each pair of consecutive `part_len`-long parts
/// of two buffers of one length, on all cores where threads exist.
pub(crate) fn for_each_pair_of_parts(first: &mut [f32], second: &mut [f32], part_len: usize, task: impl Fn(usize, &mut [f32], &mut [f32]) + Send + Sync) {
    #[cfg(feature = "parallel")]
    {
        use rayon::prelude::*;
        first.par_chunks_mut(part_len).zip(second.par_chunks_mut(part_len)).enumerate().for_each(|(i, (a, b))| task(i, a, b));
    }
    #[cfg(not(feature = "parallel"))]
    first.chunks_mut(part_len).zip(second.chunks_mut(part_len)).enumerate().for_each(|(i, (a, b))| task(i, a, b));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The weight-gradient loop with scalar tiles of 1, 3 and 6 values (the fallback, and run
    /// lengths that leave every remainder tile) gives the dispatched loop's sums, over more
    /// than one pass of pixels, more than one panel of values, and tiles that straddle runs
    /// (the first run's 260 values are no multiple of 3 or 6).
    #[test]
    fn scalar_weight_tiles_agree_with_dispatched_simd() {
        // Output channels that leave the second block 5 short (zeros past the last one).
        let (channels, pixels, outputs) = (PANEL_VALUES / 2 + 2, WEIGHT_CHUNK + 150, 2 * BLOCK - 5);
        let input: Vec<f32> = (0..(pixels + 8) * channels).map(|i| ((i * 29 % 97) as f32 - 48.0) / 48.0).collect();
        let grad: Vec<f32> = (0..pixels * outputs).map(|i| ((i * 13 % 89) as f32 - 44.0) / 44.0).collect();
        let cotangent = Cotangent { grad: Values { data: &grad, layout: Layout::Nhwc }, derivative: None, channels: outputs, plane: pixels };
        let bases: Vec<usize> = (0..pixels).map(|p| p * channels).collect();
        let runs = [Run { input: 0, length: 2 * channels, weight: 0 }, Run { input: 5 * channels, length: channels, weight: 2 * channels }];
        let sums = |tiles: usize| {
            let (mut sums, mut bias) = (vec![0.0; 2 * 3 * channels * BLOCK], vec![0.0; 2 * BLOCK]);
            let task = WeightTiles { input: &input, cotangent: &cotangent, bases: &bases, pixels: 3..pixels, runs: &runs, sums: &mut sums, bias: &mut bias };
            match tiles {
                0 => Arch::new().dispatch(Dispatch(task)),
                1 => task.run::<pulp::Scalar, 1, 16>(pulp::Scalar::new()),
                3 => task.run::<pulp::Scalar, 3, 16>(pulp::Scalar::new()),
                _ => task.run::<pulp::Scalar, 6, 16>(pulp::Scalar::new()),
            }
            (sums, bias)
        };
        let (dispatched, bias) = sums(0);
        for tiles in [1, 3, 6] {
            let worst = dispatched.iter().zip(sums(tiles).0).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
            assert!(worst < 1e-3, "{tiles}-value scalar tiles differ by {worst}");
        }
        // Sums by hand: block 1, output channel 1·16 + 7, at both ends of each run (the
        // first run's last values and all of the second run's lie in the second panel).
        for (run, value) in [(0, 4), (0, 2 * channels - 1), (1, 0), (1, 4), (1, channels - 1)] {
            let Run { input: offset, weight: first, .. } = runs[run];
            let expected: f32 = (3..pixels).map(|m| input[bases[m] + offset + value] * grad[m * outputs + BLOCK + 7]).sum();
            let got = dispatched[(3 * channels + first + value) * BLOCK + 7];
            assert!((got - expected).abs() < 1e-3, "run {run} value {value}: {got} vs {expected}");
        }
        let expected: f32 = (3..pixels).map(|m| grad[m * outputs + BLOCK + 7]).sum();
        assert!((bias[BLOCK + 7] - expected).abs() < 1e-3, "bias sum {} vs {expected}", bias[BLOCK + 7]);
        // Past the last output channel: nothing.
        assert_eq!(bias[outputs..], [0.0; 5]);
        let second_block = &dispatched[3 * channels * BLOCK..];
        assert!(second_block.chunks_exact(BLOCK).all(|line| line[BLOCK - 5..] == [0.0; 5]), "sums past the last channel");
    }

    /// Tiles other than the host's SIMD width (the 1-lane fallback, and classes whose pixels
    /// leave a remainder) give the dispatched product's sums, and each pixel sums exactly the
    /// taps that read data: its class's runs.
    #[test]
    fn scalar_tiles_agree_with_dispatched_simd() {
        // 4 taps × 64 channels: enough values per pixel to sort pixels by their taps.
        let (channels, rows, cols) = (64, 6, 8);
        let values = 2 * rows * cols * channels;
        // Data in rows 0..5 and columns 0..5 of each image, zeros (padding) around it.
        let in_data = |i: usize| (i / channels / cols % rows) < 5 && (i / channels % cols) < 5;
        let data: Vec<f32> = (0..values).map(|i| if in_data(i) { ((i * 37 % 101) as f32 - 50.0) / 50.0 } else { 0.0 }).collect();
        let padded = ChannelsLast { data, rows, cols, channels };
        let taps = [(0, 0), (0, 1), (1, 0), (2, 3)];
        let corners: Vec<[usize; 3]> = (0..2).flat_map(|n| (0..4).flat_map(move |y| (0..5).map(move |x| [n, y, x]))).collect();
        // The last corner row and the columns ≥ 2 lose tap (2, 3), column 4 also loses (0, 1).
        let reach = Reach::new(&padded, corners.iter().copied(), &taps, channels, [0..5, 0..5]);
        let reads = |[_, y, x]: [usize; 3], (dy, dx): (usize, usize)| y + dy < 5 && x + dx < 5;
        assert_eq!(reach.classes.len(), 3, "classes: all taps, all but (2, 3), all but (2, 3) and (0, 1)");
        let all = [Run { input: 0, length: 2 * channels, weight: 0 }, Run { input: cols * channels, length: channels, weight: 2 * channels }, Run { input: (2 * cols + 3) * channels, length: channels, weight: 3 * channels }];
        assert_eq!(reach.classes[0], all, "adjacent taps merge");
        // One task of 40 pixels: 12 read every tap, 20 all but one (2 of them join class 0, to
        // leave whole tiles), 8 two fewer (2 join class 0).
        let groups: Vec<(usize, usize)> = reach.groups.iter().map(|(class, pixels)| (*class, pixels.len())).collect();
        assert_eq!(groups, [(0, 16), (1, 18), (2, 6)]);
        let outputs = 20;
        let packed = pack(&taps, channels, outputs, |(kh, kw), c, o| ((kh * 7 + kw * 3 + c + 2 * o) % 11) as f32 / 11.0 - 0.5);
        let start: Vec<f32> = (0..padded_channels(outputs)).map(|o| o as f32 / 10.0).collect();
        let product = Product { input: &padded.data, packed: &packed, start: &start, leaky: None };
        let dispatched = product.run(&reach);
        let row = start.len();
        for (pixels, scalar) in [1, 3, 6].map(|p| {
            let mut out = vec![0.0; dispatched.len()];
            for (task, part) in out.chunks_mut(reach.task * row).enumerate() {
                for (runs, bases, rows) in reach.passes(task) {
                    let tiles = Tiles { product: &product, runs, bases, rows, out: &mut *part };
                    match p {
                        1 => tiles.run::<pulp::Scalar, 1, 16>(pulp::Scalar::new()),
                        3 => tiles.run::<pulp::Scalar, 3, 16>(pulp::Scalar::new()),
                        _ => tiles.run::<pulp::Scalar, 6, 16>(pulp::Scalar::new()),
                    }
                }
            }
            (p, out)
        }) {
            let worst = dispatched.iter().zip(&scalar).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
            assert!(worst < 1e-4, "{pixels}-pixel scalar tiles differ by {worst}");
        }
        // Sums by hand over the taps that read data, output channel 5, a pixel of each class
        // and one (39) that joined class 0.
        for i in [0, 4, 12, 17, 26, 39] {
            let corner = corners[i];
            let base = padded.offset(corner[0], corner[1], corner[2]);
            let expected: f32 = start[5]
                + taps
                    .iter()
                    .filter(|&&tap| reads(corner, tap))
                    .flat_map(|&(kh, kw)| (0..channels).map(move |c| (kh, kw, c)))
                    .map(|(kh, kw, c)| padded.data[base + padded.offset(0, kh, kw) + c] * (((kh * 7 + kw * 3 + c + 10) % 11) as f32 / 11.0 - 0.5))
                    .sum::<f32>();
            let got = dispatched[i * row + 5];
            assert!((got - expected).abs() < 1e-4, "pixel {i}: {got} vs {expected}");
        }
    }
}
