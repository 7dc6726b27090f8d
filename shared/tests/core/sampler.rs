//! Sampler core: Langevin monotonicity without noise, masks, multigrid scaling and cascade,
//! MALA on a Gaussian, initialisations.

use core::ops::ControlFlow;

use burn::prelude::*;
use shared::nets::{MultigridConfig, Polarity, ShortRunConfig};
use shared::rng::HostRng;
use shared::sampler::{
    ChainInit, DeviceNoise, LangevinConfig, LatentEnergy, LogDensity, MalaConfig, NetDensity, NoiseSource, PersistentChains, ProposalNorm,
    Observation, cascade, downscale, downscale_mask, langevin, mala, multigrid::Grid, upscale,
};

use crate::common::{host, scalar, uniform};

/// Log-density including the Gaussian reference term, averaged over the batch.
fn total_log_density(density: &impl LogDensity, x: &Tensor<4>, sigma: Option<f64>) -> f64 {
    let (value, _) = density.value_and_grad(x.clone());
    let reference = sigma.map_or(0.0, |s| scalar(x.clone().square().sum()) / (2.0 * s * s));
    (scalar(value.sum()) - reference) / x.dims()[0] as f64
}

fn noise_free_chains_increase_the_log_density(device: &Device) {
    let stack = ShortRunConfig::new().with_image_size(16).with_n_f(4).init(device).expect("init");
    let density = NetDensity { stack: &stack, polarity: Polarity::NegativeEnergy };
    for config in [
        LangevinConfig { step_size: 0.01, ..LangevinConfig::short_run(30) }.noise_free(),
        LangevinConfig::delta(30, 0.3, 1.0).noise_free(),
    ] {
        let mut rng = HostRng::new(3);
        let x0 = ChainInit::Uniform { low: -1.0, high: 1.0 }.sample([4, 3, 16, 16], &mut rng, None, device).expect("init");
        let mut trajectory = Vec::new();
        let out = langevin(&density, x0.clone(), &config, None, &mut DeviceNoise, |event| {
            trajectory.push(event.x.clone());
            ControlFlow::Continue(())
        });
        trajectory.push(out.x.clone());
        let values: Vec<f64> = trajectory.iter().map(|x| total_log_density(&density, x, config.reference_sigma)).collect();
        println!("log-density along the chain: first {:.5}, last {:.5}", values[0], values[values.len() - 1]);
        for pair in values.windows(2) {
            assert!(pair[1] >= pair[0] - 1e-4 * pair[0].abs().max(1.0), "log-density fell: {} -> {}", pair[0], pair[1]);
        }
        assert!(values[values.len() - 1] > values[0], "no progress over the chain");
        assert_eq!(out.steps_run, 30);
    }
}

fn frozen_pixels_never_change(device: &Device) {
    let stack = ShortRunConfig::new().with_image_size(16).with_n_f(4).init(device).expect("init");
    let density = NetDensity { stack: &stack, polarity: Polarity::NegativeEnergy };
    let x0 = uniform([2, 3, 16, 16], device);
    // Freeze the left half of every image: only the right half may move.
    let columns = Tensor::<1, Int>::arange(0..16, device).reshape([1, 1, 1, 16]).expand([2, 3, 16, 16]);
    let frozen = columns.lower_elem(8);
    let out = langevin(&density, x0.clone(), &LangevinConfig::short_run(10), Some(&frozen), &mut DeviceNoise::seeded(device, 5), |_| {
        ControlFlow::Continue(())
    });
    let (before, after, mask) = (host(x0), host(out.x), host(frozen.float()));
    let mut moved_free = 0;
    for ((b, a), m) in before.iter().zip(&after).zip(&mask) {
        if *m > 0.5 {
            assert_eq!(a.to_bits(), b.to_bits(), "a frozen pixel changed");
        } else if a != b {
            moved_free += 1;
        }
    }
    assert!(moved_free > before.len() / 4, "free pixels should move, {moved_free} did");
}

/// With `clip`, every step ends inside the bounds, and the first step is the unclipped step
/// clamped (the same noise, from the host generator: other tests reseed the device's); a drift
/// this strong takes unclipped chains far outside.
fn clipped_chains_stay_in_range(device: &Device) {
    let stack = ShortRunConfig::new().with_image_size(16).with_n_f(4).init(device).expect("init");
    let density = NetDensity { stack: &stack, polarity: Polarity::NegativeEnergy };
    let x0 = uniform([2, 3, 16, 16], device);
    let free = LangevinConfig { step_size: 200.0, noise: 0.5, ..LangevinConfig::short_run(1) };
    let clipped = LangevinConfig { clip: Some([-1.0, 1.0]), ..free };
    let run = |config: &LangevinConfig| {
        let out = langevin(&density, x0.clone(), config, None, &mut HostRng::new(9), |_| ControlFlow::Continue(()));
        host(out.x)
    };
    let (free_step, clipped_step) = (run(&free), run(&clipped));
    let outside = free_step.iter().filter(|v| v.abs() > 1.0).count();
    assert!(outside > free_step.len() / 10, "only {outside} of {} values left [−1, 1] unclipped", free_step.len());
    for (f, c) in free_step.iter().zip(&clipped_step) {
        assert!((f.clamp(-1.0, 1.0) - c).abs() < 1e-6, "clipped {c} is not clamp({f})");
    }
    let chain = run(&LangevinConfig { steps: 10, ..clipped });
    assert!(chain.iter().all(|v| (-1.0..=1.0).contains(v)), "a clipped chain left [−1, 1]");
    assert!(chain.iter().any(|v| v.abs() < 1.0), "every value stuck at a bound");
}

fn callback_can_stop_a_chain(device: &Device) {
    let stack = ShortRunConfig::new().with_image_size(16).with_n_f(4).init(device).expect("init");
    let density = NetDensity { stack: &stack, polarity: Polarity::NegativeEnergy };
    let out = langevin(&density, uniform([1, 3, 16, 16], device), &LangevinConfig::short_run(50), None, &mut DeviceNoise, |e| {
        if e.step > 7 { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
    });
    assert_eq!(out.steps_run, 7);
}

fn scaling_is_block_average_and_replication(device: &Device) {
    let x = uniform([2, 3, 16, 16], device);
    let down = downscale(x.clone(), 4);
    assert_eq!(down.dims(), [2, 3, 4, 4]);
    // Block average computed on the host.
    let xs = host(x.clone());
    let ds = host(down.clone());
    let at = |n: usize, c: usize, i: usize, j: usize| xs[((n * 3 + c) * 16 + i) * 16 + j];
    for n in 0..2 {
        for c in 0..3 {
            for bi in 0..4 {
                for bj in 0..4 {
                    let mean: f32 = (0..4).flat_map(|i| (0..4).map(move |j| (i, j))).map(|(i, j)| at(n, c, bi * 4 + i, bj * 4 + j)).sum::<f32>() / 16.0;
                    let got = ds[((n * 3 + c) * 4 + bi) * 4 + bj];
                    assert!((got - mean).abs() < 1e-6, "block average {got} vs {mean}");
                }
            }
        }
    }
    // downscale ∘ upscale is the identity; upscale ∘ downscale is a projection.
    let round_trip = host(downscale(upscale(down.clone(), 4), 4));
    for (a, b) in round_trip.iter().zip(&ds) {
        assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0), "down(up(x)) != x: {a} vs {b}");
    }
    let up = upscale(down, 4);
    let projected = host(upscale(downscale(up.clone(), 4), 4));
    for (a, b) in projected.iter().zip(host(up)) {
        assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0));
    }
    // A coarse pixel is frozen only if its whole block is.
    let frozen = Tensor::<4>::ones([1, 1, 8, 8], device).greater_elem(0.0);
    let mut partly = host(frozen.clone().float());
    partly[0] = 0.0; // one free pixel in the top-left 4×4 block
    let frozen = Tensor::<4>::from_data(TensorData::new(partly, [1, 1, 8, 8]), device).greater_elem(0.5);
    let coarse = host(downscale_mask(frozen, 4).float());
    assert_eq!(coarse, vec![0.0, 1.0, 1.0, 1.0]);
}

fn cascade_produces_every_grid(device: &Device) {
    let model = MultigridConfig::new().with_width_divisor(32);
    let stacks: Vec<_> = [4, 16, 64].iter().map(|&s| model.grid_spec(s).expect("spec").init(device).expect("init")).collect();
    let densities: Vec<_> = stacks.iter().map(|stack| NetDensity { stack, polarity: Polarity::NegativeEnergy }).collect();
    let grids: Vec<_> = densities.iter().zip([4, 16, 64]).map(|(density, side)| Grid { side, density, langevin: LangevinConfig::delta(3, 0.3, 50.0) }).collect();
    let start = Tensor::<4>::full([2, 3, 1, 1], 128.0, device);
    let mut events = vec![0; 3];
    let outputs = cascade(&grids, start, None, &mut DeviceNoise::seeded(device, 1), |grid, _| {
        events[grid] += 1;
        ControlFlow::Continue(())
    });
    let dims: Vec<_> = outputs.iter().map(|o| o.dims()).collect();
    assert_eq!(dims, vec![[2, 3, 4, 4], [2, 3, 16, 16], [2, 3, 64, 64]]);
    assert_eq!(events, vec![3, 3, 3]);
    let finest = host(outputs[2].clone());
    assert!(finest.iter().all(|v| v.is_finite()));
    // Started at 128 and moved by a few noisy steps: still close to it on the 0–255 scale.
    let mean = finest.iter().map(|v| *v as f64).sum::<f64>() / finest.len() as f64;
    assert!((mean - 128.0).abs() < 20.0, "mean {mean}");
}

/// Inpainting through the cascade: known pixels are imposed at every grid and never move;
/// coarse grids know a pixel only when its whole block is known.
fn cascade_inpainting_keeps_known_pixels(device: &Device) {
    let model = MultigridConfig::new().with_width_divisor(32).with_channels(1);
    let stacks: Vec<_> = [4, 16, 64].iter().map(|&s| model.grid_spec(s).expect("spec").init(device).expect("init")).collect();
    let densities: Vec<_> = stacks.iter().map(|stack| NetDensity { stack, polarity: Polarity::NegativeEnergy }).collect();
    let grids: Vec<_> = densities.iter().zip([4, 16, 64]).map(|(density, side)| Grid { side, density, langevin: LangevinConfig::delta(4, 0.3, 50.0) }).collect();
    let values: Vec<f32> = (0..2 * 64 * 64).map(|i| ((i * 37) % 255) as f32).collect();
    let images = Tensor::<4>::from_data(TensorData::new(values.clone(), [2, 1, 64, 64]), device);
    // Missing: a 24×24 square at (8, 20) in image 0, every 5th pixel in image 1.
    let missing: Vec<bool> = (0..2 * 64 * 64).map(|i| {
        let (n, y, x) = (i / 4096, (i / 64) % 64, i % 64);
        if n == 0 { (8..32).contains(&y) && (20..44).contains(&x) } else { i % 5 == 0 }
    }).collect();
    let known_values: Vec<f32> = missing.iter().map(|m| if *m { 0.0 } else { 1.0 }).collect();
    let known = Tensor::<4>::from_data(TensorData::new(known_values, [2, 1, 64, 64]), device).greater_elem(0.5);
    let observation = Observation { images, known };
    // The 1×1 start is the mean of the known pixels.
    let start = observation.known_mean();
    let means = host(start.clone());
    for (n, mean) in means.iter().enumerate() {
        let (sum, count) = (0..4096).filter(|j| !missing[n * 4096 + j]).fold((0.0f64, 0usize), |(s, c), j| (s + f64::from(values[n * 4096 + j]), c + 1));
        assert!((f64::from(*mean) - sum / count as f64).abs() < 1e-3, "known mean {mean}");
    }
    // At 16×16 the (block-aligned) square is 6×6 free blocks.
    let coarse = observation.coarse(4);
    let known = host(coarse.known.float());
    let free_blocks = known[..256].iter().filter(|v| **v == 0.0).count();
    assert_eq!(free_blocks, 6 * 6, "the square (8..32, 20..44) is 6×6 blocks of 4, all of them free");
    assert!(known[256..].iter().all(|v| *v == 0.0), "every 4×4 block of image 1 has a missing pixel");
    // ...but each still has known pixels, and its chain starts at their mean.
    let partly = host(coarse.partly_known.float());
    assert_eq!(partly[..256].iter().filter(|v| **v == 0.0).count(), 6 * 6);
    assert!(partly[256..].iter().all(|v| *v == 1.0));
    let block_means = host(coarse.mean);
    let (sum, count) = (0..4).flat_map(|y| (0..4).map(move |x| 4096 + y * 64 + x)).filter(|i| !missing[*i]).fold((0.0f64, 0usize), |(s, c), i| (s + f64::from(values[i]), c + 1));
    assert!((f64::from(block_means[256]) - sum / count as f64).abs() < 1e-3, "mean of the known pixels of image 1's first block");
    let outputs = cascade(&grids, start, Some(&observation), &mut DeviceNoise::seeded(device, 2), |_, _| ControlFlow::Continue(()));
    let finest = host(outputs[2].clone());
    let mut moved = 0;
    for (i, (got, want)) in finest.iter().zip(&values).enumerate() {
        if missing[i] {
            moved += usize::from(got != want);
        } else {
            assert_eq!(got.to_bits(), want.to_bits(), "known pixel {i} changed");
        }
    }
    assert!(moved > missing.iter().filter(|m| **m).count() / 2, "missing pixels were sampled ({moved} moved)");
}

/// `E(z) = ‖z − μ‖² / 2`: the target `exp(−E)` is `N(μ, I)`.
struct Gaussian {
    mean: f64,
}

impl LatentEnergy for Gaussian {
    fn energy_and_grad(&self, z: Tensor<2>) -> (Tensor<1>, Tensor<2>) {
        let [n, _] = z.dims();
        let centred = z.sub_scalar(self.mean);
        (centred.clone().square().sum_dim(1).reshape([n]).div_scalar(2.0), centred)
    }
}

fn mala_samples_a_gaussian(device: &Device) {
    let energy = Gaussian { mean: 1.5 };
    let config = MalaConfig { steps: 150, step_size: 0.2, temperature: 1.0, proposal_norm: ProposalNorm::Squared };
    let z0 = Tensor::<2>::zeros([2000, 2], device).sub_scalar(2.0);
    let out = mala(&energy, z0, &config, &mut HostRng::new(9));
    let z = host(out.z);
    let n = z.len() as f64;
    let mean = z.iter().map(|v| *v as f64).sum::<f64>() / n;
    let var = z.iter().map(|v| (*v as f64 - mean).powi(2)).sum::<f64>() / n;
    let rate = scalar(out.acceptance_rate);
    println!("MALA on N(1.5, I): mean {mean:.3}, variance {var:.3}, acceptance {rate:.3}");
    assert!((mean - 1.5).abs() < 0.08, "mean {mean}");
    assert!((var - 1.0).abs() < 0.12, "variance {var}");
    assert!(rate > 0.6 && rate < 1.0, "acceptance rate {rate}");
}

/// The chains' Gaussian noise (on the CPU from `rng::fill_normal`, seeded by the device's
/// generator; elsewhere burn's) has a standard normal's moments, and two draws differ.
fn device_noise_is_standard_normal(device: &Device) {
    let mut noise = DeviceNoise::seeded(device, 21);
    let first = host(noise.normal([8, 3, 32, 32], device));
    let second = host(noise.normal([8, 3, 32, 32], device));
    let n = first.len() as f64;
    let mean = first.iter().map(|v| *v as f64).sum::<f64>() / n;
    let variance = first.iter().map(|v| (*v as f64 - mean).powi(2)).sum::<f64>() / n;
    let beyond_two = first.iter().filter(|v| v.abs() > 2.0).count() as f64 / n;
    println!("device noise: mean {mean:.4}, variance {variance:.4}, P(|z| > 2) {beyond_two:.4}");
    assert!(mean.abs() < 0.03, "mean {mean}");
    assert!((variance - 1.0).abs() < 0.04, "variance {variance}");
    assert!((beyond_two - 0.0455).abs() < 0.008, "P(|z| > 2) = {beyond_two}");
    let equal = first.iter().zip(&second).filter(|(a, b)| a == b).count();
    assert!(equal < 5, "consecutive draws share {equal} values");
}

device_tests!(
    device_noise_is_standard_normal,
    noise_free_chains_increase_the_log_density,
    frozen_pixels_never_change,
    clipped_chains_stay_in_range,
    callback_can_stop_a_chain,
    scaling_is_block_average_and_replication,
    cascade_produces_every_grid,
    cascade_inpainting_keeps_known_pixels,
    mala_samples_a_gaussian,
);

#[test]
fn mala_rejects_everything_when_the_energy_is_nan() {
    struct Broken;
    impl LatentEnergy for Broken {
        fn energy_and_grad(&self, z: Tensor<2>) -> (Tensor<1>, Tensor<2>) {
            let [n, _] = z.dims();
            (Tensor::<1>::full([n], f32::NAN, &z.device()), z.zeros_like())
        }
    }
    let device = Device::flex();
    let z0 = Tensor::<2>::ones([10, 3], &device);
    let out = mala(&Broken, z0, &MalaConfig::default(), &mut HostRng::new(1));
    assert_eq!(scalar(out.acceptance_rate), 0.0);
    assert!(host(out.z).iter().all(|v| *v == 1.0));
}

#[test]
fn initialisations_are_seeded_and_persistent_chains_round_trip() {
    let device = Device::flex();
    let draw = |seed| host(ChainInit::Uniform { low: -1.0, high: 1.0 }.sample([2, 1, 4, 4], &mut HostRng::new(seed), None, &device).expect("init"));
    assert_eq!(draw(4), draw(4));
    assert_ne!(draw(4), draw(5));
    assert!(draw(4).iter().all(|v| (-1.0..1.0).contains(v)));
    assert!(ChainInit::Data.sample([1, 1, 2, 2], &mut HostRng::new(1), None, &device).is_none());
    let mut bank = PersistentChains::new(Tensor::zeros([6, 1, 2, 2], &device));
    bank.put(2, Tensor::ones([3, 1, 2, 2], &device));
    let all = host(bank.all().clone());
    assert_eq!(all.iter().filter(|v| **v == 1.0).count(), 12);
    assert_eq!(host(bank.get(2, 3)), vec![1.0; 12]);
}
