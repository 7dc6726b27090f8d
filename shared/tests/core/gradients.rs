//! The explicit input-gradient of every net family against burn's autodiff and central finite
//! differences, and the double backward through it (gradient penalty).

use burn::prelude::*;
use shared::StackSpec;
use shared::cpu_conv::tracked::with_burn_ops;
use shared::layers::{Op, OpSpec};
use shared::nets::{FrameKind, FrameNetConfig, MegConfig, MegDataset, ModelSpec, MultigridConfig, MultigridVariant, ShortRunConfig};

use shared::rng::HostRng;

use crate::common::{host, relative_error, scalar, uniform};

/// Small versions of every architecture: (label, spec, batch). Batches are > 1 so that
/// batch-statistics BatchNorm couples samples, as it does in training.
fn tiny_families() -> Vec<(String, StackSpec, usize)> {
    let mut out = Vec::new();
    let mut add = |label: &str, model: ModelSpec, batch: usize| out.extend(stacks_of(label, model, batch));
    add("short_run_16", ModelSpec::ShortRun(ShortRunConfig::new().with_image_size(16).with_n_f(4)), 3);
    add("short_run_64", ModelSpec::ShortRun(ShortRunConfig::new().with_image_size(64).with_n_f(2)), 2);
    for variant in [MultigridVariant::Matconvnet, MultigridVariant::Tensorflow, MultigridVariant::Pytorch] {
        let config = MultigridConfig::new().with_variant(variant).with_width_divisor(16);
        add(&format!("multigrid_{variant:?}"), ModelSpec::Multigrid(config), 3);
    }
    for kind in [FrameKind::Texture, FrameKind::Object] {
        let config = FrameNetConfig::new().with_kind(kind).with_image_size(32).with_width_divisor(10);
        add(&format!("frame_{kind:?}"), ModelSpec::Frame(config), 2);
    }
    for dataset in [MegDataset::Toy2d, MegDataset::Kdd, MegDataset::Mnist { channels: 3 }, MegDataset::Cifar, MegDataset::Celeba] {
        add(&format!("meg_{dataset:?}"), ModelSpec::Meg(MegConfig::new(dataset).with_width_divisor(16)), 3);
    }
    out
}

/// Every stack of `model` as (label/stack name, spec, batch).
fn stacks_of(label: &str, model: ModelSpec, batch: usize) -> Vec<(String, StackSpec, usize)> {
    let stacks = model.stacks().expect("valid architecture");
    stacks.into_iter().map(|stack| (format!("{label}/{}", stack.name), stack.spec, batch)).collect()
}

/// Redraws every parameter at unit gain (He-normal weights, small random biases and BatchNorm
/// affines). The families' own initialisations make deep nets' input-gradients vanish
/// (N(0, 0.02²) over eight layers gives ‖∂f/∂x‖ ≈ 1e-7), below what f32 finite differences
/// resolve; the explicit gradient must be right for any weights, so the checks use these.
fn unit_gain(stack: shared::Stack, device: &Device) -> shared::Stack {
    // Host-drawn values: the checks are deterministic whatever the test threads do.
    let mut rng = HostRng::new(2024);
    stack
        .load_parameters::<()>(|name, shape| {
            let count: usize = shape.iter().product();
            let (mean, std) = if name.ends_with(".weight") {
                let fan_in = match shape.len() {
                    2 => shape[0],
                    _ => count / shape[0].max(1),
                };
                (0.0, (2.0 / fan_in as f64).sqrt())
            } else if name.ends_with(".gamma") {
                (1.0, 0.1)
            } else if name.ends_with(".running_var") {
                return Ok(Tensor::ones([count], device));
            } else if name.ends_with(".running_mean") {
                return Ok(Tensor::zeros([count], device));
            } else {
                (0.0, 0.1)
            };
            Ok(rng.normal_tensor([count], std, device).add_scalar(mean))
        })
        .expect("infallible")
}

fn input_for(spec: &StackSpec, batch: usize, device: &Device) -> Tensor<4> {
    let [c, h, w] = spec.input;
    HostRng::new(77).uniform_tensor([batch, c, h, w], -1.0, 1.0, device)
}

/// Explicit gradient on `device` (where flex runs `shared::cpu_conv`'s kernels) vs autodiff
/// on the same backend (burn's ops, one by one, not `cpu_conv::tracked`), for the given
/// architectures, with the same host-drawn weights and inputs.
fn check_against_autodiff(device: &Device, families: &[(String, StackSpec, usize)]) {
    let ad = device.clone().autodiff();
    for (label, spec, batch) in families {
        let stack = unit_gain(spec.init(device).expect("init"), device);
        let (value, explicit) = stack.value_and_grad(input_for(spec, *batch, device));
        let (reference_value, reference) = with_burn_ops(|| {
            let reference_stack = unit_gain(spec.init(&ad).expect("init"), &ad);
            let x = input_for(spec, *batch, &ad).require_grad();
            let reference_value = reference_stack.value(x.clone());
            let grads = reference_value.clone().sum().backward();
            (reference_value, x.grad(&grads).expect("input gradient"))
        });
        let value_error = relative_error(&host(value), &host(reference_value));
        let grad_error = relative_error(&host(explicit), &host(reference));
        println!("{label}: value rel. error {value_error:.2e}, gradient rel. error vs autodiff {grad_error:.2e}");
        assert!(value_error < 1e-5, "{label}: traced forward differs from forward ({value_error:.2e})");
        assert!(grad_error < 1e-4, "{label}: explicit gradient differs from autodiff ({grad_error:.2e})");
    }
}

/// Explicit gradient vs a central difference along `v = (ĝ + r̂)/2`. A step that moves a
/// pre-activation across a ReLU kink spoils the difference, so it is tried at three step sizes
/// and the better agreement is asserted.
fn check_against_finite_differences(device: &Device, families: &[(String, StackSpec, usize)]) {
    for (label, spec, batch) in families {
        let stack = unit_gain(spec.init(device).expect("init"), device);
        let x = input_for(spec, *batch, device);
        let (_, grad) = stack.value_and_grad(x.clone());
        let direction = {
            let r = HostRng::new(5).uniform_tensor(x.dims(), -1.0, 1.0, device);
            let g_norm = scalar(grad.clone().square().sum()).sqrt().max(1e-12);
            let r_norm = scalar(r.clone().square().sum()).sqrt();
            grad.clone().div_scalar(2.0 * g_norm) + r.div_scalar(2.0 * r_norm)
        };
        let analytic = scalar((grad * direction.clone()).sum());
        let mut best = f64::INFINITY;
        for h in [1e-2, 1e-3, 1e-4] {
            let plus = scalar(stack.value(x.clone() + direction.clone().mul_scalar(h)).sum());
            let minus = scalar(stack.value(x.clone() - direction.clone().mul_scalar(h)).sum());
            let numeric = (plus - minus) / (2.0 * h);
            let error = (numeric - analytic).abs() / analytic.abs().max(1e-6);
            println!("{label}: directional derivative {analytic:.6e}, central difference (h = {h:.0e}) {numeric:.6e}, rel. error {error:.2e}");
            best = best.min(error);
        }
        assert!(best < 1e-2, "{label}: explicit gradient disagrees with finite differences ({best:.2e})");
    }
}

/// ∂/∂θ of the penalty `mean_n ‖∇ₓ s(xₙ)‖²` by autodiff through the explicit gradient, against
/// central differences in the block-0 weight element with the largest gradient.
///
/// For a piecewise-linear net the penalty is exactly quadratic in one weight between kinks, so
/// a central difference is exact unless the step moves a pre-activation across zero (then the
/// penalty jumps). Steps shrink geometrically; the best agreement (a kink-free step) is asserted.
fn check_penalty_gradient(device: &Device, label: &str, spec: &StackSpec, batch: usize) {
    let device = device.clone().autodiff();
    let stack = unit_gain(spec.init(&device).expect("init"), &device);
    let x = input_for(spec, batch, &device);
    let penalty = |stack: &shared::Stack| stack.value_and_grad(x.clone()).1.square().sum().div_scalar(batch as f64);
    let weight = |stack: &shared::Stack| match &stack.blocks[0].op {
        Op::Conv(op) => op.weight.val().flatten::<1>(0, 3),
        Op::ConvTranspose(op) => op.weight.val().flatten::<1>(0, 3),
        Op::Dense(op) => op.weight.val().flatten::<1>(0, 1),
    };
    let grads = penalty(&stack).backward();
    let weight_grad = host(match &stack.blocks[0].op {
        Op::Conv(op) => op.weight.val().grad(&grads).map(|g| g.flatten::<1>(0, 3)),
        Op::ConvTranspose(op) => op.weight.val().grad(&grads).map(|g| g.flatten::<1>(0, 3)),
        Op::Dense(op) => op.weight.val().grad(&grads).map(|g| g.flatten::<1>(0, 1)),
    }
    .expect("weight gradient"));
    let (index, &analytic) = weight_grad
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
        .expect("non-empty weight");
    let scale = host(weight(&stack)).iter().map(|w| w.abs()).fold(0.0f32, f32::max).max(1e-3);
    let shifted = |step: f32| {
        let mut stack = stack.clone();
        let mut delta = vec![0.0f32; weight_grad.len()];
        delta[index] = step;
        let delta = Tensor::<1>::from_data(TensorData::new(delta, [weight_grad.len()]), &device);
        match &mut stack.blocks[0].op {
            Op::Conv(op) => op.weight = op.weight.clone().map(|w| { let d = w.dims(); (w.flatten::<1>(0, 3) + delta).reshape(d) }),
            Op::ConvTranspose(op) => op.weight = op.weight.clone().map(|w| { let d = w.dims(); (w.flatten::<1>(0, 3) + delta).reshape(d) }),
            Op::Dense(op) => op.weight = op.weight.clone().map(|w| { let d = w.dims(); (w.flatten::<1>(0, 1) + delta).reshape(d) }),
        }
        scalar(penalty(&stack))
    };
    let mut best = f64::INFINITY;
    for relative in [1e-2f32, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5] {
        let h = relative * scale;
        let numeric = (shifted(h) - shifted(-h)) / (2.0 * h as f64);
        let error = (numeric - analytic as f64).abs() / (analytic as f64).abs().max(1e-9);
        println!("{label}: dPenalty/dw autodiff {analytic:.6e}, central difference (h = {h:.1e}) {numeric:.6e}, rel. error {error:.2e}");
        best = best.min(error);
    }
    assert!(best < 2e-2, "{label}: penalty gradient disagrees with finite differences ({best:.2e})");
}

/// A smooth net (tanh, batch-statistics BatchNorm, transposed conv, dense) whose penalty is
/// differentiable everywhere: the double backward of every op, BatchNorm's included.
fn smooth_net() -> StackSpec {
    use shared::layers::{Activation, Init, LayerSpec, NormSpec};
    let init = Init::TorchDefault;
    StackSpec {
        input: [2, 8, 8],
        layers: vec![
            LayerSpec::conv(4, 3, 1, 1, Activation::Tanh, init).with_norm(NormSpec::batch(1e-5)),
            LayerSpec::conv_transpose(3, 4, 2, 1, 0, Activation::Tanh, init).with_norm(NormSpec::batch(1e-5)),
            LayerSpec::conv(4, 4, 2, 1, Activation::Tanh, init),
            LayerSpec::dense(1, Activation::Identity, init),
        ],
    }
}

/// The subset that is affordable on lavapipe: a short-run net and a BatchNorm net.
fn small_families() -> Vec<(String, StackSpec, usize)> {
    tiny_families().into_iter().filter(|(label, ..)| label.starts_with("short_run_16") || label == "multigrid_Matconvnet/grid4").collect()
}

fn explicit_gradient_matches_autodiff(device: &Device) {
    check_against_autodiff(device, &small_families());
}

fn explicit_gradient_matches_finite_differences(device: &Device) {
    check_against_finite_differences(device, &small_families());
}

fn penalty_gradient_matches_finite_differences(device: &Device) {
    check_penalty_gradient(device, "smooth tanh + BatchNorm net", &smooth_net(), 3);
    for (label, spec, batch) in &small_families() {
        check_penalty_gradient(device, label, spec, *batch);
    }
}

device_tests!(explicit_gradient_matches_autodiff, explicit_gradient_matches_finite_differences, penalty_gradient_matches_finite_differences);

#[test]
fn every_family_gradient_matches_autodiff_on_flex() {
    check_against_autodiff(&Device::flex(), &tiny_families());
}

/// On a plain flex device the convolutions with `MIN_CHANNELS` or more outputs run in
/// `shared::cpu_conv`, fused with their LeakyReLU; under autodiff burn's ops run one by one.
/// Nets wide enough for the fused path, with the same host-drawn weights and inputs, must agree.
#[test]
fn fused_cpu_convolutions_match_autodiff_on_flex() {
    let flex = Device::flex();
    let mut families = stacks_of("short_run n_f 16", ModelSpec::ShortRun(ShortRunConfig::new().with_image_size(16).with_n_f(16)), 2);
    families.extend(stacks_of("multigrid ÷4", ModelSpec::Multigrid(MultigridConfig::new().with_width_divisor(4)), 2));
    for (label, spec, batch) in families {
        let widths: Vec<usize> = std::iter::once(spec.input[0]).chain(spec.shapes().expect("shapes").iter().map(|s| s[0])).collect();
        let wide_convs = spec
            .layers
            .iter()
            .zip(widths.windows(2))
            .filter(|(layer, w)| matches!(layer.op, OpSpec::Conv { .. }) && w[1] >= shared::cpu_conv::MIN_CHANNELS)
            .count();
        assert!(wide_convs > 0, "{label} has no convolution wide enough for the fused path");
        println!("{label}: {wide_convs} convolutions on the fused path");
        check_against_autodiff(&flex, &[(label, spec, batch)]);
    }
}

#[test]
fn every_family_gradient_matches_finite_differences_on_flex() {
    check_against_finite_differences(&Device::flex(), &tiny_families());
}

#[test]
fn meg_energy_and_bn_penalty_gradients_match_finite_differences_on_flex() {
    for (label, spec, batch) in tiny_families() {
        if label == "meg_Mnist { channels: 3 }/energy" || label == "multigrid_Pytorch/grid16" || label == "meg_Toy2d/energy" {
            check_penalty_gradient(&Device::flex(), &label, &spec, batch);
        }
    }
}

#[test]
fn texture_net_runs_on_a_larger_canvas_than_it_was_built_for() {
    let device = Device::flex();
    let config = FrameNetConfig::new().with_image_size(32).with_width_divisor(10);
    let stack = config.init(&device).expect("init");
    let (value, grad) = stack.value_and_grad(uniform([1, 3, 64, 48], &device));
    assert_eq!(grad.dims(), [1, 3, 64, 48]);
    assert!(scalar(value).is_finite());
}

/// Autodiff's gradient of every float parameter in visit order, flattened (`None` where the
/// parameter received none: running statistics).
fn autodiff_parameter_grads(stack: &shared::Stack, grads: &burn::tensor::Gradients) -> Vec<Option<Vec<f32>>> {
    use burn::module::{Module, ModuleVisitor, Param};
    struct Collect<'a>(&'a burn::tensor::Gradients, Vec<Option<Vec<f32>>>);
    impl ModuleVisitor for Collect<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.1.push(param.val().grad(self.0).map(host));
        }
    }
    let mut collect = Collect(grads, Vec::new());
    stack.visit(&mut collect);
    collect.1
}

/// The tape-free parameter gradients (`Stack::parameter_vjp`: `shared::cpu_conv` for the
/// convolutions, fused with their LeakyReLU) against autodiff of burn's ops (not
/// `cpu_conv::tracked`), for a random cotangent, on every family that has them; transposed
/// convolutions (MEG generators) have none and say so.
#[test]
fn parameter_gradients_match_autodiff_on_flex() {
    let flex = Device::flex();
    let ad = flex.clone().autodiff();
    let mut families = tiny_families();
    families.extend(stacks_of("short_run n_f 16", ModelSpec::ShortRun(ShortRunConfig::new().with_image_size(16).with_n_f(16)), 2));
    // Enough pixels for several of the weight-gradient kernel's 256-pixel passes per thread.
    families.extend(stacks_of("short_run grey n_f 16 ×8", ModelSpec::ShortRun(ShortRunConfig::new().with_channels(1).with_n_f(16)), 8));
    families.extend(stacks_of("multigrid ÷4", ModelSpec::Multigrid(MultigridConfig::new().with_width_divisor(4)), 2));
    let mut checked = 0;
    for (label, spec, batch) in families {
        let stack = unit_gain(spec.init(&flex).expect("init"), &flex);
        let transposed = spec.layers.iter().any(|layer| matches!(layer.op, OpSpec::ConvTranspose { .. }));
        assert_eq!(stack.has_explicit_parameter_gradients(), !transposed, "{label}");
        let (out, trace) = stack.forward_traced_for_parameters(input_for(&spec, batch, &flex));
        let cotangent = HostRng::new(5).uniform_tensor(out.dims(), -1.0, 1.0, &flex);
        let explicit = stack.parameter_vjp(&trace, cotangent.clone());
        if transposed {
            assert!(explicit.is_none(), "{label}: transposed convolutions have no explicit parameter gradient");
            continue;
        }
        let explicit = explicit.expect("explicit parameter gradients");
        let reference = with_burn_ops(|| {
            let reference_stack = unit_gain(spec.init(&ad).expect("init"), &ad);
            let reference_out = reference_stack.forward(input_for(&spec, batch, &ad));
            let grads = (reference_out * Tensor::from_data(cotangent.to_data(), &ad)).sum().backward();
            autodiff_parameter_grads(&reference_stack, &grads)
        });
        assert_eq!(explicit.len(), reference.len(), "{label}: one entry per parameter");
        let names: Vec<String> = stack.parameters().into_iter().map(|(name, ..)| name).collect();
        for ((name, ours), expected) in names.iter().zip(explicit).zip(reference) {
            match (ours, expected) {
                (Some(ours), Some(expected)) => {
                    let ours = host(ours);
                    let norm = |v: &[f32]| v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
                    // A bias before a batch-statistics BatchNorm has a zero gradient (the mean
                    // cancels it): there both sides are rounding noise, compared absolutely.
                    if norm(&expected) < 1e-5 {
                        assert!(norm(&ours) < 1e-5, "{label} {name}: {} where autodiff has ≈ 0", norm(&ours));
                        continue;
                    }
                    let error = relative_error(&ours, &expected);
                    assert!(error < 1e-4, "{label} {name}: parameter gradient differs from autodiff ({error:.2e})");
                }
                (None, None) => {}
                (ours, expected) => panic!("{label} {name}: explicit {:?} vs autodiff {:?}", ours.is_some(), expected.is_some()),
            }
        }
        checked += 1;
    }
    println!("{checked} stacks checked");
    assert!(checked >= 12, "only {checked} stacks had explicit parameter gradients");
}
