//! Sample-quality numbers computed on the host: the one metrics module every model family
//! uses (FID/KID on Inception features, MSE/PSNR, masked inpainting errors, AUPRC,
//! percentile-threshold precision/recall/F1, mode counts and KL).

mod fid;

pub use fid::{DistanceError, frechet_distance, kernel_distance};

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

/// Peak signal-to-noise ratio `10·log10(peak²/MSE)` in dB over all values (100 dB for equal
/// inputs, the convention [`masked_scores`] uses too).
pub fn psnr(a: &[f32], b: &[f32], peak: f64) -> f64 {
    let error = mse(a, b);
    if error > 0.0 { (10.0 * (peak * peak / error).log10()).min(100.0) } else { 100.0 }
}

/// Inpainting scores on the missing pixels only (the multigrid paper's Table 4), intensities
/// divided by `peak` (255 for 0–255 images).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MaskedScores {
    /// Mean absolute difference over all missing values.
    pub error: f64,
    /// PSNR `10·log10(1/MSE)` of each image's missing values, averaged over the images that
    /// have any (an exact image counts as 100 dB).
    pub psnr: f64,
    /// Missing values scored.
    pub values: usize,
}

/// Scores `result` against `original` where `missing` is true; all three hold images of
/// `image_len` values one after the other.
pub fn masked_scores(original: &[f32], result: &[f32], missing: &[bool], image_len: usize, peak: f64) -> MaskedScores {
    let (mut absolute, mut values, mut psnr_sum, mut images) = (0.0, 0usize, 0.0, 0usize);
    for ((a, b), m) in original.chunks(image_len.max(1)).zip(result.chunks(image_len.max(1))).zip(missing.chunks(image_len.max(1))) {
        let (mut squared, mut count) = (0.0, 0usize);
        for ((x, y), _) in a.iter().zip(b).zip(m).filter(|(_, m)| **m) {
            let d = f64::from(x - y) / peak;
            absolute += d.abs();
            squared += d * d;
            count += 1;
        }
        if count > 0 {
            let mse = squared / count as f64;
            psnr_sum += if mse > 0.0 { (10.0 * (1.0 / mse).log10()).min(100.0) } else { 100.0 };
            images += 1;
            values += count;
        }
    }
    MaskedScores { error: absolute / values.max(1) as f64, psnr: psnr_sum / images.max(1) as f64, values }
}

/// Area under the precision–recall curve of `scores` (higher = more anomalous) for `labels`
/// (`true` = anomaly), as scikit-learn's `precision_recall_curve` + `auc` compute it: one
/// point per distinct threshold plus (recall 0, precision 1), joined by the trapezoid rule.
/// `None` when there is no positive label or a score is not finite.
pub fn auprc(scores: &[f64], labels: &[bool]) -> Option<f64> {
    let positives = labels.iter().filter(|l| **l).count();
    if positives == 0 || scores.len() != labels.len() || scores.iter().any(|s| !s.is_finite()) {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|a, b| scores[*b].total_cmp(&scores[*a]));
    // (recall, precision) from the lowest recall up, one point per distinct threshold.
    let mut points = vec![(0.0, 1.0)];
    let (mut true_positives, mut predicted) = (0usize, 0usize);
    for (rank, &i) in order.iter().enumerate() {
        predicted += 1;
        true_positives += usize::from(labels[i]);
        let last_of_threshold = order.get(rank + 1).is_none_or(|&next| scores[next] != scores[i]);
        if last_of_threshold {
            points.push((true_positives as f64 / positives as f64, true_positives as f64 / predicted as f64));
            if true_positives == positives {
                break;
            }
        }
    }
    Some(points.windows(2).map(|w| (w[1].0 - w[0].0) * (w[1].1 + w[0].1) / 2.0).sum())
}

/// Precision, recall and F1 of calling a sample an anomaly when its score is at or above the
/// `percentile`-th percentile of all scores (KDD99 protocol: 80).
pub fn threshold_scores(scores: &[f64], labels: &[bool], percentile: f64) -> Option<(f64, f64, f64)> {
    if scores.is_empty() || scores.len() != labels.len() || scores.iter().any(|s| !s.is_finite()) {
        return None;
    }
    let mut sorted = scores.to_vec();
    sorted.sort_by(f64::total_cmp);
    // Linear interpolation between closest ranks, as numpy's default.
    let position = percentile.clamp(0.0, 100.0) / 100.0 * (sorted.len() - 1) as f64;
    let (low, high) = (position.floor() as usize, position.ceil() as usize);
    let threshold = sorted[low] + (sorted[high] - sorted[low]) * (position - low as f64);
    let (mut tp, mut fp, mut fn_) = (0.0, 0.0, 0.0);
    for (score, label) in scores.iter().zip(labels) {
        match (*score >= threshold, *label) {
            (true, true) => tp += 1.0,
            (true, false) => fp += 1.0,
            (false, true) => fn_ += 1.0,
            (false, false) => {}
        }
    }
    let precision = if tp + fp > 0.0 { tp / (tp + fp) } else { 0.0 };
    let recall = if tp + fn_ > 0.0 { tp / (tp + fn_) } else { 0.0 };
    let f1 = if precision + recall > 0.0 { 2.0 * precision * recall / (precision + recall) } else { 0.0 };
    Some((precision, recall, f1))
}

/// Modes found and KL(empirical ‖ uniform) of categorical samples over `categories` classes
/// (StackedMNIST: a class is a tuple of digits).
pub fn mode_statistics(samples: &[usize], categories: usize) -> (usize, f64) {
    let mut counts = vec![0usize; categories];
    for &s in samples.iter().filter(|s| **s < categories) {
        counts[s] += 1;
    }
    let total = counts.iter().sum::<usize>().max(1) as f64;
    let modes = counts.iter().filter(|c| **c > 0).count();
    let kl = counts.iter().filter(|c| **c > 0).map(|&c| c as f64 / total).map(|p| p * (p * categories as f64).ln()).sum();
    (modes, kl)
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

    #[test]
    fn psnr_follows_the_mean_squared_error() {
        // MSE 25.5² / 4 per value on a 255 peak: 10·log10(4·100) = 26.02 dB.
        let a = [0.0, 0.0, 0.0, 0.0];
        let b = [25.5, 0.0, 0.0, 0.0];
        assert!((psnr(&a, &b, 255.0) - 10.0 * 400.0f64.log10()).abs() < 1e-9);
        assert_eq!(psnr(&a, &a, 255.0), 100.0);
    }

    #[test]
    fn masked_scores_count_only_missing_values() {
        // Two images of 4 values; the known values differ wildly and must not count.
        let original = [0.0, 255.0, 100.0, 100.0, 50.0, 50.0, 50.0, 50.0];
        let result = [255.0, 0.0, 151.0, 100.0, 50.0, 50.0, 50.0, 50.0];
        let missing = [false, false, true, true, false, false, false, false];
        let scores = masked_scores(&original, &result, &missing, 4, 255.0);
        assert_eq!(scores.values, 2);
        assert!((scores.error - 51.0 / 255.0 / 2.0).abs() < 1e-9, "{scores:?}");
        // MSE of image 0 = (0.2² + 0)/2 = 0.02 → 16.99 dB; image 1 has no missing value.
        assert!((scores.psnr - 10.0 * (1.0f64 / 0.02).log10()).abs() < 1e-6, "{scores:?}");
    }

    #[test]
    fn auprc_of_perfect_random_and_inverted_rankings() {
        let labels = [true, true, false, false, false, false];
        assert_eq!(auprc(&[6.0, 5.0, 4.0, 3.0, 2.0, 1.0], &labels), Some(1.0));
        // Worst ranking: precision 0 until recall 1/2 at precision 1/5, then 2/6 at recall 1.
        let worst = auprc(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &labels).expect("defined");
        let expected = 0.5 * 0.2 / 2.0 + 0.5 * (0.2 + 1.0 / 3.0) / 2.0;
        assert!((worst - expected).abs() < 1e-12, "{worst} vs {expected}");
        // Tied scores form one threshold.
        let tied = auprc(&[1.0; 6], &labels).expect("defined");
        assert!((tied - (1.0 + 1.0 / 3.0) / 2.0).abs() < 1e-12, "{tied}");
        assert_eq!(auprc(&[1.0, 2.0], &[false, false]), None);
        assert_eq!(auprc(&[f64::NAN, 2.0], &[true, false]), None);
    }

    #[test]
    fn threshold_scores_at_the_80th_percentile() {
        let scores: Vec<f64> = (0..10).map(f64::from).collect();
        let labels: Vec<bool> = (0..10).map(|i| i >= 8 || i == 0).collect();
        let (precision, recall, f1) = threshold_scores(&scores, &labels, 80.0).expect("defined");
        // Threshold 7.2: scores 8 and 9 flagged, both anomalies; the anomaly at 0 is missed.
        assert_eq!(precision, 1.0);
        assert!((recall - 2.0 / 3.0).abs() < 1e-12);
        assert!((f1 - 0.8).abs() < 1e-12);
    }

    #[test]
    fn modes_and_kl_of_uniform_and_collapsed_samples() {
        let uniform: Vec<usize> = (0..1000).map(|i| i % 10).collect();
        let (modes, kl) = mode_statistics(&uniform, 10);
        assert_eq!(modes, 10);
        assert!(kl.abs() < 1e-12);
        let (modes, kl) = mode_statistics(&[3; 50], 10);
        assert_eq!(modes, 1);
        assert!((kl - 10f64.ln()).abs() < 1e-12);
    }
}
