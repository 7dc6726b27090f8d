//! Feed-forward layer stacks with an explicit input-gradient.
//!
//! Every network of every family is a [`Stack`]: a chain of blocks, each an operation
//! (convolution, transposed convolution or dense layer), an optional BatchNorm and an
//! activation. Activations always travel as 4-D tensors `[batch, channels, height, width]`;
//! vector data uses `height = width = 1`.
//!
//! Besides the forward pass, a stack computes vector–Jacobian products with ordinary tensor
//! ops ([`Stack::vjp`]): the forward pass keeps what the transposed path needs (pre-activations,
//! normalised BatchNorm inputs) and the backward walk uses `conv_transpose2d` with the same
//! weights, the transposed dense weight and the activation derivative masks. This gives
//! ∂f/∂x with no autodiff tape (fast sampling, and the only option in the browser), and because
//! it is built from differentiable ops, autodiff through it gives the double backward that a
//! gradient penalty ‖∂E/∂x‖² needs.

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::Distribution;
use burn::tensor::module::{conv_transpose2d, conv2d};
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};
use serde::{Deserialize, Serialize};

use crate::cpu_conv::{self, Layout};
use crate::error::ArchError;

/// Largest channel count, feature count or spatial side a stack accepts.
pub const MAX_WIDTH: usize = 1 << 16;
/// Largest kernel side.
pub const MAX_KERNEL: usize = 64;
/// Largest number of parameters a stack may hold (1 GiB of f32).
pub const MAX_PARAMETERS: usize = 1 << 28;

/// BatchNorm parameter names, in file order.
const NORM_PARAMETERS: [&str; 4] = ["gamma", "beta", "running_mean", "running_var"];

/// Element-wise nonlinearity after a block.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Activation {
    /// No nonlinearity.
    Identity,
    /// `max(x, 0)`.
    Relu,
    /// `x` for positive inputs, `slope·x` otherwise.
    LeakyRelu {
        /// Slope for negative inputs.
        slope: f64,
    },
    /// Hyperbolic tangent.
    Tanh,
}

impl Activation {
    /// LeakyReLU with the given slope (plain ReLU when the slope is zero).
    pub fn leaky(slope: f64) -> Self {
        if slope == 0.0 {
            Self::Relu
        } else {
            Self::LeakyRelu { slope }
        }
    }

    fn apply(self, y: Tensor<4>) -> Tensor<4> {
        match self {
            Self::Identity => y,
            Self::Relu => y.clamp_min(0.0),
            // burn's own op is one pass (comparison, scaling and select were three).
            Self::LeakyRelu { slope } => burn::tensor::activation::leaky_relu(y, slope),
            Self::Tanh => y.tanh(),
        }
    }

    /// The slope of a LeakyReLU (0: ReLU) whose derivative its output alone decides, which
    /// [`cpu_conv`] can fuse into a convolution.
    fn fusable_slope(self) -> Option<f64> {
        match self {
            Self::Relu => Some(0.0),
            Self::LeakyRelu { slope } if slope > 0.0 => Some(slope),
            _ => None,
        }
    }

    /// What [`Activation::backward`] needs of the forward pass, given the pre-activation `y`
    /// and the output `a`: the output where it alone decides the derivative (ReLU, LeakyReLU
    /// with a positive slope — the same sign as `y` —, tanh), else `y`; nothing for the
    /// identity. One tensor per block instead of two halves the trace a chain holds.
    fn saved(self, y: Tensor<4>, a: &Tensor<4>) -> Option<Tensor<4>> {
        match self {
            Self::Identity => None,
            Self::LeakyRelu { slope } if slope <= 0.0 => Some(y),
            Self::Relu | Self::LeakyRelu { .. } | Self::Tanh => Some(a.clone()),
        }
    }

    /// Multiplies the cotangent by the derivative, given what [`Activation::saved`] kept.
    fn backward(self, grad: Tensor<4>, saved: Option<&Tensor<4>>) -> Tensor<4> {
        match (self, saved) {
            (Self::Relu, Some(s)) => grad * s.clone().greater_elem(0.0).float(),
            (Self::LeakyRelu { slope }, Some(s)) => {
                let positive = s.clone().greater_elem(0.0).float();
                grad * positive.mul_scalar(1.0 - slope).add_scalar(slope)
            }
            (Self::Tanh, Some(a)) => grad * a.clone().square().neg().add_scalar(1.0),
            // The identity keeps nothing and passes the cotangent through.
            _ => grad,
        }
    }
}

/// How weights are drawn at initialisation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Init {
    /// Weights `N(0, std²)`, biases zero (MatConvNet and DCGAN-style codes).
    Normal {
        /// Standard deviation.
        std: f64,
    },
    /// PyTorch's default: weights and biases `U(−1/√fan_in, 1/√fan_in)`.
    TorchDefault,
    /// Xavier/Glorot uniform weights, zero biases (TensorFlow codes).
    XavierUniform,
}

/// Which statistics BatchNorm normalises with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NormMode {
    /// Statistics of the current batch, always (multigrid nets, generators while training).
    BatchStatistics,
    /// Stored running statistics (generators in evaluation mode).
    RunningStatistics,
}

/// BatchNorm settings of a block.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct NormSpec {
    /// Added to the variance.
    pub eps: f64,
    /// Statistics used.
    pub mode: NormMode,
    /// Standard deviation of the gain's initialisation around 1 (0 = exactly 1).
    pub gain_init_std: f64,
}

impl NormSpec {
    /// Batch-statistics BatchNorm with gain 1 and the given epsilon.
    pub fn batch(eps: f64) -> Self {
        Self { eps, mode: NormMode::BatchStatistics, gain_init_std: 0.0 }
    }
}

/// The linear operation of a block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum OpSpec {
    /// 2-D convolution with a square kernel.
    Conv {
        /// Output channels.
        out_channels: usize,
        /// Kernel side.
        kernel: usize,
        /// Stride.
        stride: usize,
        /// Zero padding on every side.
        padding: usize,
        /// Whether a bias is added.
        bias: bool,
    },
    /// 2-D transposed convolution with a square kernel.
    ConvTranspose {
        /// Output channels.
        out_channels: usize,
        /// Kernel side.
        kernel: usize,
        /// Stride.
        stride: usize,
        /// Padding removed from every side.
        padding: usize,
        /// Extra rows/columns added at the bottom/right.
        output_padding: usize,
        /// Whether a bias is added.
        bias: bool,
    },
    /// Dense layer on the flattened input; the output is reshaped to `reshape` (C, H, W) or
    /// to `[out_features, 1, 1]`.
    Dense {
        /// Output features.
        out_features: usize,
        /// Whether a bias is added.
        bias: bool,
        /// Output layout `[C, H, W]` with `C·H·W = out_features`.
        reshape: Option<[usize; 3]>,
    },
}

/// One block: operation, optional BatchNorm, activation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerSpec {
    /// Linear operation.
    #[serde(flatten)]
    pub op: OpSpec,
    /// BatchNorm after the operation.
    pub norm: Option<NormSpec>,
    /// Activation after the norm.
    pub act: Activation,
    /// Weight initialisation.
    pub init: Init,
}

impl LayerSpec {
    /// Convolution block without BatchNorm.
    pub fn conv(out_channels: usize, kernel: usize, stride: usize, padding: usize, act: Activation, init: Init) -> Self {
        Self { op: OpSpec::Conv { out_channels, kernel, stride, padding, bias: true }, norm: None, act, init }
    }

    /// Transposed-convolution block without BatchNorm.
    pub fn conv_transpose(
        out_channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        output_padding: usize,
        act: Activation,
        init: Init,
    ) -> Self {
        let op = OpSpec::ConvTranspose { out_channels, kernel, stride, padding, output_padding, bias: true };
        Self { op, norm: None, act, init }
    }

    /// Dense block without BatchNorm, output `[out_features, 1, 1]`.
    pub fn dense(out_features: usize, act: Activation, init: Init) -> Self {
        Self { op: OpSpec::Dense { out_features, bias: true, reshape: None }, norm: None, act, init }
    }

    /// Adds BatchNorm to the block.
    pub fn with_norm(mut self, norm: NormSpec) -> Self {
        self.norm = Some(norm);
        self
    }
}

/// Architecture of a stack: input layout and blocks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StackSpec {
    /// Input `[channels, height, width]`.
    pub input: [usize; 3],
    /// Blocks from input to output.
    pub layers: Vec<LayerSpec>,
}

impl StackSpec {
    /// Shape `[C, H, W]` after every block, checking that each block fits its input.
    pub fn shapes(&self) -> Result<Vec<[usize; 3]>, ArchError> {
        let check = |what: &str, value: usize, max: usize| {
            if value == 0 || value > max {
                Err(ArchError::OutOfRange { what: what.to_string(), value, max })
            } else {
                Ok(())
            }
        };
        let [c, h, w] = self.input;
        check("input channels", c, MAX_WIDTH)?;
        check("input height", h, MAX_WIDTH)?;
        check("input width", w, MAX_WIDTH)?;
        let mut shape = self.input;
        let mut shapes = Vec::with_capacity(self.layers.len());
        let mut parameters = 0usize;
        for (index, layer) in self.layers.iter().enumerate() {
            let [c, h, w] = shape;
            shape = match layer.op {
                OpSpec::Conv { out_channels, kernel, stride, padding, .. } => {
                    check("output channels", out_channels, MAX_WIDTH)?;
                    check("kernel size", kernel, MAX_KERNEL)?;
                    check("stride", stride, MAX_KERNEL)?;
                    check("padding", padding + 1, MAX_KERNEL)?;
                    let side = |n: usize| (n + 2 * padding).checked_sub(kernel).map(|r| r / stride + 1);
                    match (side(h), side(w)) {
                        (Some(oh), Some(ow)) => {
                            parameters = parameters.saturating_add(out_channels * c * kernel * kernel + out_channels);
                            [out_channels, oh, ow]
                        }
                        _ => return Err(ArchError::KernelLargerThanInput { layer: index, kernel, height: h, width: w }),
                    }
                }
                OpSpec::ConvTranspose { out_channels, kernel, stride, padding, output_padding, .. } => {
                    check("output channels", out_channels, MAX_WIDTH)?;
                    check("kernel size", kernel, MAX_KERNEL)?;
                    check("stride", stride, MAX_KERNEL)?;
                    if output_padding >= stride {
                        return Err(ArchError::Invalid { layer: index, reason: "output padding must be smaller than the stride".into() });
                    }
                    let side = |n: usize| transposed_output_side(n, kernel, stride, padding, output_padding);
                    match (side(h), side(w)) {
                        (Some(oh), Some(ow)) => {
                            check("output height", oh, MAX_WIDTH)?;
                            check("output width", ow, MAX_WIDTH)?;
                            parameters = parameters.saturating_add(out_channels * c * kernel * kernel + out_channels);
                            [out_channels, oh, ow]
                        }
                        _ => return Err(ArchError::Invalid { layer: index, reason: "padding removes the whole output".into() }),
                    }
                }
                OpSpec::Dense { out_features, reshape, .. } => {
                    check("output features", out_features, MAX_WIDTH * 64)?;
                    let inputs = c.saturating_mul(h).saturating_mul(w);
                    parameters = parameters.saturating_add(inputs.saturating_mul(out_features) + out_features);
                    match reshape {
                        Some(r) if r.iter().product::<usize>() == out_features && !r.contains(&0) => r,
                        Some(r) => {
                            return Err(ArchError::Invalid {
                                layer: index,
                                reason: format!("reshape {r:?} does not hold {out_features} features"),
                            });
                        }
                        None => [out_features, 1, 1],
                    }
                }
            };
            if parameters > MAX_PARAMETERS {
                return Err(ArchError::OutOfRange { what: "parameter count".into(), value: parameters, max: MAX_PARAMETERS });
            }
            shapes.push(shape);
        }
        if shapes.is_empty() {
            return Err(ArchError::Empty);
        }
        Ok(shapes)
    }

    /// Names and shapes of the parameters [`Stack::parameters`] yields, without building
    /// anything.
    pub fn parameter_shapes(&self) -> Result<Vec<(String, Vec<usize>)>, ArchError> {
        let shapes = self.shapes()?;
        let mut in_shape = self.input;
        let mut out = Vec::new();
        for (index, (layer, out_shape)) in self.layers.iter().zip(&shapes).enumerate() {
            let [c, h, w] = in_shape;
            let (weight, out_channels, bias) = match layer.op {
                OpSpec::Conv { out_channels, kernel, bias, .. } => (vec![out_channels, c, kernel, kernel], out_channels, bias),
                OpSpec::ConvTranspose { out_channels, kernel, bias, .. } => (vec![c, out_channels, kernel, kernel], out_channels, bias),
                OpSpec::Dense { out_features, bias, .. } => (vec![c * h * w, out_features], out_features, bias),
            };
            out.push((format!("{index}.weight"), weight));
            if bias {
                out.push((format!("{index}.bias"), vec![out_channels]));
            }
            if layer.norm.is_some() {
                for name in NORM_PARAMETERS {
                    out.push((format!("{index}.{name}"), vec![out_shape[0]]));
                }
            }
            in_shape = *out_shape;
        }
        Ok(out)
    }

    /// Output `[C, H, W]` of the last block.
    pub fn output(&self) -> Result<[usize; 3], ArchError> {
        self.shapes().map(|s| s[s.len() - 1])
    }

    /// Validates the spec and builds the stack with freshly initialised weights.
    pub fn init(&self, device: &Device) -> Result<Stack, ArchError> {
        let shapes = self.shapes()?;
        let mut in_shape = self.input;
        let mut blocks = Vec::with_capacity(self.layers.len());
        for (layer, out_shape) in self.layers.iter().zip(&shapes) {
            blocks.push(Block::init(layer, in_shape, *out_shape, device));
            in_shape = *out_shape;
        }
        Ok(Stack { blocks, input: self.input })
    }
}

fn random_weight<const D: usize>(shape: [usize; D], fan_in: usize, fan_out: usize, init: Init, device: &Device) -> Tensor<D> {
    let distribution = match init {
        Init::Normal { std } => Distribution::Normal(0.0, std),
        Init::TorchDefault => {
            let bound = 1.0 / (fan_in as f64).sqrt();
            Distribution::Uniform(-bound, bound)
        }
        Init::XavierUniform => {
            let bound = (6.0 / (fan_in + fan_out) as f64).sqrt();
            Distribution::Uniform(-bound, bound)
        }
    };
    Tensor::random(shape, distribution, device)
}

fn random_bias(channels: usize, fan_in: usize, init: Init, device: &Device) -> Param<Tensor<1>> {
    let bias = match init {
        Init::TorchDefault => {
            let bound = 1.0 / (fan_in as f64).sqrt();
            Tensor::random([channels], Distribution::Uniform(-bound, bound), device)
        }
        Init::Normal { .. } | Init::XavierUniform => Tensor::zeros([channels], device),
    };
    Param::from_tensor(bias)
}

/// Convolution weights `[out, in, k, k]` and bias `[out]`.
#[derive(Module, Debug)]
pub struct ConvOp {
    /// Weight `[out_channels, in_channels, k, k]`.
    pub weight: Param<Tensor<4>>,
    /// Bias `[out_channels]`.
    pub bias: Option<Param<Tensor<1>>>,
    /// Stride.
    #[module(skip)]
    pub stride: usize,
    /// Zero padding.
    #[module(skip)]
    pub padding: usize,
}

/// Transposed-convolution weights `[in, out, k, k]` and bias `[out]`.
#[derive(Module, Debug)]
pub struct ConvTransposeOp {
    /// Weight `[in_channels, out_channels, k, k]`.
    pub weight: Param<Tensor<4>>,
    /// Bias `[out_channels]`.
    pub bias: Option<Param<Tensor<1>>>,
    /// Stride.
    #[module(skip)]
    pub stride: usize,
    /// Padding.
    #[module(skip)]
    pub padding: usize,
    /// Output padding.
    #[module(skip)]
    pub output_padding: usize,
}

/// Dense weights `[in, out]` and bias `[out]`.
#[derive(Module, Debug)]
pub struct DenseOp {
    /// Weight `[in_features, out_features]`.
    pub weight: Param<Tensor<2>>,
    /// Bias `[out_features]`.
    pub bias: Option<Param<Tensor<1>>>,
    /// Output layout `[C, H, W]`.
    #[module(skip)]
    pub out_shape: [usize; 3],
}

/// The linear operation of a block.
#[derive(Module, Debug)]
pub enum Op {
    /// Convolution.
    Conv(ConvOp),
    /// Transposed convolution.
    ConvTranspose(ConvTransposeOp),
    /// Dense layer.
    Dense(DenseOp),
}

/// BatchNorm parameters; running statistics never receive gradients.
#[derive(Module, Debug)]
pub struct Norm {
    /// Gain `[C]`.
    pub gamma: Param<Tensor<1>>,
    /// Shift `[C]`.
    pub beta: Param<Tensor<1>>,
    /// Running mean `[C]` (used in [`NormMode::RunningStatistics`]).
    pub running_mean: Param<Tensor<1>>,
    /// Running variance `[C]`.
    pub running_var: Param<Tensor<1>>,
    /// Variance epsilon.
    #[module(skip)]
    pub eps: f64,
    /// Statistics used.
    #[module(skip)]
    pub mode: NormMode,
}

/// One block of a [`Stack`].
#[derive(Module, Debug)]
pub struct Block {
    /// Linear operation.
    pub op: Op,
    /// Optional BatchNorm.
    pub norm: Option<Norm>,
    /// Activation.
    #[module(skip)]
    pub act: Activation,
}

/// What the transposed path of one block needs from the forward pass.
#[derive(Debug, Clone)]
struct BlockTrace {
    input_dims: [usize; 4],
    /// The block's input, kept for [`Stack::parameter_vjp`] only.
    input: Option<Tensor<4>>,
    /// Normalised input `x̂` and `1/√(var+ε)` `[1, C, 1, 1]` of a BatchNorm.
    norm: Option<(Tensor<4>, Tensor<4>)>,
    /// What the activation's derivative needs ([`Activation::saved`]).
    activation: Option<Tensor<4>>,
}

/// Saved forward pass of a [`Stack`], consumed by [`Stack::vjp`].
#[derive(Debug, Clone)]
pub struct Trace {
    blocks: Vec<BlockTrace>,
}

impl Block {
    fn init(spec: &LayerSpec, in_shape: [usize; 3], out_shape: [usize; 3], device: &Device) -> Self {
        let [c_in, h_in, w_in] = in_shape;
        let op = match spec.op {
            OpSpec::Conv { out_channels, kernel, stride, padding, bias } => {
                let fan_in = c_in * kernel * kernel;
                let fan_out = out_channels * kernel * kernel;
                Op::Conv(ConvOp {
                    weight: Param::from_tensor(random_weight([out_channels, c_in, kernel, kernel], fan_in, fan_out, spec.init, device)),
                    bias: bias.then(|| random_bias(out_channels, fan_in, spec.init, device)),
                    stride,
                    padding,
                })
            }
            OpSpec::ConvTranspose { out_channels, kernel, stride, padding, output_padding, bias } => {
                // PyTorch computes a transposed convolution's fan-in from its weight's dim 1.
                let fan_in = out_channels * kernel * kernel;
                let fan_out = c_in * kernel * kernel;
                Op::ConvTranspose(ConvTransposeOp {
                    weight: Param::from_tensor(random_weight([c_in, out_channels, kernel, kernel], fan_in, fan_out, spec.init, device)),
                    bias: bias.then(|| random_bias(out_channels, fan_in, spec.init, device)),
                    stride,
                    padding,
                    output_padding,
                })
            }
            OpSpec::Dense { out_features, bias, .. } => {
                let fan_in = c_in * h_in * w_in;
                Op::Dense(DenseOp {
                    weight: Param::from_tensor(random_weight([fan_in, out_features], fan_in, out_features, spec.init, device)),
                    bias: bias.then(|| random_bias(out_features, fan_in, spec.init, device)),
                    out_shape,
                })
            }
        };
        let norm = spec.norm.map(|norm| {
            let channels = out_shape[0];
            let gamma = if norm.gain_init_std > 0.0 {
                Tensor::random([channels], Distribution::Normal(1.0, norm.gain_init_std), device)
            } else {
                Tensor::ones([channels], device)
            };
            Norm {
                gamma: Param::from_tensor(gamma),
                beta: Param::from_tensor(Tensor::zeros([channels], device)),
                running_mean: Param::from_tensor(Tensor::zeros([channels], device)).set_require_grad(false),
                running_var: Param::from_tensor(Tensor::ones([channels], device)).set_require_grad(false),
                eps: norm.eps,
                mode: norm.mode,
            }
        });
        Self { op, norm, act: spec.act }
    }

    fn apply_op(&self, x: Tensor<4>) -> Tensor<4> {
        match &self.op {
            // burn's order: a BatchNorm or an activation of flex's runs next.
            Op::Conv(conv) => convolution(x, conv.weight.val(), conv.bias.as_ref().map(Param::val), conv.stride, conv.padding),
            Op::ConvTranspose(conv) => {
                let weight = conv.weight.val();
                let bias = conv.bias.as_ref().map(Param::val);
                let [_, _, h, w] = x.dims();
                let [_, out_channels, k, _] = weight.dims();
                let side = |input: usize| transposed_output_side(input, k, conv.stride, conv.padding, conv.output_padding);
                let ours = match (side(h), side(w)) {
                    (Some(oh), Some(ow)) => cpu_conv::conv2d_input_grad(&x, &weight, conv.stride, conv.padding, [oh, ow], None, Layout::Nchw),
                    _ => None,
                };
                match (ours, bias) {
                    (Some(y), Some(bias)) => y + bias.reshape([1, out_channels, 1, 1]),
                    (Some(y), None) => y,
                    (None, bias) => conv_transpose2d(
                        x,
                        weight,
                        bias,
                        ConvTransposeOptions::new([conv.stride; 2], [conv.padding; 2], [conv.output_padding; 2], [1, 1], 1),
                    ),
                }
            }
            Op::Dense(dense) => {
                let [n, c, h, w] = x.dims();
                let flat = x.reshape([n, c * h * w]).matmul(dense.weight.val());
                let flat = match &dense.bias {
                    Some(bias) => flat + bias.val().unsqueeze_dim(0),
                    None => flat,
                };
                let [oc, oh, ow] = dense.out_shape;
                flat.reshape([n, oc, oh, ow])
            }
        }
    }

    /// The convolution and LeakyReLU slope of a block whose kernels on the CPU fuse the two
    /// (see [`cpu_conv`]): no BatchNorm between them.
    fn fusion(&self) -> Option<(&ConvOp, f64)> {
        match (&self.op, &self.norm, self.act.fusable_slope()) {
            (Op::Conv(conv), None, Some(slope)) => Some((conv, slope)),
            _ => None,
        }
    }

    /// The block's output in one CPU pass — channels-last (the next convolution reads it as it
    /// lies), or under autodiff one tape operation in burn's order ([`cpu_conv::tracked`]) —,
    /// or `None` where the ops run one by one (a BatchNorm between them, another activation,
    /// another backend).
    fn forward_fused(&self, x: &Tensor<4>) -> Option<Tensor<4>> {
        let (conv, slope) = self.fusion()?;
        let bias = conv.bias.as_ref().map(Param::val);
        cpu_conv::conv2d(x, &conv.weight.val(), bias.as_ref(), conv.stride, conv.padding, Some(slope), Layout::Nhwc)
    }

    /// The cotangent of the block's input from that of its output in one CPU pass, given the
    /// block's trace, stored in `layout`, or `None` where [`Block::forward_fused`] would not fuse.
    fn backward_fused(&self, grad: &Tensor<4>, trace: &BlockTrace, layout: Layout) -> Option<Tensor<4>> {
        let (conv, slope, outputs) = self.fused_parts(trace)?;
        let [_, _, h, w] = trace.input_dims;
        cpu_conv::conv2d_input_grad(grad, &conv.weight.val(), conv.stride, conv.padding, [h, w], Some((outputs, slope)), layout)
    }

    /// The BatchNorm and LeakyReLU slope (0: ReLU) of a block whose CPU kernels fuse the two:
    /// batch statistics, an activation whose output decides its derivative.
    fn norm_fusion(&self) -> Option<(&Norm, f64)> {
        let norm = self.norm.as_ref().filter(|norm| norm.mode == NormMode::BatchStatistics)?;
        Some((norm, self.act.fusable_slope()?))
    }

    /// BatchNorm and activation of the operation's output `h` by the CPU's fused kernel
    /// ([`cpu_conv::batch_norm_leaky`]): the block's output, `x̂` and `1/σ`, or `None` where
    /// [`Block::norm_fusion`] says no or off the CPU.
    fn norm_forward_fused(&self, h: &Tensor<4>) -> Option<(Tensor<4>, Tensor<4>, Tensor<4>)> {
        let (norm, slope) = self.norm_fusion()?;
        cpu_conv::batch_norm_leaky(h, &norm.gamma.val(), &norm.beta.val(), norm.eps, slope)
    }

    /// The cotangent of the operation's output from that of the block's output through the
    /// activation and the BatchNorm by the CPU's fused kernel, with the gain's and shift's
    /// gradients.
    fn norm_backward_fused(&self, grad: &Tensor<4>, trace: &BlockTrace) -> Option<(Tensor<4>, Tensor<1>, Tensor<1>)> {
        let (norm, slope) = self.norm_fusion()?;
        let (normalised, inv_std) = trace.norm.as_ref()?;
        cpu_conv::batch_norm_leaky_backward(grad, trace.activation.as_ref()?, normalised, inv_std, &norm.gamma.val(), slope)
    }

    /// The convolution, the LeakyReLU's slope and its outputs of a block whose backward pass
    /// can apply the activation's derivative inside the kernels, given its trace.
    fn fused_parts<'a>(&'a self, trace: &'a BlockTrace) -> Option<(&'a ConvOp, f64, &'a Tensor<4>)> {
        let (conv, slope) = self.fusion()?;
        Some((conv, slope, trace.activation.as_ref()?))
    }

    /// The cotangent of the block's input from that of its output, fused where it can be;
    /// `layout` is where the CPU kernels store it.
    fn input_backward(&self, grad: Tensor<4>, trace: &BlockTrace, layout: Layout) -> Tensor<4> {
        if let Some(input_grad) = self.backward_fused(&grad, trace, layout) {
            return input_grad;
        }
        let grad = match self.norm_backward_fused(&grad, trace) {
            Some((grad, ..)) => grad,
            None => {
                let grad = self.act.backward(grad, trace.activation.as_ref());
                match (&self.norm, &trace.norm) {
                    (Some(norm), Some((normalised, inv_std))) => norm.backward(grad, normalised, inv_std),
                    _ => grad,
                }
            }
        };
        self.op_backward(grad, trace.input_dims, layout)
    }

    /// The block's output, fused where it can be.
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        if let Some(a) = self.forward_fused(&x) {
            return a;
        }
        let h = self.apply_op(x);
        if let Some((a, ..)) = self.norm_forward_fused(&h) {
            return a;
        }
        let y = match &self.norm {
            Some(norm) => norm.forward(h).0,
            None => h,
        };
        self.act.apply(y)
    }

    /// The block's parameter gradients (visit order) for `grad` on its output, and the
    /// cotangent of its input where `input_layout` says how to store it; `None` where there is
    /// no explicit path.
    fn parameter_backward(&self, grad: Tensor<4>, saved: &BlockTrace, input_layout: Option<Layout>) -> Option<(Vec<Option<Tensor<1>>>, Option<Tensor<4>>)> {
        let input = saved.input.as_ref()?;
        if let Some((conv, slope, outputs)) = self.fused_parts(saved) {
            // Activation derivative applied inside the kernels, as in the fused forward pass.
            let (weight, bias) = cpu_conv::conv2d_parameter_grads(input, &grad, &conv.weight.val(), conv.stride, conv.padding, Some((outputs, slope)))?;
            let input_grad = input_layout.map(|layout| self.input_backward(grad, saved, layout));
            return Some((op_gradients(weight, bias, conv.bias.is_some()), input_grad));
        }
        // Running statistics receive no gradient.
        let (grad, norm_gradients) = match (self.norm_backward_fused(&grad, saved), &self.norm, &saved.norm) {
            (Some((grad, gamma, beta)), ..) => (grad, vec![Some(gamma), Some(beta), None, None]),
            (None, Some(norm), Some((normalised, inv_std))) => {
                let grad = self.act.backward(grad, saved.activation.as_ref());
                let channels = norm.gamma.dims()[0];
                let per_channel = |t: Tensor<4>| Some(t.sum_dims(&[0, 2, 3]).reshape([channels]));
                let gamma = per_channel(grad.clone() * normalised.clone());
                let beta = per_channel(grad.clone());
                (norm.backward(grad, normalised, inv_std), vec![gamma, beta, None, None])
            }
            (None, None, _) => (self.act.backward(grad, saved.activation.as_ref()), Vec::new()),
            (None, Some(_), None) => return None,
        };
        let op = match &self.op {
            Op::Conv(conv) => {
                let (weight, bias) = cpu_conv::conv2d_parameter_grads(input, &grad, &conv.weight.val(), conv.stride, conv.padding, None)?;
                op_gradients(weight, bias, conv.bias.is_some())
            }
            Op::Dense(dense) => {
                let [n, c, h, w] = saved.input_dims;
                let [_, oc, oh, ow] = grad.dims();
                let flat = grad.clone().reshape([n, oc * oh * ow]);
                let weight = input.clone().reshape([n, c * h * w]).transpose().matmul(flat.clone());
                op_gradients(weight, flat.sum_dim(0), dense.bias.is_some())
            }
            Op::ConvTranspose(_) => return None,
        };
        let input_grad = input_layout.map(|layout| self.op_backward(grad, saved.input_dims, layout));
        Some(([op, norm_gradients].concat(), input_grad))
    }

    /// Cotangent of the operation's input given the cotangent of its output (stored in
    /// `layout` where the CPU kernels compute it).
    fn op_backward(&self, grad: Tensor<4>, input_dims: [usize; 4], layout: Layout) -> Tensor<4> {
        let [n, c, h, w] = input_dims;
        match &self.op {
            Op::Conv(conv) => {
                let weight = conv.weight.val();
                if let Some(input_grad) = cpu_conv::conv2d_input_grad(&grad, &weight, conv.stride, conv.padding, [h, w], None, layout) {
                    return input_grad;
                }
                let [_, _, gh, gw] = grad.dims();
                let [_, _, k, _] = conv.weight.dims();
                // The transposed conv reproduces the input size only up to the rows the forward
                // stride skipped; output padding restores them.
                let extra = |input: usize, out: usize| (input + 2 * conv.padding) - ((out - 1) * conv.stride + k);
                let options = ConvTransposeOptions::new(
                    [conv.stride; 2],
                    [conv.padding; 2],
                    [extra(h, gh), extra(w, gw)],
                    [1, 1],
                    1,
                );
                transposed_conv_exact(grad, weight, options, [h, w])
            }
            Op::ConvTranspose(conv) => convolution(grad, conv.weight.val(), None, conv.stride, conv.padding),
            Op::Dense(dense) => {
                let [_, oc, oh, ow] = grad.dims();
                grad.reshape([n, oc * oh * ow]).matmul(dense.weight.val().transpose()).reshape([n, c, h, w])
            }
        }
    }
}

/// Output side of a transposed convolution on an input side of `input`; `None` where padding
/// removes the whole output.
fn transposed_output_side(input: usize, kernel: usize, stride: usize, padding: usize, output_padding: usize) -> Option<usize> {
    (input.checked_sub(1)? * stride + kernel + output_padding).checked_sub(2 * padding).filter(|&side| side > 0)
}

/// `conv2d(x, weight, bias)` with stride and padding on both axes, in burn's order: the CPU
/// kernels where they apply (plain or on the tape), burn's op elsewhere.
fn convolution(x: Tensor<4>, weight: Tensor<4>, bias: Option<Tensor<1>>, stride: usize, padding: usize) -> Tensor<4> {
    match cpu_conv::conv2d(&x, &weight, bias.as_ref(), stride, padding, None, Layout::Nchw) {
        Some(y) => y,
        None => conv2d(x, weight, bias, ConvOptions::new([stride; 2], [padding; 2], [1, 1], 1)),
    }
}

/// A weight's and bias's gradients, flattened, in visit order (no entry for an absent bias).
fn op_gradients<const D: usize, const B: usize>(weight: Tensor<D>, bias: Tensor<B>, has_bias: bool) -> Vec<Option<Tensor<1>>> {
    let mut out = vec![Some(weight.flatten(0, D - 1))];
    if has_bias {
        out.push(Some(bias.flatten(0, B - 1)));
    }
    out
}

/// `conv_transpose2d` whose output is exactly `size`. Backends reject output padding that is
/// not smaller than the stride (it happens when the forward conv skipped several trailing
/// rows); the missing rows/columns received no gradient, so they are zero-padded.
fn transposed_conv_exact(grad: Tensor<4>, weight: Tensor<4>, options: ConvTransposeOptions<2>, size: [usize; 2]) -> Tensor<4> {
    let stride = options.stride;
    let fits = options.padding_out.iter().zip(stride.iter()).all(|(p, s)| p < s);
    if fits {
        return conv_transpose2d(grad, weight, None, options);
    }
    let clipped = ConvTransposeOptions::new(
        options.stride,
        options.padding,
        [options.padding_out[0] % stride[0], options.padding_out[1] % stride[1]],
        options.dilation,
        options.groups,
    );
    let out = conv_transpose2d(grad, weight, None, clipped);
    let [n, c, h, w] = out.dims();
    let mut full = Tensor::zeros([n, c, size[0], size[1]], &out.device());
    full = full.slice_assign([0..n, 0..c, 0..h, 0..w], out);
    full
}

impl Norm {
    /// Parameters in file order.
    fn named(&self) -> [(&'static str, &Param<Tensor<1>>); 4] {
        let [gamma, beta, mean, var] = NORM_PARAMETERS;
        [(gamma, &self.gamma), (beta, &self.beta), (mean, &self.running_mean), (var, &self.running_var)]
    }

    /// Applies the norm; returns the output and, in batch mode, `(x̂, 1/σ)` for the backward.
    fn forward(&self, h: Tensor<4>) -> (Tensor<4>, Tensor<4>, Tensor<4>) {
        let channels = self.gamma.dims()[0];
        let gamma = self.gamma.val().reshape([1, channels, 1, 1]);
        let beta = self.beta.val().reshape([1, channels, 1, 1]);
        let (mean, var) = match self.mode {
            NormMode::BatchStatistics => {
                let mean = h.clone().mean_dims(&[0, 2, 3]);
                let var = (h.clone() - mean.clone()).square().mean_dims(&[0, 2, 3]);
                (mean, var)
            }
            NormMode::RunningStatistics => (
                self.running_mean.val().reshape([1, channels, 1, 1]),
                self.running_var.val().reshape([1, channels, 1, 1]),
            ),
        };
        let inv_std = var.add_scalar(self.eps).sqrt().recip();
        let normalised = (h - mean) * inv_std.clone();
        let out = normalised.clone() * gamma + beta;
        (out, normalised, inv_std)
    }

    fn backward(&self, grad: Tensor<4>, normalised: &Tensor<4>, inv_std: &Tensor<4>) -> Tensor<4> {
        let channels = self.gamma.dims()[0];
        let gamma = self.gamma.val().reshape([1, channels, 1, 1]);
        let grad_hat = grad * gamma;
        match self.mode {
            NormMode::BatchStatistics => {
                // The batch mean and variance depend on the input too.
                let mean_grad = grad_hat.clone().mean_dims(&[0, 2, 3]);
                let mean_grad_hat = (grad_hat.clone() * normalised.clone()).mean_dims(&[0, 2, 3]);
                (grad_hat - mean_grad - normalised.clone() * mean_grad_hat) * inv_std.clone()
            }
            NormMode::RunningStatistics => grad_hat * inv_std.clone(),
        }
    }
}

/// A chain of blocks; see the module documentation.
#[derive(Module, Debug)]
pub struct Stack {
    /// Blocks from input to output.
    pub blocks: Vec<Block>,
    /// Input `[C, H, W]`.
    #[module(skip)]
    pub input: [usize; 3],
}

impl Stack {
    /// Forward pass. `x`: `[N, C, H, W]` → output `[N, C', H', W']`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.blocks.iter().fold(x, |x, block| block.forward(x))
    }

    /// Forward pass that keeps what [`Stack::vjp`] needs.
    pub fn forward_traced(&self, x: Tensor<4>) -> (Tensor<4>, Trace) {
        self.traced(x, false)
    }

    /// Forward pass that keeps what [`Stack::parameter_vjp`] needs as well (each block's input).
    pub fn forward_traced_for_parameters(&self, x: Tensor<4>) -> (Tensor<4>, Trace) {
        self.traced(x, true)
    }

    fn traced(&self, x: Tensor<4>, keep_inputs: bool) -> (Tensor<4>, Trace) {
        let mut blocks = Vec::with_capacity(self.blocks.len());
        let mut x = x;
        for block in &self.blocks {
            let input_dims = x.dims();
            let input = keep_inputs.then(|| x.clone());
            if let Some(a) = block.forward_fused(&x) {
                // The fused activations are those whose output is what their derivative needs.
                blocks.push(BlockTrace { input_dims, input, norm: None, activation: Some(a.clone()) });
                x = a;
                continue;
            }
            let h = block.apply_op(x);
            if let Some((a, normalised, inv_std)) = block.norm_forward_fused(&h) {
                blocks.push(BlockTrace { input_dims, input, norm: Some((normalised, inv_std)), activation: Some(a.clone()) });
                x = a;
                continue;
            }
            let (y, norm) = match &block.norm {
                Some(norm) => {
                    let (y, normalised, inv_std) = norm.forward(h);
                    (y, Some((normalised, inv_std)))
                }
                None => (h, None),
            };
            let a = block.act.apply(y.clone());
            blocks.push(BlockTrace { input_dims, input, norm, activation: block.act.saved(y, &a) });
            x = a;
        }
        (x, Trace { blocks })
    }

    /// Vector–Jacobian product: the cotangent of the input for `cotangent` on the output.
    pub fn vjp(&self, trace: &Trace, cotangent: Tensor<4>) -> Tensor<4> {
        let steps = self.blocks.iter().zip(&trace.blocks).enumerate().rev();
        steps.fold(cotangent, |grad, (index, (block, saved))| block.input_backward(grad, saved, self.cotangent_layout(index)))
    }

    /// How the CPU kernels store the cotangent of block `index`'s input: channels-last where
    /// the block before reads it with the fused kernels, burn's order for flex's ops and for
    /// the stack's input (a sampler's update).
    fn cotangent_layout(&self, index: usize) -> Layout {
        match index.checked_sub(1).map(|before| self.blocks[before].fusion()) {
            Some(Some(_)) => Layout::Nhwc,
            _ => Layout::Nchw,
        }
    }

    /// Whether [`Stack::parameter_vjp`] computes this stack's parameter gradients (on its
    /// untracked copy): convolutions on the CPU backend (see [`cpu_conv`]) and dense layers
    /// anywhere, with or without BatchNorm; not transposed convolutions.
    pub fn has_explicit_parameter_gradients(&self) -> bool {
        let on_cpu = self.device().inner() == Device::flex();
        self.blocks.iter().all(|block| match block.op {
            Op::Conv(_) => on_cpu,
            Op::Dense(_) => true,
            Op::ConvTranspose(_) => false,
        })
    }

    /// The gradients of `⟨cotangent, output⟩` with respect to every float parameter, in the
    /// module's visit order (`None` for running statistics), flattened — what burn's autodiff
    /// would give for that loss, without a tape. `trace` comes from
    /// [`Stack::forward_traced_for_parameters`]. `None` where
    /// [`Stack::has_explicit_parameter_gradients`] is false (or the trace lacks the inputs).
    pub fn parameter_vjp(&self, trace: &Trace, cotangent: Tensor<4>) -> Option<Vec<Option<Tensor<1>>>> {
        let mut per_block = Vec::with_capacity(self.blocks.len());
        let mut grad = Some(cotangent);
        for (index, (block, saved)) in self.blocks.iter().zip(&trace.blocks).enumerate().rev() {
            // The first block's input gradient is nobody's business here.
            let (gradients, input_grad) = block.parameter_backward(grad?, saved, (index > 0).then(|| self.cotangent_layout(index)))?;
            per_block.push(gradients);
            grad = input_grad;
        }
        per_block.reverse();
        Some(per_block.concat())
    }

    /// The same stack with every BatchNorm normalising by `mode` (a trained generator switches
    /// to its running statistics for evaluation).
    pub fn with_norm_mode(mut self, mode: NormMode) -> Self {
        for norm in self.blocks.iter_mut().filter_map(|b| b.norm.as_mut()) {
            norm.mode = mode;
        }
        self
    }

    /// Moves every BatchNorm's running statistics toward the statistics of the batch `x`
    /// (`[N, C, H, W]`), as PyTorch's training mode does: `r ← (1 − m)·r + m·s` with the
    /// unbiased batch variance. The result is what a generator in evaluation mode normalises with.
    pub fn track_running_statistics(self, x: Tensor<4>, momentum: f64) -> Self {
        self.forward_tracking_statistics(x, momentum).1
    }

    /// The forward pass of an untracked copy (no autodiff graph; BatchNorm as its mode says)
    /// together with [`Stack::track_running_statistics`], in one pass instead of two: the
    /// output `[N, C', H', W']` on the inner device and the updated stack.
    pub fn forward_tracking_statistics(mut self, x: Tensor<4>, momentum: f64) -> (Tensor<4>, Self) {
        // Statistics come from an untracked copy: no autodiff graph is built for them.
        let plain = self.valid();
        let mut x = x.inner();
        let mut statistics = Vec::with_capacity(plain.blocks.len());
        for block in &plain.blocks {
            let h = block.apply_op(x);
            let y = match &block.norm {
                Some(norm) => {
                    let [n, c, height, width] = h.dims();
                    let count = (n * height * width) as f64;
                    let mean = h.clone().mean_dims(&[0, 2, 3]);
                    let var = (h.clone() - mean.clone()).square().mean_dims(&[0, 2, 3]).mul_scalar(count / (count - 1.0).max(1.0));
                    statistics.push(Some((mean.reshape([c]), var.reshape([c]))));
                    norm.forward(h).0
                }
                None => {
                    statistics.push(None);
                    h
                }
            };
            x = block.act.apply(y);
        }
        for (block, stats) in self.blocks.iter_mut().zip(statistics) {
            if let (Some(norm), Some((mean, var))) = (&mut block.norm, stats) {
                let blend = |old: Tensor<1>, new: Tensor<1>| (old.mul_scalar(1.0 - momentum) + new.mul_scalar(momentum)).set_require_grad(false);
                norm.running_mean = norm.running_mean.clone().map(|old| blend(old, mean));
                norm.running_var = norm.running_var.clone().map(|old| blend(old, var));
            }
        }
        (x, self)
    }

    /// Per-sample scalar output `s(x)` (the sum of the last block's outputs over channels and
    /// positions) `[N]`, and `∂(Σₙ sₙ)/∂x` `[N, C, H, W]` by the explicit transposed path.
    pub fn value_and_grad(&self, x: Tensor<4>) -> (Tensor<1>, Tensor<4>) {
        let (out, trace) = self.forward_traced(x);
        let [n, c, h, w] = out.dims();
        let value = out.clone().reshape([n, c * h * w]).sum_dim(1).reshape([n]);
        let grad = self.vjp(&trace, Tensor::ones([n, c, h, w], &out.device()));
        (value, grad)
    }

    /// Per-sample scalar output `[N]` without the gradient.
    pub fn value(&self, x: Tensor<4>) -> Tensor<1> {
        let out = self.forward(x);
        let [n, c, h, w] = out.dims();
        out.reshape([n, c * h * w]).sum_dim(1).reshape([n])
    }

    /// Device of the parameters (with its autodiff context).
    pub fn device(&self) -> Device {
        match self.blocks.first().map(|b| &b.op) {
            Some(Op::Conv(op)) => op.weight.val().device(),
            Some(Op::ConvTranspose(op)) => op.weight.val().device(),
            Some(Op::Dense(op)) => op.weight.val().device(),
            None => Device::default(),
        }
    }

    /// Input `[C, H, W]`.
    pub fn input_shape(&self) -> [usize; 3] {
        self.input
    }

    /// Parameters in a fixed order, named `{block}.{field}`, with their true shapes and
    /// flattened values: what the model file stores.
    pub fn parameters(&self) -> Vec<(String, Vec<usize>, Tensor<1>)> {
        let mut out = Vec::new();
        let mut push = |name: String, shape: Vec<usize>, values: Tensor<1>| out.push((name, shape, values));
        for (index, block) in self.blocks.iter().enumerate() {
            let (weight_shape, weight, bias) = match &block.op {
                Op::Conv(op) => (op.weight.dims().to_vec(), op.weight.val().flatten(0, 3), op.bias.as_ref()),
                Op::ConvTranspose(op) => (op.weight.dims().to_vec(), op.weight.val().flatten(0, 3), op.bias.as_ref()),
                Op::Dense(op) => (op.weight.dims().to_vec(), op.weight.val().flatten(0, 1), op.bias.as_ref()),
            };
            push(format!("{index}.weight"), weight_shape, weight);
            if let Some(bias) = bias {
                push(format!("{index}.bias"), bias.dims().to_vec(), bias.val());
            }
            if let Some(norm) = &block.norm {
                for (name, tensor) in norm.named() {
                    push(format!("{index}.{name}"), tensor.dims().to_vec(), tensor.val());
                }
            }
        }
        out
    }

    /// Replaces every parameter, in the order of [`Stack::parameters`], with the flattened
    /// values `load(name, shape)` returns (it must return `shape`'s element count).
    pub fn load_parameters<E>(self, mut load: impl FnMut(&str, &[usize]) -> Result<Tensor<1>, E>) -> Result<Self, E> {
        fn replace<const D: usize, E>(
            param: Param<Tensor<D>>,
            name: String,
            load: &mut impl FnMut(&str, &[usize]) -> Result<Tensor<1>, E>,
        ) -> Result<Param<Tensor<D>>, E> {
            let dims = param.dims();
            let values = load(&name, &dims)?;
            // Keep the parameter's gradient tracking (trainable weights vs running statistics).
            Ok(param.map(|old| {
                let tracked = old.is_require_grad();
                values.reshape(dims).set_require_grad(tracked)
            }))
        }
        let mut blocks = Vec::with_capacity(self.blocks.len());
        for (index, mut block) in self.blocks.into_iter().enumerate() {
            block.op = match block.op {
                Op::Conv(mut op) => {
                    op.weight = replace(op.weight, format!("{index}.weight"), &mut load)?;
                    op.bias = op.bias.map(|b| replace(b, format!("{index}.bias"), &mut load)).transpose()?;
                    Op::Conv(op)
                }
                Op::ConvTranspose(mut op) => {
                    op.weight = replace(op.weight, format!("{index}.weight"), &mut load)?;
                    op.bias = op.bias.map(|b| replace(b, format!("{index}.bias"), &mut load)).transpose()?;
                    Op::ConvTranspose(op)
                }
                Op::Dense(mut op) => {
                    op.weight = replace(op.weight, format!("{index}.weight"), &mut load)?;
                    op.bias = op.bias.map(|b| replace(b, format!("{index}.bias"), &mut load)).transpose()?;
                    Op::Dense(op)
                }
            };
            if let Some(mut norm) = block.norm {
                norm.gamma = replace(norm.gamma, format!("{index}.gamma"), &mut load)?;
                norm.beta = replace(norm.beta, format!("{index}.beta"), &mut load)?;
                norm.running_mean = replace(norm.running_mean, format!("{index}.running_mean"), &mut load)?;
                norm.running_var = replace(norm.running_var, format!("{index}.running_var"), &mut load)?;
                block.norm = Some(norm);
            }
            blocks.push(block);
        }
        Ok(Self { blocks, input: self.input })
    }
}
