//! A small seeded random generator that gives the same numbers on every platform and backend.
//!
//! Chain initialisations drawn from it are identical natively and in the browser, so a
//! noise-free chain with the same seed produces the same image everywhere. Per-step Langevin
//! noise comes from the device's own generator by default (fast on a GPU; on the CPU it seeds
//! [`fill_normal`]), see [`crate::sampler::NoiseSource`].

use burn::prelude::*;

/// xoshiro256++ seeded through SplitMix64.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HostRng {
    state: [u64; 4],
}

impl HostRng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Self { state: [next(), next(), next(), next()] }
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.state;
        let result = (s[0].wrapping_add(s[3])).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `[low, high)`.
    pub fn uniform(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.next_f64()
    }

    /// Standard normal (Box–Muller, one value per call).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.next_f64();
        let u2 = self.next_f64();
        (-2.0 * u1.ln()).sqrt() * (core::f64::consts::TAU * u2).cos()
    }

    /// Uniform integer in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_f64() * n as f64) as usize % n.max(1)
    }

    /// A fresh seed for another generator (e.g. the device's).
    pub fn fork_seed(&mut self) -> u64 {
        self.next_u64()
    }

    /// A `[N, C, H, W]` tensor of `Uniform[low, high)` values.
    pub fn uniform_tensor(&mut self, shape: [usize; 4], low: f64, high: f64, device: &Device) -> Tensor<4> {
        let values: Vec<f32> = (0..shape.iter().product()).map(|_| self.uniform(low, high) as f32).collect();
        Tensor::from_data(TensorData::new(values, shape), device)
    }

    /// A tensor of `N(0, std²)` values.
    pub fn normal_tensor<const D: usize>(&mut self, shape: [usize; D], std: f64, device: &Device) -> Tensor<D> {
        let values: Vec<f32> = (0..shape.iter().product()).map(|_| (std * self.normal()) as f32).collect();
        Tensor::from_data(TensorData::new(values, shape), device)
    }
}

/// Values per stream of [`fill_normal`]: each has a generator of its own, so the numbers do
/// not depend on how many threads share the work.
const NORMAL_STREAM: usize = 4096;

/// Fills `out` with standard normal values: Marsaglia's polar method on xoshiro256++ streams
/// seeded from `seed` (one per 4096 values), on all cores where threads exist. burn's CPU generator draws
/// each value through a ChaCha stream on one thread, a tenth of a small net's Langevin step.
pub fn fill_normal(seed: u64, out: &mut [f32]) {
    crate::cpu_conv::for_each_part(out, NORMAL_STREAM, |stream, values| {
        let mut rng = HostRng::new(seed ^ (stream as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        for pair in values.chunks_mut(2) {
            // Marsaglia's polar method: a uniform point of the unit disc, scaled (no sine or
            // cosine; 21 % of the points are drawn again).
            let (u, v, radius2) = loop {
                let bits = rng.next_u64();
                let u = (bits >> 40) as f32 * (2.0 / 16_777_216.0) - 1.0;
                let v = ((bits >> 16) & 0xFF_FFFF) as f32 * (2.0 / 16_777_216.0) - 1.0;
                let radius2 = u * u + v * v;
                if radius2 < 1.0 && radius2 > 0.0 {
                    break (u, v, radius2);
                }
            };
            let scale = (-2.0 * radius2.ln() / radius2).sqrt();
            pair[0] = u * scale;
            if let Some(second) = pair.get_mut(1) {
                *second = v * scale;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The polar method's values have a standard normal's moments and tails, are the same for
    /// the same seed whatever the length's split into streams, and differ between seeds.
    #[test]
    fn fill_normal_is_standard_normal_and_seeded() {
        let n = 3 * NORMAL_STREAM * 50 + 7;
        let mut values = vec![0.0; n];
        fill_normal(11, &mut values);
        let n_f = n as f64;
        let mean = values.iter().map(|&z| z as f64).sum::<f64>() / n_f;
        let variance = values.iter().map(|&z| (z as f64 - mean).powi(2)).sum::<f64>() / n_f;
        let kurtosis = values.iter().map(|&z| (z as f64 - mean).powi(4)).sum::<f64>() / n_f / variance.powi(2);
        let beyond_two = values.iter().filter(|z| z.abs() > 2.0).count() as f64 / n_f;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((variance - 1.0).abs() < 0.01, "variance {variance}");
        assert!((kurtosis - 3.0).abs() < 0.05, "kurtosis {kurtosis}");
        assert!((beyond_two - 0.0455).abs() < 0.002, "P(|z| > 2) = {beyond_two}");
        let mut again = vec![0.0; n];
        fill_normal(11, &mut again);
        assert_eq!(values, again, "same seed, same values");
        fill_normal(12, &mut again);
        let same = values.iter().zip(&again).filter(|(a, b)| a == b).count();
        assert!(same < 10, "{same} equal values for another seed");
        // A shorter fill is the start of the longer one (streams of fixed length).
        let mut short = vec![0.0; NORMAL_STREAM + 3];
        fill_normal(11, &mut short);
        assert_eq!(short, values[..short.len()]);
    }

    #[test]
    fn moments_of_uniform_and_normal_are_right() {
        let mut rng = HostRng::new(7);
        let n = 200_000;
        let (mut su, mut sn, mut sn2) = (0.0, 0.0, 0.0);
        for _ in 0..n {
            su += rng.uniform(-1.0, 1.0);
            let z = rng.normal();
            sn += z;
            sn2 += z * z;
        }
        let n = n as f64;
        assert!((su / n).abs() < 0.01, "uniform mean {}", su / n);
        assert!((sn / n).abs() < 0.01, "normal mean {}", sn / n);
        assert!((sn2 / n - 1.0).abs() < 0.02, "normal variance {}", sn2 / n);
    }

    #[test]
    fn same_seed_same_stream_other_seed_other_stream() {
        let a: Vec<u64> = (0..5).scan(HostRng::new(1), |r, _| Some(r.next_u64())).collect();
        let b: Vec<u64> = (0..5).scan(HostRng::new(1), |r, _| Some(r.next_u64())).collect();
        let c: Vec<u64> = (0..5).scan(HostRng::new(2), |r, _| Some(r.next_u64())).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
