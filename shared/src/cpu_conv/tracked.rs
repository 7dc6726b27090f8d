//! The same kernels under burn's autodiff on flex: a convolution and a transposed convolution
//! (the input gradient of a convolution) as tape operations whose backward passes run the
//! kernels too. Training with a tape — MEG's three nets, whose gradient penalty differentiates
//! through the nets' explicit input gradient, and the generators' transposed convolutions —
//! otherwise runs flex's im2col products, a half to a third as fast on these layers.
//!
//! The two operations are each other's adjoints: with `y = conv(x, W)` and `u = convᵀ(g, W)`,
//! `∂x = convᵀ(∂y, W)`, `∂g = conv(∂u, W)`, and both weight gradients are the correlation of
//! an image-sized tensor with an output-sized one (`x` with `∂y`, `∂u` with `g`). So the
//! backward passes need nothing but this module's three kernels; where a kernel declines a
//! shape, flex's own backward op runs. Both return `None` (burn's op should run) unless the
//! tensors are `f32` on flex under burn's default autodiff, outside [`with_burn_ops`].

use std::cell::Cell;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, NodeGuard, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::ops::{FloatTensorOps, ModuleOps};
use burn::backend::{Autodiff, Flex, TensorMetadata};
use burn::prelude::*;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{BoolStore, DType};

use super::Layout;

type Tracked = Autodiff<Flex>;

/// Stride, padding and the image side of one convolution.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    stride: usize,
    padding: usize,
    /// `[H, W]` of the convolution's input (the transposed convolution's output).
    image: [usize; 2],
}

impl Geometry {
    fn options(&self) -> ConvOptions<2> {
        ConvOptions::new([self.stride; 2], [self.padding; 2], [1, 1], 1)
    }
}

/// What a backward pass needs, untracked.
#[derive(Debug, Clone)]
struct Saved {
    /// The convolution's input `x` (for the transposed convolution, its input `g`).
    input: FlexTensor,
    weight: FlexTensor,
    geometry: Geometry,
    /// A LeakyReLU's outputs and slope (0: ReLU): after the convolution, or (transposed) the
    /// activation whose derivative multiplies `g` first.
    leaky: Option<(FlexTensor, f64)>,
}

impl Saved {
    /// The LeakyReLU's outputs as the kernels take them.
    fn outputs(&self) -> Option<(Tensor<4>, f64)> {
        self.leaky.as_ref().map(|(outputs, slope)| (plain(outputs.clone()), *slope))
    }

    /// `grad` times the LeakyReLU's derivative (1 where its output is positive, else the
    /// slope): flex's ops, where a kernel declined to apply it on the way.
    fn through_activation(&self, grad: FlexTensor) -> FlexTensor {
        match &self.leaky {
            None => grad,
            Some((outputs, slope)) => {
                let inactive = Flex::float_lower_equal_elem(outputs.clone(), 0.0.into(), BoolStore::Native);
                let scaled = Flex::float_mul_scalar(grad.clone(), (*slope).into());
                Flex::float_mask_where(grad, inactive, scaled)
            }
        }
    }
}

/// `conv2d(x, weight, bias)` on the tape, then a LeakyReLU of slope `leaky` (0: ReLU) where
/// given: `x` `[N, C, H, W]`, `weight` `[C', C, K, K]`, `bias` `[C']`; `None` where burn's ops
/// should run.
pub(super) fn conv2d(x: &Tensor<4>, weight: &Tensor<4>, bias: Option<&Tensor<1>>, stride: usize, padding: usize, leaky: Option<f64>) -> Option<Tensor<4>> {
    if !on_tracked_flex(x) {
        return None;
    }
    let [x_ad, weight_ad] = [x, weight].map(|t| t.clone().try_into_primitive::<Tracked>().ok());
    let (x_ad, weight_ad) = (x_ad?, weight_ad?);
    let bias_ad = match bias {
        Some(bias) => Some(bias.clone().try_into_primitive::<Tracked>().ok()?),
        None => None,
    };
    let [input, weight_inner] = [&x_ad, &weight_ad].map(|t| t.primitive().clone());
    let bias_inner = bias_ad.as_ref().map(|b| Tensor::<1>::from_primitive::<Flex>(b.primitive().clone()));
    let out = super::conv2d(&plain(input.clone()), &plain(weight_inner.clone()), bias_inner.as_ref(), stride, padding, leaky, Layout::Nchw)?;
    let out = flex(out)?;
    let [_, _, h, w] = x.dims();
    let saved = Saved { input, weight: weight_inner, geometry: Geometry { stride, padding, image: [h, w] }, leaky: leaky.map(|slope| (out.clone(), slope)) };
    Some(match bias_ad {
        Some(bias_ad) => record(Conv, [x_ad.node(), weight_ad.node(), bias_ad.node()], saved, out),
        None => record(Conv, [x_ad.node(), weight_ad.node()], saved, out),
    })
}

/// The transposed convolution that is [`conv2d`]'s input gradient, on the tape: `grad`
/// `[N, C', H', W']` through `weight` `[C', C, K, K]` to `[N, C, H, W]` with `[H, W]` = `size`
/// (burn's `conv_transpose2d` with this weight and the output padding that gives `size`).
/// With `leaky` = (a LeakyReLU's outputs `[N, C', H', W']`, its slope), `grad` is first
/// multiplied by that activation's derivative, which is piecewise constant: the outputs get no
/// gradient through it. `None` where burn's ops should run.
pub(super) fn conv_transpose2d(grad: &Tensor<4>, weight: &Tensor<4>, stride: usize, padding: usize, size: [usize; 2], leaky: Option<(&Tensor<4>, f64)>) -> Option<Tensor<4>> {
    if !on_tracked_flex(grad) {
        return None;
    }
    let [grad_ad, weight_ad] = [grad, weight].map(|t| t.clone().try_into_primitive::<Tracked>().ok());
    let (grad_ad, weight_ad) = (grad_ad?, weight_ad?);
    let [input, weight_inner] = [&grad_ad, &weight_ad].map(|t| t.primitive().clone());
    let leaky = match leaky {
        Some((outputs, slope)) => Some((flex(outputs.clone().inner())?, slope)),
        None => None,
    };
    let saved = Saved { input, weight: weight_inner, geometry: Geometry { stride, padding, image: size }, leaky };
    let outputs = saved.outputs();
    let out = super::conv2d_input_grad(&plain(saved.input.clone()), &plain(saved.weight.clone()), stride, padding, size, outputs.as_ref().map(|(o, slope)| (o, *slope)), Layout::Nchw)?;
    let out = flex(out)?;
    Some(record(Transposed, [grad_ad.node(), weight_ad.node()], saved, out))
}

/// `out`, computed from `inputs`, as the output of `operation` on the tape (keeping `saved` for
/// its backward pass where any input is tracked).
fn record<const N: usize>(operation: impl Backward<Flex, N, State = Saved>, inputs: [NodeGuard; N], saved: Saved, out: FlexTensor) -> Tensor<4> {
    let out = match operation.prepare::<NoCheckpointing>(inputs).compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish(saved, out),
        OpsKind::UnTracked(prep) => prep.finish(out),
    };
    Tensor::from_primitive::<Tracked>(out)
}

thread_local! {
    /// Set inside [`with_burn_ops`].
    static BURN_OPS: Cell<bool> = const { Cell::new(false) };
}

/// Runs `work` with burn's own operations on every tape this thread builds (and their backward
/// passes): the naive reference that benchmarks and tests compare these operations against.
pub fn with_burn_ops<T>(work: impl FnOnce() -> T) -> T {
    /// Restores the flag however `work` ends.
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            BURN_OPS.set(self.0);
        }
    }
    let _restore = Restore(BURN_OPS.replace(true));
    work()
}

/// An `f32` tensor on flex under autodiff, outside [`with_burn_ops`]. (A device with gradient
/// checkpointing is not burn's default tape: its tensors do not convert, and burn's ops run.)
fn on_tracked_flex(tensor: &Tensor<4>) -> bool {
    let device = tensor.device();
    device.is_autodiff() && device.inner() == Device::flex() && tensor.dtype() == DType::F32 && !BURN_OPS.get()
}

fn plain(tensor: FlexTensor) -> Tensor<4> {
    Tensor::from_primitive::<Flex>(tensor)
}

fn flex<const D: usize>(tensor: Tensor<D>) -> Option<FlexTensor> {
    tensor.try_into_primitive::<Flex>().ok()
}

/// `∂x = convᵀ(∂h, W)` of `y = act(h)`, `h = conv(x, W)`, for `∂y` = `out_grad`.
fn conv_input_grad(saved: &Saved, out_grad: &FlexTensor) -> FlexTensor {
    let Geometry { stride, padding, image } = saved.geometry;
    let outputs = saved.outputs();
    let ours = super::conv2d_input_grad(&plain(out_grad.clone()), &plain(saved.weight.clone()), stride, padding, image, outputs.as_ref().map(|(o, slope)| (o, *slope)), Layout::Nchw);
    ours.and_then(flex).unwrap_or_else(|| {
        let grad = saved.through_activation(out_grad.clone());
        Flex::conv2d_x_backward(saved.input.clone(), saved.weight.clone(), grad, saved.geometry.options())
    })
}

/// `(∂W, ∂b)` of `y = act(h)`, `h = conv(x, W) + b`, for `∂y` = `out_grad`, with `x` and the
/// activation from `saved` (for the transposed convolution's weight: `x` = its output's
/// cotangent, `out_grad` = its input `g`, the activation the one `g` passes first).
fn conv_parameter_grads(saved: &Saved, x: &FlexTensor, out_grad: &FlexTensor) -> (FlexTensor, FlexTensor) {
    let Geometry { stride, padding, .. } = saved.geometry;
    let outputs = saved.outputs();
    let leaky = outputs.as_ref().map(|(o, slope)| (o, *slope));
    let ours = super::conv2d_parameter_grads(&plain(x.clone()), &plain(out_grad.clone()), &plain(saved.weight.clone()), stride, padding, leaky);
    ours.and_then(|(w, b)| Some((flex(w)?, flex(b)?))).unwrap_or_else(|| {
        let grad = saved.through_activation(out_grad.clone());
        let sums = [0, 2, 3].into_iter().fold(grad.clone(), Flex::float_sum_dim);
        let bias_grad = Flex::float_reshape(sums, [saved.weight.shape()[0]].into());
        (Flex::conv2d_weight_backward(x.clone(), saved.weight.clone(), grad, saved.geometry.options()), bias_grad)
    })
}

/// `y = act(conv(x, W) + b)`, its parents `[x, W]` or `[x, W, b]`.
#[derive(Debug)]
struct Conv;

impl<const N: usize> Backward<Flex, N> for Conv {
    type State = Saved;

    fn backward(self, ops: Ops<Saved, N>, grads: &mut Gradients, _: &mut Checkpointer) {
        let mut parents = ops.parents.into_iter();
        let [x_node, weight_node, bias_node] = [0; 3].map(|_| parents.next().flatten());
        let out_grad = grads.consume::<Flex>(&ops.node);
        let saved = ops.state;
        if let Some(node) = x_node {
            grads.register::<Flex>(node.id, conv_input_grad(&saved, &out_grad));
        }
        if weight_node.is_some() || bias_node.is_some() {
            let (weight_grad, bias_grad) = conv_parameter_grads(&saved, &saved.input, &out_grad);
            if let Some(node) = weight_node {
                grads.register::<Flex>(node.id, weight_grad);
            }
            if let Some(node) = bias_node {
                grads.register::<Flex>(node.id, bias_grad);
            }
        }
    }
}

/// `u = convᵀ(D·g, W)` with `D` the saved activation's derivative (1 without one): `∂g =
/// D·conv(∂u, W)`, and `∂W` is the convolution weight gradient with `∂u` in the input's place
/// and `g` (through `D`) in the output gradient's.
#[derive(Debug)]
struct Transposed;

impl Backward<Flex, 2> for Transposed {
    type State = Saved;

    fn backward(self, ops: Ops<Saved, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [grad_node, weight_node] = ops.parents;
        let out_grad = grads.consume::<Flex>(&ops.node);
        let saved = ops.state;
        if let Some(node) = grad_node {
            let Geometry { stride, padding, .. } = saved.geometry;
            let ours = super::conv2d(&plain(out_grad.clone()), &plain(saved.weight.clone()), None, stride, padding, None, Layout::Nchw);
            let value = ours.and_then(flex).unwrap_or_else(|| Flex::conv2d(out_grad.clone(), saved.weight.clone(), None, saved.geometry.options()));
            grads.register::<Flex>(node.id, saved.through_activation(value));
        }
        if let Some(node) = weight_node {
            grads.register::<Flex>(node.id, conv_parameter_grads(&saved, &out_grad, &saved.input).0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;
    use burn::tensor::activation::leaky_relu;
    use burn::tensor::module::{conv_transpose2d as burn_conv_transpose2d, conv2d as burn_conv2d};
    use burn::tensor::ops::ConvTransposeOptions;

    /// `max |a − b| / max(1, max |b|)`.
    fn relative<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
        assert_eq!(a.dims(), b.dims());
        let scale = b.clone().abs().max().into_scalar::<f32>().max(1.0);
        (a - b).abs().max().into_scalar::<f32>() / scale
    }

    /// A penalty-like loss through both operations, against the same loss on burn's ops: `a =
    /// act(conv(x, W) + b)`, `u = convᵀ(D·(r·a), W)` with `D` the activation's derivative and a
    /// fixed `r` (in MEG's penalty the cotangent comes from the layers above, so it depends on
    /// the parameters too), loss `Σ a·c + Σ u²` — its gradients for `x`, `W` and `b` go through
    /// every backward pass above, the transposed one both ways (to the weight, and back to
    /// `a`). Without an activation (`act`, `D` the identity) and with a LeakyReLU fused.
    #[test]
    fn penalty_gradients_match_burns_tape() {
        let device = Device::flex();
        let ad = device.clone().autodiff();
        // batch, in, out, side, kernel, stride, padding: MEG's MNIST layers (5×5, stride 2, an
        // odd side so the transposed convolution needs output padding), CIFAR's, a 3 × 3 on RGB,
        // and a layer narrower than the forward kernel's tile (burn's forward, our transposed
        // convolution, whose input gradient then falls back to flex's).
        let shapes = [(2, 8, 16, 7, 5, 2, 2), (3, 16, 24, 8, 4, 2, 1), (2, 3, 16, 9, 3, 1, 1), (2, 8, 4, 6, 4, 2, 1)];
        for ((batch, inputs, outputs, side, kernel, stride, padding), leaky) in shapes.into_iter().flat_map(|shape| [(shape, None), (shape, Some(0.2))]) {
            let layer = format!("{inputs}->{outputs} k{kernel} s{stride} p{padding} on {side}×{}, LeakyReLU {leaky:?}", side + 1);
            let size = [side, side + 1];
            let x = Tensor::<4>::random([batch, inputs, size[0], size[1]], Distribution::Normal(0.0, 1.0), &device);
            let weight = Tensor::<4>::random([outputs, inputs, kernel, kernel], Distribution::Normal(0.0, 0.2), &device);
            let bias = Tensor::<1>::random([outputs], Distribution::Normal(0.0, 0.5), &device);
            let options = ConvOptions::new([stride; 2], [padding; 2], [1, 1], 1);
            let out = burn_conv2d(x.clone(), weight.clone(), None, options.clone());
            let [_, _, out_h, out_w] = out.dims();
            let [r, c] = [0, 1].map(|_| Tensor::<4>::from_data(Tensor::<4>::random(out.dims(), Distribution::Normal(0.0, 1.0), &device).to_data(), &ad));
            let extra = |input: usize, out: usize| input + 2 * padding - ((out - 1) * stride + kernel);
            let transposed = ConvTransposeOptions::new([stride; 2], [padding; 2], [extra(size[0], out_h), extra(size[1], out_w)], [1, 1], 1);

            // `ours`: this module's operations where they apply, burn's where they decline.
            let gradients = |ours: bool| {
                let [x, weight] = [&x, &weight].map(|t| Tensor::<4>::from_data(t.to_data(), &ad).require_grad());
                let bias = Tensor::<1>::from_data(bias.to_data(), &ad).require_grad();
                let applied = ours.then(|| conv2d(&x, &weight, Some(&bias), stride, padding, leaky)).flatten();
                if ours {
                    assert_eq!(applied.is_some(), outputs >= super::super::MIN_CHANNELS, "{layer}: forward taken where it applies");
                }
                let activations = applied.unwrap_or_else(|| {
                    let h = burn_conv2d(x.clone(), weight.clone(), Some(bias.clone()), options.clone());
                    leaky.map_or(h.clone(), |slope| leaky_relu(h, slope))
                });
                let cotangent = r.clone() * activations.clone();
                let derivative = leaky.map(|slope| (activations.clone(), slope));
                let input_grad = match ours {
                    true => conv_transpose2d(&cotangent, &weight, stride, padding, size, derivative.as_ref().map(|(a, slope)| (a, *slope))).expect("a flex tensor on the tape"),
                    false => {
                        let cotangent = match derivative {
                            Some((a, slope)) => cotangent * a.greater_elem(0.0).float().mul_scalar(1.0 - slope).add_scalar(slope).detach(),
                            None => cotangent,
                        };
                        burn_conv_transpose2d(cotangent, weight.clone(), None, transposed.clone())
                    }
                };
                let loss = (activations * c.clone()).sum() + input_grad.clone().square().sum();
                let grads = loss.backward();
                let host = |t: Option<Tensor<4>>| Tensor::<4>::from_data(t.expect("gradient").to_data(), &device);
                let bias_grad = Tensor::<1>::from_data(bias.grad(&grads).expect("bias gradient").to_data(), &device);
                (Tensor::<4>::from_data(input_grad.inner().to_data(), &device), host(x.grad(&grads)), host(weight.grad(&grads)), bias_grad)
            };
            let (value, x_grad, weight_grad, bias_grad) = gradients(true);
            let (value_ref, x_grad_ref, weight_grad_ref, bias_grad_ref) = gradients(false);
            for (what, error) in [
                ("transposed convolution", relative(value, value_ref)),
                ("input gradient", relative(x_grad, x_grad_ref)),
                ("weight gradient", relative(weight_grad, weight_grad_ref)),
                ("bias gradient", relative(bias_grad, bias_grad_ref)),
            ] {
                assert!(error < 2e-5, "{layer}: {what} differs by {error} (relative)");
            }
        }
    }

    #[test]
    fn declines_plain_tensors_burns_scope_and_checkpointing() {
        let device = Device::flex();
        let x = Tensor::<4>::random([1, 8, 6, 6], Distribution::Normal(0.0, 1.0), &device);
        let weight = Tensor::<4>::random([8, 8, 3, 3], Distribution::Normal(0.0, 1.0), &device);
        assert!(conv2d(&x, &weight, None, 1, 1, None).is_none());
        assert!(conv_transpose2d(&x, &weight, 1, 1, [6, 6], None).is_none());
        let ad = device.clone().autodiff();
        let tracked = [&x, &weight].map(|t| Tensor::<4>::from_data(t.to_data(), &ad).require_grad());
        assert!(conv2d(&tracked[0], &tracked[1], None, 1, 1, None).is_some());
        assert!(with_burn_ops(|| conv2d(&tracked[0], &tracked[1], None, 1, 1, None)).is_none());
        assert!(with_burn_ops(|| conv_transpose2d(&tracked[0], &tracked[1], 1, 1, [6, 6], None)).is_none());
        // The flag is this thread's and ends with the call, a panicking one too.
        let other = std::thread::scope(|scope| scope.spawn(|| with_burn_ops(|| BURN_OPS.get()) && !BURN_OPS.get()).join());
        assert!(other.is_ok_and(|inside_then_restored| inside_then_restored));
        assert!(std::panic::catch_unwind(|| with_burn_ops(|| panic!("inside"))).is_err());
        assert!(conv2d(&tracked[0], &tracked[1], None, 1, 1, None).is_some(), "restored after a panic");
        // Gradient checkpointing is not the tape these operations join.
        let checkpointed = device.autodiff().gradient_checkpointing();
        let [x, weight] = [x, weight].map(|t| Tensor::<4>::from_data(t.to_data(), &checkpointed).require_grad());
        assert!(conv2d(&x, &weight, None, 1, 1, None).is_none());
    }
}
