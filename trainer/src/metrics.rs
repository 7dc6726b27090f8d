//! Sample-quality numbers computed on the host.

/// Unbiased MMD² with a Gaussian kernel between two image sets after `pool × pool` average
/// pooling (a cheap, label-free "are these images like those" distance). Images are
/// `[N, C, H, W]` flattened; the bandwidth is the median pairwise distance of the pooled union.
pub fn pooled_mmd(a: &[f32], b: &[f32], channels: usize, height: usize, width: usize, pool: usize) -> f64 {
    let pooled = |set: &[f32]| -> Vec<Vec<f64>> {
        let size = channels * height * width;
        let (ph, pw) = (height / pool, width / pool);
        set.chunks_exact(size)
            .map(|image| {
                let mut out = vec![0.0; channels * ph * pw];
                for c in 0..channels {
                    for y in 0..ph * pool {
                        for x in 0..pw * pool {
                            out[(c * ph + y / pool) * pw + x / pool] += image[(c * height + y) * width + x] as f64 / (pool * pool) as f64;
                        }
                    }
                }
                out
            })
            .collect()
    };
    let (a, b) = (pooled(a), pooled(b));
    let distance = |x: &[f64], y: &[f64]| x.iter().zip(y).map(|(p, q)| (p - q).powi(2)).sum::<f64>();
    let mut all: Vec<f64> = Vec::new();
    let union: Vec<&Vec<f64>> = a.iter().chain(&b).collect();
    for i in 0..union.len() {
        for j in i + 1..union.len() {
            all.push(distance(union[i], union[j]));
        }
    }
    all.sort_by(f64::total_cmp);
    let bandwidth = all.get(all.len() / 2).copied().unwrap_or(1.0).max(1e-12);
    let kernel = |x: &[f64], y: &[f64]| (-distance(x, y) / bandwidth).exp();
    let within = |s: &[Vec<f64>]| {
        let n = s.len() as f64;
        let mut total = 0.0;
        for i in 0..s.len() {
            for j in 0..s.len() {
                if i != j {
                    total += kernel(&s[i], &s[j]);
                }
            }
        }
        total / (n * (n - 1.0)).max(1.0)
    };
    let cross: f64 = a.iter().flat_map(|x| b.iter().map(move |y| kernel(x, y))).sum::<f64>() / (a.len() * b.len()).max(1) as f64;
    within(&a) + within(&b) - 2.0 * cross
}

/// Mean squared error per value.
pub fn mse(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum::<f64>() / a.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mmd_is_near_zero_for_one_distribution_and_large_for_two() {
        let mut rng = shared::rng::HostRng::new(1);
        let mut draw = |offset: f64, n: usize| -> Vec<f32> { (0..n * 16).map(|_| (rng.normal() + offset) as f32).collect() };
        let same = pooled_mmd(&draw(0.0, 60), &draw(0.0, 60), 1, 4, 4, 2);
        let different = pooled_mmd(&draw(0.0, 60), &draw(1.5, 60), 1, 4, 4, 2);
        assert!(same.abs() < 0.05, "same distribution: {same}");
        assert!(different > 0.3, "shifted distribution: {different}");
    }
}
