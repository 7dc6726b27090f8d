//! Distances between two sets of feature vectors (Inception pool3 features for FID and KID),
//! computed in f64 on the host.
//!
//! FID is `‖μ₁ − μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr (Σ₁Σ₂)^½` with unbiased (N − 1) covariances. The
//! trace of the square root is the sum of `√λ` over the eigenvalues of `LᵀΣ₂L` for any factor
//! `Σ₁ = LLᵀ`; with fewer samples than dimensions the centred samples themselves are such a
//! factor, so the work is an `N × N` symmetric eigenproblem instead of a 2048 × 2048 matrix
//! square root. KID is the unbiased MMD² with the cubic polynomial kernel `(x·y/d + 1)³`.

/// Why two feature sets cannot be compared.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DistanceError {
    /// A set has fewer than two vectors (no covariance, no unbiased estimate).
    #[error("a feature set needs at least 2 vectors for a covariance; got {0}")]
    TooFew(usize),
    /// The value count is not a multiple of the dimension, or the dimensions differ.
    #[error("feature sets of {0} and {1} values do not both hold {2}-d vectors")]
    Shape(usize, usize, usize),
    /// A feature is NaN or infinite.
    #[error("a feature value is not finite")]
    NotFinite,
    /// The eigenvalue iteration did not converge (never seen on real covariances).
    #[error("the symmetric eigenvalue iteration did not converge")]
    NoConvergence,
}

/// Row-major `rows × dim` f64 matrix of centred vectors plus their mean.
struct Centred {
    rows: usize,
    values: Vec<f64>,
    mean: Vec<f64>,
}

impl Centred {
    fn new(features: &[f32], dim: usize) -> Self {
        let rows = features.len() / dim;
        let mut mean = vec![0.0; dim];
        for row in features.chunks_exact(dim) {
            for (m, v) in mean.iter_mut().zip(row) {
                *m += f64::from(*v);
            }
        }
        mean.iter_mut().for_each(|m| *m /= rows as f64);
        let values = features.chunks_exact(dim).flat_map(|row| row.iter().zip(&mean).map(|(v, m)| f64::from(*v) - m)).collect();
        Self { rows, values, mean }
    }

    /// `tr Σ` = sum of squares / (N − 1).
    fn covariance_trace(&self) -> f64 {
        self.values.iter().map(|v| v * v).sum::<f64>() / (self.rows - 1) as f64
    }

    /// `Σ = AᵀA / (N − 1)`, `dim × dim`.
    fn covariance(&self, dim: usize) -> Vec<f64> {
        let transposed = transpose(&self.values, self.rows, dim);
        let mut sigma = products(&transposed, &transposed, dim, dim, self.rows);
        sigma.iter_mut().for_each(|v| *v /= (self.rows - 1) as f64);
        sigma
    }
}

fn check(a: &[f32], b: &[f32], dim: usize) -> Result<(), DistanceError> {
    if dim == 0 || !a.len().is_multiple_of(dim) || !b.len().is_multiple_of(dim) {
        return Err(DistanceError::Shape(a.len(), b.len(), dim));
    }
    for count in [a.len() / dim, b.len() / dim] {
        if count < 2 {
            return Err(DistanceError::TooFew(count));
        }
    }
    if a.iter().chain(b).any(|v| !v.is_finite()) {
        return Err(DistanceError::NotFinite);
    }
    Ok(())
}

/// Fréchet distance between the Gaussians fitted to two sets of `dim`-d vectors (row-major).
pub fn frechet_distance(a: &[f32], b: &[f32], dim: usize) -> Result<f64, DistanceError> {
    check(a, b, dim)?;
    let (a, b) = (Centred::new(a, dim), Centred::new(b, dim));
    let mean_term: f64 = a.mean.iter().zip(&b.mean).map(|(x, y)| (x - y).powi(2)).sum();
    let (small, large) = if a.rows <= b.rows { (&a, &b) } else { (&b, &a) };
    let gram = if small.rows - 1 <= dim {
        // L = Aₛᵀ/√(Nₛ − 1): G = Aₛ Σₗ Aₛᵀ / (Nₛ − 1).
        let scale = 1.0 / (small.rows - 1) as f64;
        if large.rows <= dim {
            // Σₗ = AₗᵀAₗ/(Nₗ − 1): G = X Xᵀ with X = Aₛ Aₗᵀ (Nₛ × Nₗ).
            let cross = products(&small.values, &large.values, small.rows, large.rows, dim);
            let mut g = products(&cross, &cross, small.rows, small.rows, large.rows);
            g.iter_mut().for_each(|v| *v *= scale / (large.rows - 1) as f64);
            g
        } else {
            let sigma = large.covariance(dim);
            let left = products(&small.values, &sigma, small.rows, dim, dim); // Aₛ Σₗ (Σ symmetric)
            let mut g = products(&left, &small.values, small.rows, small.rows, dim);
            g.iter_mut().for_each(|v| *v *= scale);
            g
        }
    } else {
        let factor = pivoted_cholesky(&small.covariance(dim), dim); // Lᵀ, rank × dim
        let rank = factor.len() / dim;
        let sigma = large.covariance(dim);
        let left = products(&factor, &sigma, rank, dim, dim);
        products(&left, &factor, rank, rank, dim)
    };
    let order = (gram.len() as f64).sqrt() as usize;
    let eigenvalues = symmetric_eigenvalues(gram, order)?;
    let root_trace: f64 = eigenvalues.iter().map(|l| l.max(0.0).sqrt()).sum();
    Ok((mean_term + a.covariance_trace() + b.covariance_trace() - 2.0 * root_trace).max(0.0))
}

/// Kernel Inception Distance: unbiased MMD² between two sets of `dim`-d vectors with the
/// kernel `(x·y/dim + 1)³`, on the whole sets (no subsets).
pub fn kernel_distance(a: &[f32], b: &[f32], dim: usize) -> Result<f64, DistanceError> {
    check(a, b, dim)?;
    let widen = |set: &[f32]| set.iter().map(|v| f64::from(*v)).collect::<Vec<f64>>();
    let (a, b) = (widen(a), widen(b));
    let (n, m) = (a.len() / dim, b.len() / dim);
    let kernel_sum = |x: &[f64], y: &[f64], rows: usize, cols: usize, skip_diagonal: bool| {
        let dots = products(x, y, rows, cols, dim);
        dots.iter()
            .enumerate()
            .filter(|(i, _)| !skip_diagonal || i / cols != i % cols)
            .map(|(_, d)| (d / dim as f64 + 1.0).powi(3))
            .sum::<f64>()
    };
    let within_a = kernel_sum(&a, &a, n, n, true) / (n * (n - 1)) as f64;
    let within_b = kernel_sum(&b, &b, m, m, true) / (m * (m - 1)) as f64;
    let across = kernel_sum(&a, &b, n, m, false) / (n * m) as f64;
    Ok(within_a + within_b - 2.0 * across)
}

fn transpose(values: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    let mut out = vec![0.0; values.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = values[r * cols + c];
        }
    }
    out
}

/// `X Yᵀ` for row-major `X` (`rows × inner`) and `Y` (`cols × inner`): every pair of rows'
/// dot product, on all cores.
fn products(x: &[f64], y: &[f64], rows: usize, cols: usize, inner: usize) -> Vec<f64> {
    let mut out = vec![0.0; rows * cols];
    if rows == 0 || cols == 0 {
        return out;
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(rows);
    let per_thread = rows.div_ceil(threads);
    std::thread::scope(|scope| {
        for (block, out_rows) in out.chunks_mut(per_thread * cols).enumerate() {
            scope.spawn(move || {
                for (offset, out_row) in out_rows.chunks_mut(cols).enumerate() {
                    let row = &x[(block * per_thread + offset) * inner..][..inner];
                    for (c, value) in out_row.iter_mut().enumerate() {
                        *value = dot(row, &y[c * inner..][..inner]);
                    }
                }
            });
        }
    });
    out
}

/// Dot product with four independent sums, so the compiler can vectorise it.
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut sums = [0.0; 4];
    let (a4, b4) = (a.chunks_exact(4), b.chunks_exact(4));
    let tail: f64 = a4.remainder().iter().zip(b4.remainder()).map(|(x, y)| x * y).sum();
    for (p, q) in a4.zip(b4) {
        for k in 0..4 {
            sums[k] += p[k] * q[k];
        }
    }
    sums.iter().sum::<f64>() + tail
}

/// Lᵀ (`rank × dim`, row-major) with `LLᵀ = matrix` for a positive semi-definite matrix,
/// stopping when the largest remaining pivot falls below 1e-12 of the largest diagonal entry.
fn pivoted_cholesky(matrix: &[f64], dim: usize) -> Vec<f64> {
    let mut residual: Vec<f64> = (0..dim).map(|i| matrix[i * dim + i]).collect();
    let floor = residual.iter().cloned().fold(0.0, f64::max) * 1e-12;
    let mut rows: Vec<Vec<f64>> = Vec::new();
    while rows.len() < dim {
        let (pivot, &value) = residual.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).expect("dim > 0");
        if value <= floor {
            break;
        }
        let root = value.sqrt();
        let column: Vec<f64> = (0..dim)
            .map(|i| (matrix[i * dim + pivot] - rows.iter().map(|r| r[i] * r[pivot]).sum::<f64>()) / root)
            .collect();
        for (r, c) in residual.iter_mut().zip(&column) {
            *r -= c * c;
        }
        residual[pivot] = 0.0;
        rows.push(column);
    }
    rows.concat()
}

/// Eigenvalues of a symmetric `order × order` matrix (row-major; only its values are used):
/// Householder reduction to tridiagonal form, then the implicit QL iteration with Wilkinson
/// shifts. Unsorted.
pub(crate) fn symmetric_eigenvalues(mut a: Vec<f64>, order: usize) -> Result<Vec<f64>, DistanceError> {
    let n = order;
    let mut diagonal = vec![0.0; n];
    let mut off = vec![0.0; n]; // off[i] couples i and i + 1
    for k in 0..n.saturating_sub(2) {
        // Reflect column k below the diagonal onto its first entry.
        let m = n - k - 1;
        let x: Vec<f64> = (k + 1..n).map(|i| a[i * n + k]).collect();
        let norm = x.iter().map(|v| v * v).sum::<f64>().sqrt();
        diagonal[k] = a[k * n + k];
        if norm == 0.0 {
            off[k] = 0.0;
            continue;
        }
        let alpha = if x[0] > 0.0 { -norm } else { norm };
        let mut v = x;
        v[0] -= alpha;
        let vv: f64 = v.iter().map(|t| t * t).sum();
        off[k] = alpha;
        if vv == 0.0 {
            continue;
        }
        // A₂₂ ← H A₂₂ H with H = I − 2vvᵀ/vᵀv: p = 2A₂₂v/vᵀv, q = p − (vᵀp/vᵀv)v, A₂₂ −= vqᵀ + qvᵀ.
        let mut p = vec![0.0; m];
        for (i, pi) in p.iter_mut().enumerate() {
            *pi = 2.0 * dot(&a[(k + 1 + i) * n + k + 1..][..m], &v) / vv;
        }
        let kappa = dot(&v, &p) / vv;
        let q: Vec<f64> = p.iter().zip(&v).map(|(pi, vi)| pi - kappa * vi).collect();
        for i in 0..m {
            let row = &mut a[(k + 1 + i) * n + k + 1..][..m];
            for j in 0..m {
                row[j] -= v[i] * q[j] + q[i] * v[j];
            }
        }
    }
    if n >= 2 {
        diagonal[n - 2] = a[(n - 2) * n + n - 2];
        off[n - 2] = a[(n - 1) * n + n - 2];
    }
    if n >= 1 {
        diagonal[n - 1] = a[(n - 1) * n + n - 1];
    }
    tridiagonal_eigenvalues(&mut diagonal, &mut off)?;
    Ok(diagonal)
}

/// Implicit QL with Wilkinson shifts on a symmetric tridiagonal matrix; the eigenvalues replace
/// `diagonal`.
fn tridiagonal_eigenvalues(diagonal: &mut [f64], off: &mut [f64]) -> Result<(), DistanceError> {
    let n = diagonal.len();
    for l in 0..n {
        let mut iterations = 0;
        loop {
            let mut m = l;
            while m + 1 < n {
                let scale = diagonal[m].abs() + diagonal[m + 1].abs();
                if off[m].abs() <= f64::EPSILON * scale {
                    break;
                }
                m += 1;
            }
            if m == l {
                break;
            }
            iterations += 1;
            if iterations > 100 {
                return Err(DistanceError::NoConvergence);
            }
            let mut g = (diagonal[l + 1] - diagonal[l]) / (2.0 * off[l]);
            let mut r = g.hypot(1.0);
            g = diagonal[m] - diagonal[l] + off[l] / (g + r.copysign(g));
            let (mut s, mut c, mut p) = (1.0, 1.0, 0.0);
            let mut deflated = false;
            for i in (l..m).rev() {
                let f = s * off[i];
                let b = c * off[i];
                r = f.hypot(g);
                off[i + 1] = r;
                if r == 0.0 {
                    diagonal[i + 1] -= p;
                    off[m] = 0.0;
                    deflated = true;
                    break;
                }
                s = f / r;
                c = g / r;
                g = diagonal[i + 1] - p;
                r = (diagonal[i] - g) * s + 2.0 * c * b;
                p = s * r;
                diagonal[i + 1] = g + p;
                g = c * r - b;
            }
            if deflated {
                continue;
            }
            diagonal[l] -= p;
            off[l] = g;
            off[m] = 0.0;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic pseudo-random values in [−1, 1).
    fn noise(count: usize, seed: u64) -> Vec<f32> {
        let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (0..count)
            .map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) as f32
            })
            .collect()
    }

    #[test]
    fn eigenvalues_of_a_rotated_diagonal_matrix() {
        // Q diag(λ) Qᵀ with Q a product of two reflections.
        let n = 7;
        let lambda = [5.0, -2.0, 0.5, 0.5, 3.25, -7.0, 1e-3];
        let reflect = |v: &[f64]| {
            let vv: f64 = v.iter().map(|x| x * x).sum();
            let mut h = vec![0.0; n * n];
            for i in 0..n {
                for j in 0..n {
                    h[i * n + j] = f64::from(u8::from(i == j)) - 2.0 * v[i] * v[j] / vv;
                }
            }
            h
        };
        let multiply = |x: &[f64], y: &[f64]| products(x, &transpose(y, n, n), n, n, n);
        let q = multiply(&reflect(&[1.0, 2.0, -1.0, 0.5, 3.0, 0.0, 1.0]), &reflect(&[0.3, -1.0, 2.0, 2.0, 0.1, 1.0, -0.5]));
        let mut d = vec![0.0; n * n];
        for i in 0..n {
            d[i * n + i] = lambda[i];
        }
        let a = multiply(&multiply(&q, &d), &transpose(&q, n, n));
        let mut found = symmetric_eigenvalues(a, n).expect("valid input");
        found.sort_by(f64::total_cmp);
        let mut expected = lambda.to_vec();
        expected.sort_by(f64::total_cmp);
        for (f, e) in found.iter().zip(&expected) {
            assert!((f - e).abs() < 1e-12, "{found:?} vs {expected:?}");
        }
    }

    #[test]
    fn fid_of_identical_sets_is_zero_and_grows_with_a_shift() {
        for (n, dim) in [(20, 64), (90, 16)] {
            let a = noise(n * dim, 1);
            assert!(frechet_distance(&a, &a, dim).expect("valid input") < 1e-9, "n {n} dim {dim}");
            let shifted: Vec<f32> = a.iter().map(|v| v + 0.5).collect();
            // A pure shift changes only the mean term: dim · 0.25.
            let fid = frechet_distance(&a, &shifted, dim).expect("valid input");
            assert!((fid - dim as f64 * 0.25).abs() < 1e-6, "{fid}");
            // KID: near 0 for another sample of the same distribution, far from it after the shift.
            let other = noise(n * dim, 2);
            let (same, apart) = (kernel_distance(&a, &other, dim).expect("valid input"), kernel_distance(&a, &shifted, dim).expect("valid input"));
            assert!(apart > 0.1 && same.abs() < 0.05 * apart, "KID {same} vs {apart}");
        }
    }

    #[test]
    fn the_three_factorisations_agree() {
        // Few samples (factor from the samples, cross products), few vs many (factor from the
        // samples, one covariance) and many vs many (pivoted Cholesky) must give the same FID
        // as a direct computation through Σ₁^½.
        let dim = 12;
        let reference = |a: &[f32], b: &[f32]| {
            let (ca, cb) = (Centred::new(a, dim), Centred::new(b, dim));
            let (sa, sb) = (ca.covariance(dim), cb.covariance(dim));
            let factor = pivoted_cholesky(&sa, dim);
            let rank = factor.len() / dim;
            let left = products(&factor, &sb, rank, dim, dim);
            let g = products(&left, &factor, rank, rank, dim);
            let root: f64 = symmetric_eigenvalues(g, rank).expect("valid input").iter().map(|l| l.max(0.0).sqrt()).sum();
            let mean: f64 = ca.mean.iter().zip(&cb.mean).map(|(x, y)| (x - y).powi(2)).sum();
            mean + ca.covariance_trace() + cb.covariance_trace() - 2.0 * root
        };
        for (n, m) in [(8, 10), (9, 40), (30, 45)] {
            let a = noise(n * dim, 3);
            let b: Vec<f32> = noise(m * dim, 4).iter().enumerate().map(|(i, v)| v * (1.0 + (i % dim) as f32 / 6.0)).collect();
            let fid = frechet_distance(&a, &b, dim).expect("valid input");
            let direct = reference(&a, &b);
            // The rank-deficient case (8 samples in 12 dimensions) loses digits to the near-zero
            // pivots of the reference's Cholesky: 2e-9 relative at 8×10.
            assert!((fid - direct).abs() < 1e-7 * direct.max(1.0), "{n}×{m}: {fid} vs {direct}");
            assert!((frechet_distance(&b, &a, dim).expect("valid input") - fid).abs() < 1e-7 * fid.max(1.0));
        }
    }

    #[test]
    fn bad_input_is_an_error() {
        assert_eq!(frechet_distance(&[1.0; 4], &[1.0; 8], 4), Err(DistanceError::TooFew(1)));
        assert_eq!(frechet_distance(&[1.0; 10], &[1.0; 8], 4), Err(DistanceError::Shape(10, 8, 4)));
        assert_eq!(kernel_distance(&[f32::NAN; 8], &[1.0; 8], 4), Err(DistanceError::NotFinite));
    }
}
