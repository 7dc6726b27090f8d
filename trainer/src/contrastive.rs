//! The loss every energy trainer minimises, `w₋·mean f(negatives) − w₊·mean f(positives)`
//! (data are the positives, the chains' samples the negatives), with its parameter gradients.
//!
//! Where the net allows ([`Stack::has_explicit_parameter_gradients`]: the CPU backend, no
//! transposed convolution) the gradients come without a tape: a traced forward pass keeps each
//! block's input and [`Stack::parameter_vjp`] walks back through it. Data and samples share one
//! pass when they have the same size and no BatchNorm couples the images of a batch; otherwise
//! each has its own, as under autodiff. Everywhere else burn's autodiff does it.

use burn::prelude::*;
use burn::tensor::Gradients;
use shared::Stack;
use shared::layers::Trace;

use crate::optim::collect_gradients;

/// The loss of one step, its two terms, and what its gradients need.
pub struct Contrastive {
    /// `w₊·mean f(positives)`, `[1]`, without autodiff.
    pub f_positive: Tensor<1>,
    /// `w₋·mean f(negatives)`, `[1]`, without autodiff.
    pub f_negative: Tensor<1>,
    backward: Backward,
}

enum Backward {
    /// burn's autodiff of this loss.
    Tape(Box<Tensor<1>>),
    /// Traced passes of the net's untracked copy.
    TapeFree(Box<TapeFree>),
}

struct TapeFree {
    plain: Stack,
    /// Each traced pass with the cotangent of its output.
    passes: Vec<(Trace, Tensor<4>)>,
    /// The loss's inputs and weights, for autodiff should the kernels decline.
    terms: [(Tensor<4>, f64); 2],
}

impl Contrastive {
    /// The loss of `net` (on the autodiff device) for `positives` and `negatives`
    /// (`[N, C, H, W]`, untracked) with `weights` `[w₊, w₋]`; `tape_free` = false always uses
    /// autodiff (for comparisons).
    pub fn new(net: &Stack, positives: Tensor<4>, negatives: Tensor<4>, weights: [f64; 2], tape_free: bool) -> Self {
        let plain = net.valid();
        if !(tape_free && plain.has_explicit_parameter_gradients()) {
            let [f_positive, f_negative] = taped_terms(net, [(positives, weights[0]), (negatives, weights[1])]);
            return Self {
                f_positive: f_positive.clone().inner(),
                f_negative: f_negative.clone().inner(),
                backward: Backward::Tape(Box::new(f_negative - f_positive)),
            };
        }
        let terms = [(positives, weights[0]), (negatives, weights[1])];
        // ∂loss/∂f per image: −w₊/N₊ for the positives, +w₋/N₋ for the negatives.
        let per_image = |(x, weight): &(Tensor<4>, f64), sign: f64| vec![(sign * weight / x.dims()[0] as f64) as f32; x.dims()[0]];
        let [positive, negative] = [per_image(&terms[0], -1.0), per_image(&terms[1], 1.0)];
        let coupled = plain.blocks.iter().any(|block| block.norm.is_some());
        let device = plain.device();
        let (means, passes) = if !coupled && terms[0].0.dims()[1..] == terms[1].0.dims()[1..] {
            let count = positive.len();
            let (values, pass) = traced(&plain, Tensor::cat(vec![terms[0].0.clone(), terms[1].0.clone()], 0), [positive, negative].concat(), &device);
            let total = values.dims()[0];
            ([values.clone().slice(0..count).mean(), values.slice(count..total).mean()], vec![pass])
        } else {
            let (positive_values, positive_pass) = traced(&plain, terms[0].0.clone(), positive, &device);
            let (negative_values, negative_pass) = traced(&plain, terms[1].0.clone(), negative, &device);
            ([positive_values.mean(), negative_values.mean()], vec![positive_pass, negative_pass])
        };
        let [f_positive, f_negative] = means;
        Self {
            f_positive: f_positive.mul_scalar(weights[0]),
            f_negative: f_negative.mul_scalar(weights[1]),
            backward: Backward::TapeFree(Box::new(TapeFree { plain, passes, terms })),
        }
    }

    /// The gradient of every float parameter of `net` (the net [`Contrastive::new`] was given),
    /// flattened, in visit order, as [`collect_gradients`] lists them.
    pub fn gradients(self, net: &Stack) -> Vec<Option<Tensor<1>>> {
        let tape = |loss: Tensor<1>| -> Vec<Option<Tensor<1>>> {
            let grads: Gradients = loss.backward();
            collect_gradients(net, &grads)
        };
        let tape_free = match self.backward {
            Backward::Tape(loss) => return tape(*loss),
            Backward::TapeFree(tape_free) => *tape_free,
        };
        let TapeFree { plain, passes, terms } = tape_free;
        let mut total: Option<Vec<Option<Tensor<1>>>> = None;
        for (trace, cotangent) in passes {
            let Some(gradients) = plain.parameter_vjp(&trace, cotangent) else {
                // Parameters of another float type: the kernels decline, the tape does it.
                let [f_positive, f_negative] = taped_terms(net, terms);
                return tape(f_negative - f_positive);
            };
            total = Some(match total {
                None => gradients,
                Some(sum) => sum
                    .into_iter()
                    .zip(gradients)
                    .map(|(a, b)| match (a, b) {
                        (Some(a), Some(b)) => Some(a + b),
                        (a, b) => a.or(b),
                    })
                    .collect(),
            });
        }
        total.unwrap_or_default()
    }
}

/// `w·mean f(x)` of each term, on `net`'s autodiff device.
fn taped_terms(net: &Stack, terms: [(Tensor<4>, f64); 2]) -> [Tensor<1>; 2] {
    terms.map(|(x, weight)| net.value(Tensor::from_inner(x)).mean().mul_scalar(weight))
}

/// The traced pass of `plain` over `x`: per-image outputs `[N]` and (trace, cotangent) for the
/// per-image weights `per_image` spread over each image's outputs.
fn traced(plain: &Stack, x: Tensor<4>, per_image: Vec<f32>, device: &Device) -> (Tensor<1>, (Trace, Tensor<4>)) {
    let (out, trace) = plain.forward_traced_for_parameters(x);
    let [n, c, h, w] = out.dims();
    let values = out.reshape([n, c * h * w]).sum_dim(1).reshape([n]);
    let weights = Tensor::<1>::from_data(TensorData::new(per_image, [n]), device);
    (values, (trace, weights.reshape([n, 1, 1, 1]).expand([n, c, h, w])))
}
