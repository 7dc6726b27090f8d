//! The energy nets' convolutions on burn's CPU backend (`flex`), through `kernel`'s
//! register-tiled products instead of flex's im2col path: the forward pass and input gradient
//! (sampling), and the weight and bias gradients (tape-free training, see
//! [`crate::Stack::parameter_vjp`]).
//!
//! `f32` tensors of `flex` come here, plain or (with the `autodiff` feature) on burn's tape,
//! where [`conv2d`] and [`conv2d_input_grad`] become tape operations ([`tracked`]); the forward
//! pass also needs at least [`MIN_CHANNELS`] output channels. Everything else (GPUs, a
//! one-channel energy head's forward pass) runs burn's own ops. The kernels read flex's buffers
//! in place, in burn's NCHW order or channels-last ([`Layout::Nhwc`], a permuted view to burn);
//! they compute channels-last, so a result handed on in that layout costs no transposition.
//! Results agree with burn's to float rounding (tests below).
//!
//! Batch-statistics BatchNorm followed by a LeakyReLU (the multigrid nets' blocks) runs here
//! too, in a few passes instead of a dozen of flex's element-wise ops ([`batch_norm_leaky`]).

mod kernel;
mod norm;
#[cfg(feature = "autodiff")]
pub mod tracked;

pub use kernel::Layout;
pub(crate) use kernel::for_each_part;

use burn::backend::Flex;
use burn::backend::flex::FlexTensor;
use burn::prelude::*;
use burn::tensor::DType;

use kernel::ConvShape;

/// Fewest output channels of a forward pass taken here (the channels along its register tile):
/// a narrower layer (an energy head) leaves most of a 16-channel tile empty, and flex is as
/// fast on it. Half a tile still wins: the multigrid nets at ÷8 widths open with 8 and 12
/// channels on RGB, which flex's direct small-channel path took at a fifth of the cascade's
/// time (2026-12-01: whole cascade 280–311 ms → 230–237 ms).
pub const MIN_CHANNELS: usize = 8;

/// `conv2d(x, weight, bias)` with stride and padding on both axes, then a LeakyReLU of slope
/// `leaky` (0: ReLU) where given, stored in the `output` layout (on the tape: burn's order);
/// `None` where burn's own ops should run. `x`: `[N, C, H, W]`, `weight`: `[C', C, K, K]`,
/// `bias`: `[C']`.
pub fn conv2d(x: &Tensor<4>, weight: &Tensor<4>, bias: Option<&Tensor<1>>, stride: usize, padding: usize, leaky: Option<f64>, output: Layout) -> Option<Tensor<4>> {
    #[cfg(feature = "autodiff")]
    if let Some(y) = tracked::conv2d(x, weight, bias, stride, padding, leaky) {
        return Some(y);
    }
    let [batch, in_channels, height, width] = x.dims();
    let [out_channels, _, _, _] = weight.dims();
    let shape = ConvShape { batch, in_channels, out_channels, height, width, kernel: weight.dims()[2], stride, padding };
    if !applies(&shape, x, weight, MIN_CHANNELS) || bias.is_some_and(|b| b.dims() != [out_channels] || b.dtype() != DType::F32) {
        return None;
    }
    let bias = match bias {
        Some(bias) => Some(host(bias)?),
        None => None,
    };
    let input = view(x)?;
    let out = kernel::conv2d(&shape, input.values(), &host(weight)?, bias.as_deref(), leaky.map(|slope| slope as f32), output);
    let [out_h, out_w] = shape.out_size();
    Some(image_tensor(out, [batch, out_channels, out_h, out_w], output, &x.device()))
}

/// The input gradient of [`conv2d`]: `grad` `[N, C', H', W']` back through `weight`
/// `[C', C, K, K]` to an input of `size` `[H, W]`, or `None` where burn's own ops should run.
/// Rows and columns the stride skipped get zero. With `leaky` = (the LeakyReLU's outputs
/// `[N, C', H', W']`, its slope), `grad` is the cotangent of those outputs and goes through
/// the activation's derivative first. The result is stored in the `output` layout (on the
/// tape: burn's order).
pub fn conv2d_input_grad(
    grad: &Tensor<4>,
    weight: &Tensor<4>,
    stride: usize,
    padding: usize,
    size: [usize; 2],
    leaky: Option<(&Tensor<4>, f64)>,
    output: Layout,
) -> Option<Tensor<4>> {
    #[cfg(feature = "autodiff")]
    if let Some(input_grad) = tracked::conv_transpose2d(grad, weight, stride, padding, size, leaky) {
        return Some(input_grad);
    }
    let [batch, out_channels, grad_h, grad_w] = grad.dims();
    let [_, in_channels, kernel, _] = weight.dims();
    let [height, width] = size;
    let shape = ConvShape { batch, in_channels, out_channels, height, width, kernel, stride, padding };
    if !applies(&shape, grad, weight, 1) || shape.out_size() != [grad_h, grad_w] {
        return None;
    }
    let outputs = leaky_outputs(grad, leaky)?;
    let leaky = outputs.as_ref().map(|(outputs, slope)| (outputs.values(), *slope));
    let out = kernel::conv2d_input_grad(&shape, view(grad)?.values(), &host(weight)?, leaky, output);
    Some(image_tensor(out, [batch, in_channels, height, width], output, &grad.device()))
}

/// The gradients of [`conv2d`]'s weight `[C', C, K, K]` and bias `[C']` for `grad`
/// `[N, C', H', W']` on its output, given its input `x` `[N, C, H, W]`, or `None` where burn's
/// autodiff should run. `leaky` as in [`conv2d_input_grad`]. Any channel count: the products
/// run along the pixels, so an RGB input layer and a one-channel head fill the tiles too.
pub fn conv2d_parameter_grads(
    x: &Tensor<4>,
    grad: &Tensor<4>,
    weight: &Tensor<4>,
    stride: usize,
    padding: usize,
    leaky: Option<(&Tensor<4>, f64)>,
) -> Option<(Tensor<4>, Tensor<1>)> {
    let [batch, in_channels, height, width] = x.dims();
    let [out_channels, _, kernel, _] = weight.dims();
    let shape = ConvShape { batch, in_channels, out_channels, height, width, kernel, stride, padding };
    let [_, grad_channels, grad_h, grad_w] = grad.dims();
    if !applies(&shape, x, weight, 1) || !on_flex(grad) || [grad.dims()[0], grad_channels] != [batch, out_channels] || shape.out_size() != [grad_h, grad_w] {
        return None;
    }
    let outputs = leaky_outputs(grad, leaky)?;
    let leaky = outputs.as_ref().map(|(outputs, slope)| (outputs.values(), *slope));
    let (weight_grad, bias_grad) = kernel::conv2d_parameter_grads(&shape, view(x)?.values(), view(grad)?.values(), leaky);
    let device = x.device();
    Some((
        Tensor::from_data(TensorData::new(weight_grad, [out_channels, in_channels, kernel, kernel]), &device),
        Tensor::from_data(TensorData::new(bias_grad, [out_channels]), &device),
    ))
}

/// Batch-statistics BatchNorm of `h` `[N, C, H, W]` (the batch's mean and biased variance,
/// `eps` added) with gain `gamma` and shift `beta` `[C]`, then a LeakyReLU of `slope` (0: ReLU),
/// in NCHW order: the outputs, `x̂` `[N, C, H, W]` and `1/σ` `[1, C, 1, 1]` (what
/// [`batch_norm_leaky_backward`] needs), or `None` where burn's own ops should run.
pub fn batch_norm_leaky(h: &Tensor<4>, gamma: &Tensor<1>, beta: &Tensor<1>, eps: f64, slope: f64) -> Option<(Tensor<4>, Tensor<4>, Tensor<4>)> {
    let dims @ [batch, channels, height, width] = h.dims();
    if !on_flex(h) || gamma.dims() != [channels] || beta.dims() != [channels] {
        return None;
    }
    let shape = norm::NormShape { batch, channels, plane: height * width };
    let out = norm::forward(shape, &host(h)?, &host(gamma)?, &host(beta)?, eps, slope as f32);
    let device = h.device();
    let image = |values: Vec<f32>| Tensor::from_data(TensorData::new(values, dims), &device);
    let inv_std = Tensor::from_data(TensorData::new(out.inv_std, [1, channels, 1, 1]), &device);
    Some((image(out.outputs), image(out.normalised), inv_std))
}

/// The cotangent of [`batch_norm_leaky`]'s input for `grad` on its `outputs`, given `x̂`
/// and `1/σ` as it returned them, with the gradients of `gamma` and `beta` `[C]`, or `None`
/// where burn's own ops should run.
pub fn batch_norm_leaky_backward(
    grad: &Tensor<4>,
    outputs: &Tensor<4>,
    normalised: &Tensor<4>,
    inv_std: &Tensor<4>,
    gamma: &Tensor<1>,
    slope: f64,
) -> Option<(Tensor<4>, Tensor<1>, Tensor<1>)> {
    let dims @ [batch, channels, height, width] = grad.dims();
    let same = |t: &Tensor<4>| on_flex(t) && t.dims() == dims;
    if !(same(grad) && same(outputs) && same(normalised)) || inv_std.dims() != [1, channels, 1, 1] || gamma.dims() != [channels] {
        return None;
    }
    let shape = norm::NormShape { batch, channels, plane: height * width };
    let (input_grad, gamma_grad, beta_grad) =
        norm::backward(shape, &host(grad)?, &host(outputs)?, &host(normalised)?, &host(inv_std)?, &host(gamma)?, slope as f32);
    let device = grad.device();
    let per_channel = |values: Vec<f32>| Tensor::from_data(TensorData::new(values, [channels]), &device);
    Some((Tensor::from_data(TensorData::new(input_grad, dims), &device), per_channel(gamma_grad), per_channel(beta_grad)))
}

/// The LeakyReLU outputs and slope of `leaky` on the host: `Some(None)` without one, `None`
/// where they do not fit `grad`.
fn leaky_outputs(grad: &Tensor<4>, leaky: Option<(&Tensor<4>, f64)>) -> Option<Option<(View, f32)>> {
    match leaky {
        Some((outputs, slope)) if outputs.dims() == grad.dims() && on_flex(outputs) => Some(Some((view(outputs)?, slope as f32))),
        Some(_) => None,
        None => Some(None),
    }
}

/// Whether `shape` is a convolution this module computes for `data` (the input, or the
/// output gradient) and `weight` `[out_channels, in_channels, K, K]`, with at least
/// `min_out` output channels.
fn applies(shape: &ConvShape, data: &Tensor<4>, weight: &Tensor<4>, min_out: usize) -> bool {
    let [wo, wi, kh, kw] = weight.dims();
    on_flex(data)
        && weight.dtype() == DType::F32
        && [wo, wi] == [shape.out_channels, shape.in_channels]
        && kh == kw
        && shape.stride >= 1
        && shape.kernel >= 1
        && shape.height + 2 * shape.padding >= shape.kernel
        && shape.width + 2 * shape.padding >= shape.kernel
        && shape.in_channels >= 1
        && shape.out_channels >= min_out
}

/// Whether `tensor` is a plain `f32` tensor of flex (no autodiff context).
fn on_flex(tensor: &Tensor<4>) -> bool {
    let device = tensor.device();
    !device.is_autodiff() && device == Device::flex() && tensor.dtype() == DType::F32
}

/// A tensor's values, row-major: flex's own buffer where the tensor is contiguous (no copy of
/// megabytes per call), else a copy. flex computes eagerly, so the values are ready at once,
/// also in wasm where a read that had to wait would be refused.
enum Host {
    /// flex's buffer and the range the tensor covers.
    Borrowed(FlexTensor, std::ops::Range<usize>),
    /// A copy.
    Owned(Vec<f32>),
}

impl std::ops::Deref for Host {
    type Target = [f32];

    fn deref(&self) -> &[f32] {
        match self {
            Self::Borrowed(tensor, range) => &tensor.storage::<f32>()[range.clone()],
            Self::Owned(values) => values,
        }
    }
}

/// An image batch's values on the host and their layout.
struct View {
    host: Host,
    layout: Layout,
}

impl View {
    fn values(&self) -> kernel::Values<'_> {
        kernel::Values { data: &self.host, layout: self.layout }
    }
}

/// `tensor`'s values on the host: flex's buffer where they lie channels-last (a permuted view,
/// as [`image_tensor`] makes) or in burn's order, else an NCHW copy (see [`host`]).
fn view(tensor: &Tensor<4>) -> Option<View> {
    if let Ok(flex) = tensor.clone().try_into_primitive::<Flex>()
        && flex.dtype() == DType::F32
        && let Some((start, end)) = flex.layout().permute(&[0, 2, 3, 1]).contiguous_offsets()
    {
        return Some(View { host: Host::Borrowed(flex, start..end), layout: Layout::Nhwc });
    }
    Some(View { host: host(tensor)?, layout: Layout::Nchw })
}

/// An image batch `[N, C, H, W]` on `device` from `values` in `layout` order: for
/// [`Layout::Nhwc`], an `[N, H, W, C]` tensor permuted (a view, no copy).
fn image_tensor(values: Vec<f32>, [n, c, h, w]: [usize; 4], layout: Layout, device: &Device) -> Tensor<4> {
    match layout {
        Layout::Nchw => Tensor::from_data(TensorData::new(values, [n, c, h, w]), device),
        Layout::Nhwc => Tensor::<4>::from_data(TensorData::new(values, [n, h, w, c]), device).permute([0, 3, 1, 2]),
    }
}

/// The same image batch stored channels-last (a copy), as this module's kernels hand on their
/// results in [`Layout::Nhwc`].
pub fn channels_last(x: Tensor<4>) -> Tensor<4> {
    let device = x.device();
    Tensor::<4>::from_data(x.permute([0, 2, 3, 1]).into_data(), &device).permute([0, 3, 1, 2])
}

/// `tensor`'s values on the host (see [`Host`]); `None` for a dtype other than `f32`.
fn host<const D: usize>(tensor: &Tensor<D>) -> Option<Host> {
    if let Ok(flex) = tensor.clone().try_into_primitive::<Flex>()
        && flex.dtype() == DType::F32
        && let Some((start, end)) = flex.layout().contiguous_offsets()
    {
        return Some(Host::Borrowed(flex, start..end));
    }
    Some(Host::Owned(tensor.clone().try_into_data().ok()?.try_into_vec::<f32>().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::HostRng;
    use burn::tensor::Distribution;
    use burn::tensor::activation::leaky_relu;
    use burn::tensor::module::conv2d as burn_conv2d;
    use burn::tensor::ops::ConvOptions;

    fn max_difference(a: Tensor<4>, b: Tensor<4>) -> f32 {
        assert_eq!(a.dims(), b.dims());
        (a - b).abs().max().into_scalar()
    }

    /// Shapes of the paper nets plus odd sizes, strides and channel counts off the tile width,
    /// and input layers narrower than a tile (RGB; the narrow input gradient).
    const SHAPES: [(usize, usize, usize, usize, usize, usize, usize); 13] = [
        // batch, in, out, side, kernel, stride, padding
        (3, 16, 32, 16, 4, 2, 1),
        (2, 20, 33, 9, 4, 2, 1),
        (2, 17, 16, 7, 3, 1, 1),
        (1, 16, 24, 11, 5, 3, 2),
        (2, 32, 16, 4, 4, 1, 0),
        (1, 16, 18, 6, 2, 2, 0),
        (2, 16, 16, 5, 3, 2, 0),
        (2, 3, 16, 8, 3, 1, 1),
        (2, 5, 17, 7, 4, 2, 1),
        // Less than a tile of outputs: a multigrid ÷8 first layer.
        (2, 3, 12, 10, 5, 2, 2),
        // Wide enough (≥ 256 values per pixel, both ways) that edge pixels skip the taps that
        // read padding: growing by the padding as the multigrid grid-4 net does (2×3 → 4×5,
        // most pixels miss taps); padding wider than the kernel (corner pixels read only
        // padding); a stride-2 layer, whose input-gradient classes skip taps too.
        (2, 32, 32, 2, 3, 1, 2),
        (1, 64, 64, 3, 2, 1, 2),
        (2, 64, 64, 6, 4, 2, 1),
    ];

    /// The layouts the kernels read and write, each pairing of input and output met in turn.
    const LAYOUTS: [(Layout, Layout); 4] =
        [(Layout::Nchw, Layout::Nchw), (Layout::Nhwc, Layout::Nhwc), (Layout::Nchw, Layout::Nhwc), (Layout::Nhwc, Layout::Nchw)];

    /// `x` stored in `layout`.
    fn stored(x: Tensor<4>, layout: Layout) -> Tensor<4> {
        match layout {
            Layout::Nchw => x,
            Layout::Nhwc => channels_last(x),
        }
    }

    /// How `tensor`'s values lie in flex's buffer, as the kernels see it.
    fn layout_of(tensor: &Tensor<4>) -> Layout {
        let [_, channels, height, width] = tensor.dims();
        assert!(channels > 1 && height * width > 1, "both layouts coincide for {:?}", tensor.dims());
        view(tensor).expect("f32").layout
    }

    #[test]
    fn forward_and_input_gradient_match_burn() {
        let device = Device::flex();
        let leaky_slopes = [None, Some(0.2), Some(0.0)].into_iter().cycle();
        for (((batch, inputs, outputs, side, kernel, stride, padding), leaky), (read, write)) in SHAPES.into_iter().zip(leaky_slopes).zip(LAYOUTS.into_iter().cycle()) {
            let layer = format!("{inputs}->{outputs} k{kernel} s{stride} p{padding} LeakyReLU {leaky:?}, {read:?} -> {write:?}");
            let x = Tensor::<4>::random([batch, inputs, side, side + 1], Distribution::Normal(0.0, 1.0), &device);
            let weight = Tensor::<4>::random([outputs, inputs, kernel, kernel], Distribution::Normal(0.0, 0.1), &device);
            let bias = Tensor::<1>::random([outputs], Distribution::Normal(0.0, 1.0), &device);
            let options = ConvOptions::new([stride; 2], [padding; 2], [1, 1], 1);
            let activate = |y: Tensor<4>| leaky.map_or(y.clone(), |slope| leaky_relu(y, slope));
            let ours = conv2d(&stored(x.clone(), read), &weight, Some(&bias), stride, padding, leaky, write).expect("applies");
            assert_eq!(layout_of(&ours), write, "{layer}: forward result stored as asked");
            let reference = activate(burn_conv2d(x.clone(), weight.clone(), Some(bias.clone()), options.clone()));
            let forward = max_difference(ours, reference.clone());
            assert!(forward < 1e-4, "{layer}: forward differs by {forward}");

            // The input gradient against autodiff of burn's ops, for a random cotangent.
            let cotangent = Tensor::<4>::random(reference.dims(), Distribution::Normal(0.0, 1.0), &device);
            let ad = device.clone().autodiff();
            let tracked = Tensor::<4>::from_data(x.to_data(), &ad).require_grad();
            let y = burn_conv2d(tracked.clone(), Tensor::from_data(weight.to_data(), &ad), Some(Tensor::from_data(bias.to_data(), &ad)), options);
            let grads = (activate(y) * Tensor::from_data(cotangent.to_data(), &ad)).sum().backward();
            let expected = tracked.grad(&grads).expect("gradient");
            // The activations as the forward kernel stores them, the cotangent in the other layout.
            let activations = stored(reference, write);
            let cotangent = stored(cotangent, read);
            let ours = conv2d_input_grad(&cotangent, &weight, stride, padding, [side, side + 1], leaky.map(|slope| (&activations, slope)), write).expect("applies");
            assert_eq!(layout_of(&ours), write, "{layer}: input gradient stored as asked");
            let gradient = max_difference(ours, Tensor::from_data(expected.to_data(), &device));
            assert!(gradient < 1e-4, "{layer}: input gradient differs by {gradient}");
        }
    }

    #[test]
    fn parameter_gradients_match_autodiff() {
        let device = Device::flex();
        // The paper shapes plus an RGB input layer and a one-channel head (any width goes here).
        let narrow = [(2, 3, 16, 8, 3, 1, 1), (3, 40, 1, 4, 4, 1, 0), (2, 5, 7, 6, 3, 2, 1)];
        let leaky_slopes = [Some(0.2), None, Some(0.0)].into_iter().cycle();
        for (((batch, inputs, outputs, side, kernel, stride, padding), leaky), (read, write)) in SHAPES.into_iter().chain(narrow).zip(leaky_slopes).zip(LAYOUTS.into_iter().cycle()) {
            let layer = format!("{inputs}->{outputs} k{kernel} s{stride} p{padding} LeakyReLU {leaky:?}, input {read:?}, cotangent {write:?}");
            let x = Tensor::<4>::random([batch, inputs, side + 1, side], Distribution::Normal(0.0, 1.0), &device);
            let weight = Tensor::<4>::random([outputs, inputs, kernel, kernel], Distribution::Normal(0.0, 0.1), &device);
            let bias = Tensor::<1>::random([outputs], Distribution::Normal(0.0, 1.0), &device);
            let options = ConvOptions::new([stride; 2], [padding; 2], [1, 1], 1);
            let activate = |y: Tensor<4>| leaky.map_or(y.clone(), |slope| leaky_relu(y, slope));
            let activations = activate(burn_conv2d(x.clone(), weight.clone(), Some(bias.clone()), options.clone()));
            let cotangent = Tensor::<4>::random(activations.dims(), Distribution::Normal(0.0, 1.0), &device);

            let ad = device.clone().autodiff();
            let tracked_weight = Tensor::<4>::from_data(weight.to_data(), &ad).require_grad();
            let tracked_bias = Tensor::<1>::from_data(bias.to_data(), &ad).require_grad();
            let y = burn_conv2d(Tensor::from_data(x.to_data(), &ad), tracked_weight.clone(), Some(tracked_bias.clone()), options);
            let grads = (activate(y) * Tensor::from_data(cotangent.to_data(), &ad)).sum().backward();
            let expected_weight = Tensor::<4>::from_data(tracked_weight.grad(&grads).expect("weight gradient").to_data(), &device);
            let expected_bias = Tensor::<1>::from_data(tracked_bias.grad(&grads).expect("bias gradient").to_data(), &device);

            // Every pairing of layouts: the activations as the input, the cotangent as written.
            let (x, cotangent, activations) = (stored(x, read), stored(cotangent, write), stored(activations, read));
            let (weight_grad, bias_grad) = conv2d_parameter_grads(&x, &cotangent, &weight, stride, padding, leaky.map(|slope| (&activations, slope))).expect("applies");
            // Sums over up to ~1000 pixels: tolerances relative to the gradients' size.
            let scale = expected_weight.clone().abs().max().into_scalar::<f32>().max(1.0);
            let weight_error = max_difference(weight_grad, expected_weight) / scale;
            assert!(weight_error < 1e-5, "{layer}: weight gradient differs by {weight_error} (relative)");
            let bias_scale = expected_bias.clone().abs().max().into_scalar::<f32>().max(1.0);
            let bias_error = (bias_grad - expected_bias).abs().max().into_scalar::<f32>() / bias_scale;
            assert!(bias_error < 1e-5, "{layer}: bias gradient differs by {bias_error} (relative)");
        }
    }

    /// Batch-statistics BatchNorm + LeakyReLU and its backward pass against autodiff of burn's
    /// ops, for ReLU and a leak, on values centred at 0 and at 1000 (where a one-pass variance
    /// would lose its digits), with a plane that is no multiple of the summing lanes.
    #[test]
    fn batch_norm_matches_autodiff_of_burn_ops() {
        let device = Device::flex();
        let ad = device.clone().autodiff();
        let relative = |ours: Tensor<4>, expected: Tensor<4>| {
            let scale = expected.clone().abs().max().into_scalar::<f32>().max(1.0);
            max_difference(ours, expected) / scale
        };
        for (slope, centre) in [(0.0, 0.0), (0.2, 1000.0)] {
            let case = format!("slope {slope}, values around {centre}");
            // Seeded: an output within rounding of the LeakyReLU's kink takes the other slope
            // on one side, so fresh random values failed one run in ~50.
            let mut rng = HostRng::new(11);
            let h = rng.normal_tensor([3, 5, 7, 6], 2.0, &device).add_scalar(centre);
            let gamma = rng.normal_tensor([5], 0.3, &device).add_scalar(1.0);
            let beta = rng.normal_tensor([5], 0.5, &device);
            let cotangent = rng.normal_tensor(h.dims(), 1.0, &device);
            let eps = 1e-5;

            let tracked = |t: Tensor<4>| Tensor::<4>::from_data(t.to_data(), &ad).require_grad();
            let (th, tgamma, tbeta) = (tracked(h.clone()), Tensor::<1>::from_data(gamma.to_data(), &ad).require_grad(), Tensor::<1>::from_data(beta.to_data(), &ad).require_grad());
            let mean = th.clone().mean_dims(&[0, 2, 3]);
            let centred = th.clone() - mean;
            let var = centred.clone().square().mean_dims(&[0, 2, 3]);
            let y = centred / var.add_scalar(eps).sqrt() * tgamma.clone().reshape([1, 5, 1, 1]) + tbeta.clone().reshape([1, 5, 1, 1]);
            let expected = leaky_relu(y, slope);
            let grads = (expected.clone() * Tensor::from_data(cotangent.to_data(), &ad)).sum().backward();
            let plain = |t: Tensor<4>| Tensor::<4>::from_data(t.to_data(), &device);

            let (outputs, normalised, inv_std) = batch_norm_leaky(&h, &gamma, &beta, eps, slope).expect("applies");
            let forward = relative(outputs.clone(), plain(expected.inner()));
            assert!(forward < 1e-4, "{case}: outputs differ by {forward} (relative)");
            let (input_grad, gamma_grad, beta_grad) = batch_norm_leaky_backward(&cotangent, &outputs, &normalised, &inv_std, &gamma, slope).expect("applies");
            let input_error = relative(input_grad, plain(th.grad(&grads).expect("input gradient")));
            assert!(input_error < 1e-3, "{case}: input gradient differs by {input_error} (relative)");
            for (name, ours, param) in [("gain", gamma_grad, tgamma), ("shift", beta_grad, tbeta)] {
                let expected = Tensor::<1>::from_data(param.grad(&grads).expect("parameter gradient").to_data(), &device);
                let scale = expected.clone().abs().max().into_scalar::<f32>().max(1.0);
                let error = (ours - expected).abs().max().into_scalar::<f32>() / scale;
                assert!(error < 1e-4, "{case}: {name} gradient differs by {error} (relative)");
            }
        }
        // A NaN reaches the outputs (divergence must show), and a mismatched gain is refused.
        let nan = Tensor::<4>::from_data(TensorData::new(vec![1.0, f32::NAN, 2.0, 3.0], [1, 1, 2, 2]), &device);
        let ones = Tensor::<1>::ones([1], &device);
        let (outputs, ..) = batch_norm_leaky(&nan, &ones, &ones, 1e-5, 0.0).expect("applies");
        assert!(outputs.is_nan().any().into_scalar::<bool>(), "a NaN input leaves a NaN output");
        assert!(batch_norm_leaky(&nan, &Tensor::ones([2], &device), &ones, 1e-5, 0.0).is_none(), "a gain of the wrong length");
    }

    #[test]
    fn leaves_narrow_layers_to_burn_and_joins_the_tape() {
        let device = Device::flex();
        let wide = Tensor::<4>::zeros([1, 16, 8, 8], &device);
        let head = Tensor::<4>::zeros([1, 16, 4, 4], &device);
        assert!(conv2d(&wide, &head, None, 1, 0, None, Layout::Nchw).is_none(), "a one-channel head's output is narrower than a tile");
        let x = Tensor::<4>::zeros([1, 3, 8, 8], &device);
        let rgb = Tensor::<4>::zeros([16, 3, 3, 3], &device);
        assert!(conv2d(&x, &rgb, None, 1, 1, None, Layout::Nchw).is_some(), "an RGB input layer's 16 outputs fill a tile");
        let half = Tensor::<4>::zeros([MIN_CHANNELS, 3, 5, 5], &device);
        assert!(conv2d(&x, &half, None, 2, 2, None, Layout::Nchw).is_some(), "{MIN_CHANNELS} outputs fill half a tile");
        let narrower = Tensor::<4>::zeros([MIN_CHANNELS - 1, 3, 5, 5], &device);
        assert!(conv2d(&x, &narrower, None, 2, 2, None, Layout::Nchw).is_none(), "fewer outputs stay with flex");
        let ad = device.clone().autodiff();
        let tracked = Tensor::<4>::zeros([1, 16, 8, 8], &ad);
        let weight = Tensor::<4>::zeros([16, 16, 3, 3], &ad);
        #[cfg(feature = "autodiff")]
        {
            let on_tape = conv2d(&tracked, &weight, None, 1, 1, None, Layout::Nchw).expect("a tape operation");
            assert!(on_tape.device().is_autodiff(), "the result stays on the tape");
            let burns = tracked::with_burn_ops(|| conv2d(&tracked, &weight, None, 1, 1, None, Layout::Nchw));
            assert!(burns.is_none(), "inside with_burn_ops the tape takes burn's op");
        }
        // Without the feature (the browser runtime) tape tensors are left to burn's ops.
        #[cfg(not(feature = "autodiff"))]
        assert!(conv2d(&tracked, &weight, None, 1, 1, None, Layout::Nchw).is_none(), "no tape operations without the feature");
        let square = Tensor::<4>::ones([1, 16, 8, 8], &device);
        let kernel = Tensor::<4>::ones([16, 16, 3, 3], &device);
        let sum: f32 = conv2d(&square, &kernel, None, 1, 1, None, Layout::Nhwc).expect("applies").slice([0..1, 0..1, 3..4, 3..4]).into_scalar();
        assert_eq!(sum, 16.0 * 9.0, "an interior pixel sums 16 channels × 9 taps of ones");
    }
}
