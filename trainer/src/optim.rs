//! Optimisers over any burn module, with state that can be checkpointed exactly.
//!
//! Parameters are visited in the module's fixed order; the state is one pair of moment
//! vectors per parameter, kept on the device without autodiff.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::prelude::*;
use burn::tensor::Gradients;
use serde::{Deserialize, Serialize};

/// Adam hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdamSettings {
    /// Learning rate.
    pub lr: f64,
    /// β₁.
    pub beta1: f64,
    /// β₂.
    pub beta2: f64,
    /// ε added to √v̂.
    pub eps: f64,
}

impl Default for AdamSettings {
    fn default() -> Self {
        Self { lr: 1e-4, beta1: 0.9, beta2: 0.999, eps: 1e-8 }
    }
}

/// Adam (Kingma & Ba) with bias correction, as in PyTorch.
#[derive(Debug, Clone)]
pub struct Adam {
    /// Settings; `lr` may be changed between steps (annealing).
    pub settings: AdamSettings,
    /// Steps taken.
    pub step: u64,
    /// First and second moments per parameter (visit order), flattened.
    pub moments: Vec<Option<(Tensor<1>, Tensor<1>)>>,
}

struct CollectGradients<'a> {
    grads: &'a Gradients,
    out: Vec<Option<Tensor<1>>>,
}

impl ModuleVisitor for CollectGradients<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let grad = param.val().grad(self.grads).map(|g| {
            let count = g.shape().num_elements();
            g.reshape([count])
        });
        self.out.push(grad);
    }
}

struct ApplyUpdates {
    updates: std::vec::IntoIter<Option<Tensor<1>>>,
}

impl ModuleMapper for ApplyUpdates {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        match self.updates.next().flatten() {
            Some(update) => param.map(|value| {
                let dims = value.dims();
                let tracked = value.is_require_grad();
                Tensor::from_inner(value.inner() - update.reshape(dims)).set_require_grad(tracked)
            }),
            None => param,
        }
    }
}

/// Gradients of every float parameter of `module`, flattened, in visit order.
pub fn collect_gradients<M: Module>(module: &M, grads: &Gradients) -> Vec<Option<Tensor<1>>> {
    let mut collector = CollectGradients { grads, out: Vec::new() };
    module.visit(&mut collector);
    collector.out
}

/// Subtracts `updates[i]` from the i-th float parameter (visit order); `None` leaves it.
pub fn apply_updates<M: Module>(module: M, updates: Vec<Option<Tensor<1>>>) -> M {
    module.map(&mut ApplyUpdates { updates: updates.into_iter() })
}

impl Adam {
    /// A fresh optimiser.
    pub fn new(settings: AdamSettings) -> Self {
        Self { settings, step: 0, moments: Vec::new() }
    }

    /// One descent step on `module` with the gradients of the loss.
    pub fn step<M: Module>(&mut self, module: M, grads: &Gradients) -> M {
        let gradients = collect_gradients(&module, grads);
        if self.moments.len() != gradients.len() {
            self.moments = vec![None; gradients.len()];
        }
        self.step += 1;
        let AdamSettings { lr, beta1, beta2, eps } = self.settings;
        let correction1 = 1.0 - beta1.powi(self.step as i32);
        let correction2 = 1.0 - beta2.powi(self.step as i32);
        let updates = gradients
            .into_iter()
            .zip(self.moments.iter_mut())
            .map(|(grad, moments)| {
                let grad = grad?;
                let (m, v) = match moments.take() {
                    Some((m, v)) => (m.mul_scalar(beta1) + grad.clone().mul_scalar(1.0 - beta1), v.mul_scalar(beta2) + grad.square().mul_scalar(1.0 - beta2)),
                    None => (grad.clone().mul_scalar(1.0 - beta1), grad.square().mul_scalar(1.0 - beta2)),
                };
                let update = m.clone().div_scalar(correction1).div(v.clone().div_scalar(correction2).sqrt().add_scalar(eps)).mul_scalar(lr);
                *moments = Some((m, v));
                Some(update)
            })
            .collect();
        apply_updates(module, updates)
    }
}

struct CountParameters(usize);

impl ModuleVisitor for CountParameters {
    fn visit_float<const D: usize>(&mut self, _param: &Param<Tensor<D>>) {
        self.0 += 1;
    }
}

/// Number of float parameters `module` holds (the length of an optimiser's state).
pub fn collect_parameter_count<M: Module>(module: &M) -> usize {
    let mut counter = CountParameters(0);
    module.visit(&mut counter);
    counter.0
}
