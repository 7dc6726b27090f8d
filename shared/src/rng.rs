//! A small seeded random generator that gives the same numbers on every platform and backend.
//!
//! Chain initialisations drawn from it are identical natively and in the browser, so a
//! noise-free chain with the same seed produces the same image everywhere. Per-step Langevin
//! noise comes from the device's own generator by default (fast on a GPU), see
//! [`crate::sampler::NoiseSource`].

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

#[cfg(test)]
mod tests {
    use super::*;

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
