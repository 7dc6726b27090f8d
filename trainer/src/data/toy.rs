//! The 2-D toy densities of the MEG paper (authors' `data/toy.py`): points drawn on demand.

use serde::{Deserialize, Serialize};
use shared::rng::HostRng;

/// A 2-D toy density.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum ToyDensity {
    /// A 5×5 grid of gaussians (centres 2·(−2..2), sd 0.05), divided by 2.828.
    #[value(name = "25gaussians")]
    Gaussians25,
    /// The swiss roll (`make_swiss_roll`, noise 0.25, columns x and z), divided by 7.5.
    #[value(name = "swissroll")]
    SwissRoll,
    /// 8 gaussians on a circle of radius 2 (sd 0.02), divided by 1.414.
    #[value(name = "8gaussians")]
    Gaussians8,
}

impl ToyDensity {
    /// All three, in the paper's order.
    pub const ALL: [Self; 3] = [Self::Gaussians25, Self::SwissRoll, Self::Gaussians8];

    /// Name used on the command line and in file names.
    pub fn name(self) -> &'static str {
        match self {
            Self::Gaussians25 => "25gaussians",
            Self::SwissRoll => "swissroll",
            Self::Gaussians8 => "8gaussians",
        }
    }

    /// `count` points, `[x₀, y₀, x₁, y₁, …]`.
    pub fn sample(self, count: usize, rng: &mut HostRng) -> Vec<f32> {
        let mut points = Vec::with_capacity(2 * count);
        for _ in 0..count {
            let [x, y] = match self {
                Self::Gaussians25 => {
                    let centre = |rng: &mut HostRng| 2.0 * (rng.below(5) as f64 - 2.0);
                    let (cx, cy) = (centre(rng), centre(rng));
                    [(cx + 0.05 * rng.normal()) / 2.828, (cy + 0.05 * rng.normal()) / 2.828]
                }
                Self::SwissRoll => {
                    let [x, y] = swiss_roll_curve(rng.next_f64());
                    [(x + 0.25 * rng.normal()) / 7.5, (y + 0.25 * rng.normal()) / 7.5]
                }
                Self::Gaussians8 => {
                    let [cx, cy] = eight_centres()[rng.below(8)];
                    [(2.0 * cx + 0.02 * rng.normal()) / 1.414, (2.0 * cy + 0.02 * rng.normal()) / 1.414]
                }
            };
            points.extend([x as f32, y as f32]);
        }
        points
    }

    /// Where the density lives: the mode centres of the mixtures, and points along the swiss
    /// roll's noise-free curve (every 1/2000 of its parameter), in data coordinates.
    pub fn support(self) -> Vec<[f64; 2]> {
        match self {
            Self::Gaussians25 => (-2..=2).flat_map(|i| (-2..=2).map(move |j| [2.0 * i as f64 / 2.828, 2.0 * j as f64 / 2.828])).collect(),
            Self::SwissRoll => (0..=2000).map(|k| swiss_roll_curve(k as f64 / 2000.0).map(|v| v / 7.5)).collect(),
            Self::Gaussians8 => eight_centres().iter().map(|[x, y]| [2.0 * x / 1.414, 2.0 * y / 1.414]).collect(),
        }
    }
}

/// Distance from `point` to the nearest of `support` (e.g. [`ToyDensity::support`]).
pub fn nearest_distance(support: &[[f64; 2]], [x, y]: [f64; 2]) -> f64 {
    support.iter().map(|[sx, sy]| (sx - x).hypot(sy - y)).fold(f64::INFINITY, f64::min)
}

/// sklearn's swiss roll before noise: `t = 1.5π(1 + 2u)`, `(t·cos t, t·sin t)`.
fn swiss_roll_curve(u: f64) -> [f64; 2] {
    let t = 1.5 * std::f64::consts::PI * (1.0 + 2.0 * u);
    [t * t.cos(), t * t.sin()]
}

fn eight_centres() -> [[f64; 2]; 8] {
    let d = std::f64::consts::FRAC_1_SQRT_2;
    [[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0], [d, d], [d, -d], [-d, d], [-d, -d]]
}
