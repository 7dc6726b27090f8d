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
        self.step_with_gradients(module, gradients)
    }

    /// One descent step with the gradient of every float parameter given flattened, in visit
    /// order (`None`: the parameter is left alone), as [`collect_gradients`] lists them.
    pub fn step_with_gradients<M: Module>(&mut self, module: M, gradients: Vec<Option<Tensor<1>>>) -> M {
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

/// Settings of the MatConvNet-lineage update of the generative ConvNet and multigrid codes:
/// the ascent direction of each parameter is divided by the spatial size of its layer's output
/// map, rescaled so that its largest magnitude is at most `cap`, then
/// `v ← momentum·v − weight_decay·w + g`, `w ← w + lr·multiplier·v` (multiplier 1 for weights,
/// `bias_lr_factor` for biases; weight decay on weights only).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LabSgdSettings {
    /// Learning rate γ.
    pub lr: f64,
    /// Momentum (0 in the generative ConvNet copy found).
    pub momentum: f64,
    /// Weight decay on weights.
    pub weight_decay: f64,
    /// Largest magnitude of a normalised gradient; `None` for no cap.
    pub cap: Option<f64>,
    /// Learning-rate multiplier of biases (MatConvNet's `learningRate = [1 2]`).
    pub bias_lr_factor: f64,
}

/// How the lab update treats one parameter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ParameterRole {
    /// The gradient is divided by this (spatial size of the layer's output map).
    pub divisor: f64,
    /// Bias-like: `bias_lr_factor` applies and no weight decay.
    pub bias: bool,
    /// Learning-rate multiplier of the parameter's layer (the multigrid code's top layer has
    /// 0.05 or 0.1; 1 elsewhere).
    pub layer_lr: f64,
}

/// The roles of a stack's parameters, in visit order, for the lab update: convolution and
/// BatchNorm parameters are normalised by their block's output `H·W`, dense ones by 1.
pub fn parameter_roles(spec: &shared::layers::StackSpec) -> Result<Vec<ParameterRole>, shared::error::ArchError> {
    let shapes = spec.shapes()?;
    Ok(spec
        .parameter_shapes()?
        .into_iter()
        .map(|(name, _)| {
            let (block, field) = name.split_once('.').unwrap_or((name.as_str(), ""));
            let [_, h, w] = block.parse::<usize>().ok().and_then(|b| shapes.get(b)).copied().unwrap_or([1, 1, 1]);
            ParameterRole { divisor: (h * w) as f64, bias: field != "weight", layer_lr: 1.0 }
        })
        .collect())
}

/// The lab update with its momentum state (one velocity per parameter, visit order).
#[derive(Debug, Clone)]
pub struct LabSgd {
    /// Settings; `lr` may change between steps.
    pub settings: LabSgdSettings,
    /// Velocities (`None` until a parameter's first step, or with zero momentum).
    pub velocity: Vec<Option<Tensor<1>>>,
}

struct CollectValues(Vec<Tensor<1>>);

impl ModuleVisitor for CollectValues {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let value = param.val().inner();
        let count = value.shape().num_elements();
        self.0.push(value.reshape([count]));
    }
}

impl LabSgd {
    /// A fresh optimiser.
    pub fn new(settings: LabSgdSettings) -> Self {
        Self { settings, velocity: Vec::new() }
    }

    /// One step on `module` given the gradients of the loss to minimise (the ascent direction
    /// is their negative) and the parameters' roles in visit order.
    pub fn step<M: Module>(&mut self, module: M, grads: &Gradients, roles: &[ParameterRole]) -> M {
        let gradients = collect_gradients(&module, grads);
        self.step_with_gradients(module, gradients, roles)
    }

    /// [`LabSgd::step`] with the gradients listed as [`collect_gradients`] lists them.
    pub fn step_with_gradients<M: Module>(&mut self, module: M, gradients: Vec<Option<Tensor<1>>>, roles: &[ParameterRole]) -> M {
        let mut values = CollectValues(Vec::new());
        module.visit(&mut values);
        if self.velocity.len() != gradients.len() {
            self.velocity = vec![None; gradients.len()];
        }
        let LabSgdSettings { lr, momentum, weight_decay, cap, bias_lr_factor } = self.settings;
        let updates = gradients
            .into_iter()
            .zip(values.0)
            .zip(self.velocity.iter_mut())
            .enumerate()
            .map(|(i, ((grad, value), velocity))| {
                let grad = grad?;
                let role = roles.get(i).copied().unwrap_or(ParameterRole { divisor: 1.0, bias: false, layer_lr: 1.0 });
                let mut ascent = grad.neg().div_scalar(role.divisor.max(1.0));
                if let Some(cap) = cap {
                    // Rescale so that max|g| ≤ cap, on the device: g·cap/max(max|g|, cap).
                    let largest = ascent.clone().abs().max().clamp_min(cap);
                    ascent = ascent * largest.recip().mul_scalar(cap);
                }
                if !role.bias && weight_decay > 0.0 {
                    ascent = ascent - value.mul_scalar(weight_decay);
                }
                let step = match velocity.take() {
                    Some(v) if momentum > 0.0 => v.mul_scalar(momentum) + ascent,
                    _ => ascent,
                };
                if momentum > 0.0 {
                    *velocity = Some(step.clone());
                }
                let multiplier = role.layer_lr * if role.bias { bias_lr_factor } else { 1.0 };
                // `apply_updates` subtracts.
                Some(step.mul_scalar(-lr * multiplier))
            })
            .collect();
        apply_updates(module, updates)
    }
}

/// Which parameter update a trainer uses (saved in its configuration).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Update {
    /// The lab's normalised, capped SGD ([`LabSgd`]).
    Lab(LabSgdSettings),
    /// Adam.
    Adam(AdamSettings),
}

impl Update {
    /// The base learning rate.
    pub fn lr(&self) -> f64 {
        match self {
            Self::Lab(lab) => lab.lr,
            Self::Adam(adam) => adam.lr,
        }
    }

    /// Refuses a learning rate that is not a positive number.
    pub fn check(&self) -> anyhow::Result<()> {
        let lr = self.lr();
        anyhow::ensure!(lr.is_finite() && lr > 0.0, "the learning rate must be a positive number, not {lr}");
        Ok(())
    }
}

/// An [`Update`] with its state, checkpointable by name.
#[derive(Debug, Clone)]
pub enum Updater {
    /// Lab update and its velocities.
    Lab(LabSgd),
    /// Adam and its moments.
    Adam(Adam),
}

impl Updater {
    /// A fresh optimiser.
    pub fn new(settings: Update) -> Self {
        match settings {
            Update::Lab(lab) => Self::Lab(LabSgd::new(lab)),
            Update::Adam(adam) => Self::Adam(Adam::new(adam)),
        }
    }

    /// Restores an optimiser for `parameters` parameters whose state tensors `take` hands out
    /// by the names [`Updater::state`] gave them; `adam_step` is Adam's step count.
    pub fn restore(settings: Update, parameters: usize, adam_step: u64, mut take: impl FnMut(String) -> Option<Tensor<1>>) -> Self {
        match settings {
            Update::Lab(lab) => {
                let mut sgd = LabSgd::new(lab);
                sgd.velocity = (0..parameters).map(|i| take(format!("v.{i}"))).collect();
                Self::Lab(sgd)
            }
            Update::Adam(settings) => {
                let mut adam = Adam::new(settings);
                adam.step = adam_step;
                adam.moments = (0..parameters).map(|i| take(format!("m.{i}")).zip(take(format!("v.{i}")))).collect();
                Self::Adam(adam)
            }
        }
    }

    /// Sets the learning rate of the next steps.
    pub fn set_lr(&mut self, lr: f64) {
        match self {
            Self::Lab(lab) => lab.settings.lr = lr,
            Self::Adam(adam) => adam.settings.lr = lr,
        }
    }

    /// Adam's step count (0 for the lab update).
    pub fn adam_step(&self) -> u64 {
        match self {
            Self::Lab(_) => 0,
            Self::Adam(adam) => adam.step,
        }
    }

    /// Per-parameter state tensors, named for a checkpoint.
    pub fn state(&self) -> Vec<(String, &Tensor<1>)> {
        match self {
            Self::Lab(lab) => lab.velocity.iter().enumerate().filter_map(|(i, v)| v.as_ref().map(|v| (format!("v.{i}"), v))).collect(),
            Self::Adam(adam) => adam
                .moments
                .iter()
                .enumerate()
                .filter_map(|(i, moments)| moments.as_ref().map(|(m, v)| [(format!("m.{i}"), m), (format!("v.{i}"), v)]))
                .flatten()
                .collect(),
        }
    }

    /// One step on `module` with the gradients of the loss to minimise; `roles` serve the lab
    /// update.
    pub fn step<M: Module>(&mut self, module: M, grads: &Gradients, roles: &[ParameterRole]) -> M {
        let gradients = collect_gradients(&module, grads);
        self.step_with_gradients(module, gradients, roles)
    }

    /// [`Updater::step`] with the gradients listed as [`collect_gradients`] lists them.
    pub fn step_with_gradients<M: Module>(&mut self, module: M, gradients: Vec<Option<Tensor<1>>>, roles: &[ParameterRole]) -> M {
        match self {
            Self::Lab(lab) => lab.step_with_gradients(module, gradients, roles),
            Self::Adam(adam) => adam.step_with_gradients(module, gradients),
        }
    }
}
