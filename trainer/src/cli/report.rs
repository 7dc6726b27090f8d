//! `trainer report`: runs the reproduction experiments as ordinary `trainer` commands (in this
//! process, so the report lists exactly what ran) at a budget, and writes REPORT.md with the
//! papers' numbers beside ours.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::{Args, Parser, ValueEnum};
use trainer::data::{self, ImageSet, LoadOptions, Split};
use trainer::multigrid::MaskKind;
use trainer::run::{RunDir, atomic_write};

use super::{Cli, dispatch, load_model};

/// How much compute the report spends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Budget {
    /// Seconds per experiment on the bundled data (what the test suite runs): checks the
    /// pipeline, not the science.
    Smoke,
    /// About an hour on a 2-core CPU with the fetched data sets (`scripts/fetch-data.sh`).
    Small,
    /// The papers' settings (32×32, n_f 32–128, 100 000 iterations, K up to 100): days on a GPU.
    Paper,
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Compute budget.
    #[arg(long, value_enum, default_value_t = Budget::Small)]
    budget: Budget,
    /// Folder laid out as `scripts/fetch-data.sh` writes it (mnist/, fashion-mnist/, textures/);
    /// the smoke budget uses the bundled assets/ instead.
    #[arg(long, default_value = "data")]
    data: PathBuf,
    /// The report to write; its figures go into `<name>-img/` beside it.
    #[arg(long, default_value = "REPORT.md")]
    out: PathBuf,
    /// Folder for the experiments' runs (models, metrics, JSON results).
    #[arg(long, default_value = "runs/report")]
    work: PathBuf,
    /// Compute device for every experiment (auto, wgpu, flex).
    #[arg(long, default_value = "auto")]
    device: String,
}

/// Settings of one budget.
struct Plan {
    mnist: PathBuf,
    fashion: PathBuf,
    texture: PathBuf,
    image_size: usize,
    batch: usize,
    iterations: u64,
    lr: f64,
    /// (K, σ) pairs of Table 2.
    k_sigma: Vec<(usize, f64)>,
    /// K and n_f of Table 3.
    table3_k: usize,
    base_n_f: usize,
    /// σ of Table 3b (and of the reconstruction models).
    base_sigma: f64,
    sigmas: Vec<f64>,
    n_fs: Vec<usize>,
    samples: usize,
    reference: usize,
    reconstruct: usize,
    reconstruct_iterations: usize,
    inpaint: usize,
    meg_iterations: u64,
    meg_divisor: usize,
    classifier_epochs: usize,
    mode_samples: usize,
    frame_iterations: u64,
    frame_size: usize,
}

impl Plan {
    fn new(budget: Budget, data: &Path) -> Self {
        let fetched = |name: &str| data.join(name);
        let bundled = |name: &str| PathBuf::from("assets").join(name);
        match budget {
            Budget::Smoke => Plan {
                mnist: bundled("mnist-mini"),
                fashion: bundled("fashion-boots"),
                texture: bundled("textures/brick.png"),
                image_size: 16,
                batch: 8,
                iterations: 4,
                lr: 1e-3,
                k_sigma: vec![(5, 0.15), (10, 0.1)],
                table3_k: 10,
                base_n_f: 4,
                base_sigma: 0.05,
                sigmas: vec![0.1, 0.05],
                n_fs: vec![4, 8],
                samples: 8,
                reference: 16,
                reconstruct: 4,
                reconstruct_iterations: 3,
                inpaint: 4,
                meg_iterations: 3,
                meg_divisor: 8,
                classifier_epochs: 1,
                mode_samples: 200,
                frame_iterations: 3,
                frame_size: 32,
            },
            Budget::Small => Plan {
                mnist: fetched("mnist"),
                fashion: fetched("fashion-mnist"),
                texture: fetched("textures/brick.png"),
                image_size: 16,
                batch: 32,
                iterations: 200,
                lr: 1e-3,
                k_sigma: vec![(5, 0.15), (10, 0.1), (25, 0.05), (50, 0.04)],
                table3_k: 25,
                base_n_f: 16,
                base_sigma: 0.05,
                sigmas: vec![0.1, 0.05, 0.03],
                n_fs: vec![8, 16, 32],
                samples: 200,
                reference: 500,
                reconstruct: 100,
                reconstruct_iterations: 50,
                inpaint: 100,
                meg_iterations: 150,
                meg_divisor: 8,
                classifier_epochs: 1,
                mode_samples: 5000,
                frame_iterations: 60,
                frame_size: 48,
            },
            Budget::Paper => Plan {
                mnist: fetched("mnist"),
                fashion: fetched("fashion-mnist"),
                texture: fetched("textures/brick.png"),
                image_size: 32,
                batch: 64,
                iterations: 100_000,
                lr: 1e-4,
                k_sigma: vec![(5, 0.15), (10, 0.1), (25, 0.05), (50, 0.04), (75, 0.03), (100, 0.03)],
                table3_k: 100,
                base_n_f: 32,
                base_sigma: 0.03,
                sigmas: vec![0.1, 0.08, 0.06, 0.05, 0.04, 0.03],
                n_fs: vec![32, 64, 128],
                samples: 10_000,
                reference: 10_000,
                reconstruct: 1000,
                reconstruct_iterations: 200,
                inpaint: 1000,
                meg_iterations: 100_000,
                meg_divisor: 1,
                classifier_epochs: 3,
                mode_samples: 26_000,
                frame_iterations: 1200,
                frame_size: 224,
            },
        }
    }
}

/// Runs commands in this process and remembers them with their durations.
struct Runner {
    device: String,
    log: Vec<Logged>,
}

/// One command of the report: its line, seconds and how it ended.
struct Logged {
    line: String,
    seconds: f64,
    outcome: Outcome,
}

enum Outcome {
    Ran,
    Failed { message: String, diverged: bool },
    /// Not run: its output was already in the work folder (from an earlier command or report).
    Reused,
}

impl Runner {
    /// Runs `trainer ARGS…`; a failure is logged and returned, not fatal to the report.
    fn run(&mut self, args: &[String]) -> anyhow::Result<()> {
        let line = format!("trainer {}", args.join(" "));
        eprintln!("\n== {line}");
        let started = Instant::now();
        let result = Cli::try_parse_from(std::iter::once("trainer".to_string()).chain(args.iter().cloned()))
            .map_err(anyhow::Error::from)
            .and_then(|cli| dispatch(cli.command));
        let outcome = match &result {
            Ok(()) => Outcome::Ran,
            Err(error) => {
                eprintln!("   failed: {error:#}");
                Outcome::Failed { message: format!("{error:#}"), diverged: is_divergence(error) }
            }
        };
        self.log.push(Logged { line, seconds: started.elapsed().as_secs_f64(), outcome });
        result
    }

    /// Runs the command unless `output` exists already (an earlier report wrote it); a run folder
    /// left with a checkpoint but no `output` by an interrupted or diverged run is continued with
    /// `--resume`.
    fn run_unless_done(&mut self, output: &Path, args: &[String]) -> bool {
        if output.exists() {
            self.log.push(Logged { line: format!("trainer {}", args.join(" ")), seconds: 0.0, outcome: Outcome::Reused });
            return true;
        }
        let run_folder = args.iter().position(|a| a == "--run").and_then(|i| args.get(i + 1)).map(RunDir::new);
        if run_folder.is_some_and(|folder| folder.checkpoint().exists()) {
            let resumed: Vec<String> = args.iter().cloned().chain(["--resume".to_string()]).collect();
            return self.run(&resumed).is_ok();
        }
        self.run(args).is_ok()
    }

    /// Whether the last command failed by diverging.
    fn last_diverged(&self) -> bool {
        self.log.last().is_some_and(|entry| matches!(entry.outcome, Outcome::Failed { diverged: true, .. }))
    }

    fn device(&self) -> [String; 2] {
        ["--device".into(), self.device.clone()]
    }
}

/// Whether a command stopped because training diverged (the trainers' typed errors).
fn is_divergence(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        matches!(cause.downcast_ref(), Some(trainer::shortrun::TrainError::Diverged { .. }))
            || matches!(cause.downcast_ref(), Some(trainer::frame::FrameTrainError::Diverged { .. }))
            || matches!(cause.downcast_ref(), Some(trainer::meg::MegTrainError::Diverged { .. }))
    })
}

fn strings(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

fn read_json(path: &Path) -> anyhow::Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(serde_json::from_str(&text)?)
}

/// Mean of a metric over the last quarter of a run's `metrics.jsonl`.
fn late_mean(run: &Path, key: &str) -> Option<f64> {
    let text = std::fs::read_to_string(run.join("metrics.jsonl")).ok()?;
    let values: Vec<f64> = text.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()?.get(key)?.as_f64()).collect();
    let tail = &values[values.len() - values.len().div_ceil(4)..];
    (!tail.is_empty()).then(|| tail.iter().sum::<f64>() / tail.len() as f64)
}

fn cell(value: Option<f64>, digits: usize) -> String {
    cell_or(value, digits, "failed")
}

fn cell_or(value: Option<f64>, digits: usize, missing: &str) -> String {
    value.map_or(missing.into(), |v| format!("{v:.digits$}"))
}

/// One trained short-run model and its scores.
struct ShortRunResult {
    fid: Option<f64>,
    kid: Option<f64>,
    grad_norm: Option<f64>,
    /// What a table shows in place of a missing score: "diverged" when training did.
    missing: &'static str,
}

impl ShortRunResult {
    fn fid(&self) -> String {
        cell_or(self.fid, 1, self.missing)
    }

    fn kid(&self) -> String {
        cell_or(self.kid, 4, self.missing)
    }
}

struct Report<'a> {
    plan: Plan,
    args: &'a ReportArgs,
    runner: Runner,
    figures: PathBuf,
    text: String,
}

impl Report<'_> {
    fn figure_link(&self, name: &str) -> String {
        let folder = self.figures.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
        format!("{folder}/{name}")
    }

    /// Trains one short-run model and scores it; cached per settings inside the work folder.
    fn short_run(&mut self, data: &Path, reference: &Path, tag: &str, k: usize, sigma: f64, n_f: usize) -> ShortRunResult {
        let run = self.args.work.join(format!("shortrun-{tag}-k{k}-s{sigma}-nf{n_f}"));
        let p = &self.plan;
        let mut train = strings(&["train", "--data", &path(data), "--run", &path(&run), "--image-size", &p.image_size.to_string()]);
        train.extend(strings(&["--channels", "1", "--n-f", &n_f.to_string(), "--batch", &p.batch.to_string()]));
        train.extend(strings(&["--iterations", &p.iterations.to_string(), "--steps", &k.to_string(), "--data-noise", &sigma.to_string()]));
        train.extend(strings(&["--lr", &p.lr.to_string(), "--sample-every", &p.iterations.to_string(), "--quiet"]));
        train.extend(self.runner.device());
        let model = run.join("model.ebm");
        let trained = self.runner.run_unless_done(&model, &train);
        let diverged = !trained && self.runner.last_diverged();
        let eval_json = run.join("eval.json");
        let grid = self.figures.join(format!("shortrun-{tag}-k{k}-s{sigma}-nf{n_f}.png"));
        let mut eval = strings(&["eval", &path(&model), "--reference", &path(reference), "--reference-count", &self.plan.reference.to_string()]);
        eval.extend(strings(&["--count", &self.plan.samples.to_string(), "--json", &path(&eval_json), "--grid", &path(&grid)]));
        eval.extend(self.runner.device());
        // A model shared by several tables is scored once.
        let scored = trained && self.runner.run_unless_done(&eval_json, &eval);
        let scores = scored.then(|| read_json(&eval_json).ok()).flatten();
        let score = |key: &str| scores.as_ref().and_then(|s| s["scores"][key].as_f64());
        ShortRunResult { fid: score("fid"), kid: score("kid"), grad_norm: late_mean(&run, "grad_norm"), missing: if diverged { "diverged" } else { "failed" } }
    }

    /// The FID between two disjoint reference subsets of the sample count: the floor a perfect
    /// model would show at this sample size.
    fn fid_floor(&self, reference: &Path) -> Option<f64> {
        let network = trainer::inception::Inception::load(&trainer::inception::default_path(), &burn::prelude::Device::flex()).ok()?;
        let spec = trainer::eval::Reference {
            path: reference.to_owned(),
            options: LoadOptions { limit: Some(self.plan.reference), class: None, split: Split::Train },
        };
        let (features, _) = trainer::eval::reference_features(&network, &spec, &trainer::eval::cache_dir(), |_, _| {}).ok()?;
        let n = (self.plan.samples).min(features.len() / trainer::inception::FEATURES / 2);
        let d = trainer::inception::FEATURES;
        trainer::metrics::frechet_distance(&features[..n * d], &features[n * d..2 * n * d], d).ok()
    }

    fn short_run_section(&mut self) -> anyhow::Result<()> {
        let (mnist, fashion) = (self.plan.mnist.clone(), self.plan.fashion.clone());
        let p = &self.plan;
        let text = &mut self.text;
        writeln!(text, "## 1. Short-run MCMC (papers 001/003)\n")?;
        writeln!(text, "Data: MNIST ({}) at {s}×{s}, one channel; {} training iterations, batch {}, Adam lr {}; FID/KID on {} samples against {} training images. The paper's tables are CIFAR-10 at 32×32 with 100 000 iterations and 40 000 samples: compare the trends, not the values.\n",
            path(&mnist), p.iterations, p.batch, p.lr, p.samples, p.reference, s = p.image_size)?;
        let floor = self.fid_floor(&mnist);
        writeln!(self.text, "FID floor at this sample size (two disjoint sets of {} real training digits): {}.\n", self.plan.samples, cell(floor, 1))?;

        // Table 2: K with its σ.
        let paper_k = [(5, 213.08, 7.78), (10, 182.5, 3.85), (25, 92.13, 1.76), (50, 68.28, 0.97), (75, 65.37, 0.65), (100, 63.81, 0.49)];
        let mut rows = Vec::new();
        for (k, sigma) in self.plan.k_sigma.clone() {
            let result = self.short_run(&mnist, &mnist, "mnist", k, sigma, self.plan.base_n_f);
            rows.push((k, sigma, result));
        }
        let n_f = self.plan.base_n_f;
        let text = &mut self.text;
        writeln!(text, "### FID vs K (Table 2; n_f {n_f})\n")?;
        writeln!(text, "| K | σ | FID | KID | mean ‖∂f/∂x‖ (last quarter) | paper FID | paper ‖∂f/∂x‖ |\n|---|---|---|---|---|---|---|")?;
        for (k, sigma, r) in &rows {
            let paper = paper_k.iter().find(|(pk, _, _)| pk == k);
            writeln!(text, "| {k} | {sigma} | {} | {} | {} | {} | {} |", r.fid(), r.kid(), cell_or(r.grad_norm, 3, r.missing),
                paper.map_or("–".into(), |p| p.1.to_string()), paper.map_or("–".into(), |p| p.2.to_string()))?;
        }
        writeln!(text)?;
        let grids: Vec<String> = self.plan.k_sigma.iter().map(|(k, sigma)| format!("![K {k}]({})", self.figure_link(&format!("shortrun-mnist-k{k}-s{sigma}-nf{n_f}.png")))).collect();
        writeln!(self.text, "Samples, K = {} (left to right):\n\n{}\n", self.plan.k_sigma.iter().map(|(k, _)| k.to_string()).collect::<Vec<_>>().join(", "), grids.join(" "))?;

        // Table 3a: σ at fixed K.
        let k = self.plan.table3_k;
        let paper_sigma = [(0.1, 132.51), (0.08, 117.36), (0.06, 94.72), (0.05, 83.15), (0.04, 65.71), (0.03, 63.81)];
        let mut rows = Vec::new();
        for sigma in self.plan.sigmas.clone() {
            rows.push((sigma, self.short_run(&mnist, &mnist, "mnist", k, sigma, n_f)));
        }
        writeln!(self.text, "### FID vs σ (Table 3a; K {k}, n_f {n_f}; paper K 100)\n\n| σ | FID | KID | paper FID |\n|---|---|---|---|")?;
        for (sigma, r) in &rows {
            let paper = paper_sigma.iter().find(|(ps, _)| (ps - sigma).abs() < 1e-9).map_or("–".into(), |p| p.1.to_string());
            writeln!(self.text, "| {sigma} | {} | {} | {paper} |", r.fid(), r.kid())?;
        }
        writeln!(self.text)?;

        // Table 3b: n_f at fixed K and σ.
        let sigma = self.plan.base_sigma;
        let paper_nf = [(32, 63.81), (64, 46.61), (128, 44.5)];
        let mut rows = Vec::new();
        for n_f in self.plan.n_fs.clone() {
            rows.push((n_f, self.short_run(&mnist, &mnist, "mnist", k, sigma, n_f)));
        }
        writeln!(self.text, "### FID vs n_f (Table 3b; K {k}, σ {sigma}; paper n_f 32/64/128 at K 100, σ 0.03)\n\n| n_f | FID | KID | paper FID (n_f 32/64/128) |\n|---|---|---|---|")?;
        for (i, (n_f, r)) in rows.iter().enumerate() {
            let paper = paper_nf.get(i).map_or("–".into(), |p| format!("{} (n_f {})", p.1, p.0));
            writeln!(self.text, "| {n_f} | {} | {} | {paper} |", r.fid(), r.kid())?;
        }
        writeln!(self.text)?;

        // Table 1b: reconstruction MSE.
        writeln!(self.text, "### Reconstruction MSE per pixel (Table 1b)\n")?;
        writeln!(self.text, "Gradient descent on the chain's start z through all K noise-free steps ({} iterations, lr 0.1) for {} held-out test images; MSE in the model's [−1, 1] space like the paper's. The mean-image baseline is the MSE of predicting every image by the held-out mean.\n",
            self.plan.reconstruct_iterations, self.plan.reconstruct)?;
        writeln!(self.text, "| data | model (K, σ, n_f) | MSE at start | MSE after | mean-image baseline | paper short-run (CIFAR-10 / CelebA / LSUN) |\n|---|---|---|---|---|---|")?;
        for (name, data) in [("MNIST", mnist.clone()), ("Fashion-MNIST", fashion.clone())] {
            let tag = if name == "MNIST" { "mnist" } else { "fashion" };
            if tag == "fashion" {
                // Trains the Fashion-MNIST model (scored against Fashion-MNIST too).
                self.short_run(&data, &data, tag, k, sigma, n_f);
            }
            let run = self.args.work.join(format!("shortrun-{tag}-k{k}-s{sigma}-nf{n_f}"));
            let json = run.join("reconstruction.json");
            let mut command = strings(&["reconstruct", &path(&run.join("model.ebm")), "--data", &path(&data), "--count", &self.plan.reconstruct.to_string()]);
            command.extend(strings(&["--iterations", &self.plan.reconstruct_iterations.to_string(), "--out", &path(&self.figures.join(format!("reconstruction-{tag}.png"))), "--json", &path(&json)]));
            command.extend(self.runner.device());
            let values = self.runner.run(&command).ok().and_then(|_| read_json(&json).ok());
            let get = |key: &str| values.as_ref().and_then(|v| v[key].as_f64());
            writeln!(self.text, "| {name} | {k}, {sigma}, {n_f} | {} | {} | {} | 0.0387 / 0.0271 / 0.0272 |", cell(get("start_mse"), 4), cell(get("final_mse"), 4), cell(get("mean_image_mse"), 4))?;
        }
        writeln!(self.text, "\n![reconstructions, MNIST]({}) ![reconstructions, Fashion-MNIST]({})\n", self.figure_link("reconstruction-mnist.png"), self.figure_link("reconstruction-fashion.png"))?;
        Ok(())
    }

    fn multigrid_section(&mut self) -> anyhow::Result<()> {
        let table = self.args.work.join("multigrid-table.md");
        let mut command = strings(&["multigrid", "table", "--model", "MG=www/models/multigrid-boots.ebm", "--data", &path(&self.plan.fashion)]);
        command.extend(strings(&["--class", "9", "--count", &self.plan.inpaint.to_string(), "--out", &path(&table), "--figures", &path(&self.figures.join("inpainting"))]));
        command.extend(self.runner.device());
        writeln!(self.text, "## 2. Multigrid inpainting (paper 000, Table 4)\n")?;
        writeln!(self.text, "The demo's bundled multigrid model (Fashion-MNIST ankle boots, widths ÷8, 300 iterations) inpaints {} held-out boots; the paper's models are CelebA at full width.\n", self.plan.inpaint)?;
        match self.runner.run(&command).and_then(|_| std::fs::read_to_string(&table).map_err(Into::into)) {
            Ok(markdown) => {
                // `multigrid table --figures` names them MODEL-MASK.png.
                let figures: Vec<String> = MaskKind::DEFAULTS.iter().map(|mask| format!("![{}]({})", mask.name(), self.figure_link(&format!("inpainting/MG-{}.png", mask.name())))).collect();
                writeln!(self.text, "{}\n\nInpaintings, square / doodle / pepper-and-salt masks:\n\n{}\n", markdown.trim_end(), figures.join(" "))?
            }
            Err(error) => writeln!(self.text, "Failed: {error:#}\n")?,
        }
        Ok(())
    }

    fn meg_section(&mut self) -> anyhow::Result<()> {
        let p = &self.plan;
        let (work, mnist) = (self.args.work.clone(), p.mnist.clone());
        let (iterations, divisor) = (p.meg_iterations.to_string(), p.meg_divisor.to_string());
        writeln!(self.text, "## 3. MEG (paper 002)\n")?;
        // Table 2.1: StackedMNIST modes.
        let classifier = work.join("mnist-classifier.ebm");
        let mut classify = strings(&["meg", "classifier", "--data", &path(&mnist), "--epochs", &p.classifier_epochs.to_string(), "--out", &path(&classifier)]);
        classify.extend(self.runner.device());
        let meg_run = work.join("meg-stacked3");
        let mut train = strings(&["meg", "train", "--dataset", "stacked-mnist", "--data", &path(&mnist), "--run", &path(&meg_run), "--iterations", &iterations]);
        train.extend(strings(&["--width-divisor", &divisor, "--penalty", "sample", "--quiet"]));
        train.extend(self.runner.device());
        let json = work.join("meg-modes.json");
        let mut modes = strings(&["meg", "modes", &path(&meg_run.join("model.ebm")), "--classifier", &path(&classifier), "--samples", &p.mode_samples.to_string(), "--json", &path(&json)]);
        modes.extend(self.runner.device());
        let ok = self.runner.run_unless_done(&classifier, &classify)
            && self.runner.run_unless_done(&meg_run.join("model.ebm"), &train)
            && self.runner.run(&modes).is_ok();
        let values = ok.then(|| read_json(&json).ok()).flatten();
        let get = |key: &str| values.as_ref().and_then(|v| v[key].as_f64());
        writeln!(self.text, "### 3-StackedMNIST modes (Table 2.1)\n\n{} iterations, widths ÷{}, per-sample gradient penalty; {} generator samples, each channel classified by the project's MNIST classifier ({} epoch(s)).\n",
            iterations, divisor, self.plan.mode_samples, self.plan.classifier_epochs)?;
        writeln!(self.text, "| | modes (of 1000) | KL(samples ‖ uniform) |\n|---|---|---|\n| ours | {} | {} |\n| paper MEG | 1000 | 0.0313 |\n| paper WGAN-GP | 959 | 0.7276 |\n",
            cell(get("modes"), 0), cell(get("kl"), 3))?;
        // Table 2.4: anomaly AUPRC (digit 1).
        let table = work.join("meg-anomaly.md");
        let mut anomaly = strings(&["meg", "anomaly", "--data", &path(&mnist), "--digits", "1", "--iterations", &iterations, "--width-divisor", &divisor, "--out", &path(&table)]);
        anomaly.extend(self.runner.device());
        writeln!(self.text, "### MNIST anomaly detection, held-out digit 1 (Table 2.4)\n")?;
        match self.runner.run(&anomaly).and_then(|_| std::fs::read_to_string(&table).map_err(Into::into)) {
            Ok(markdown) => writeln!(self.text, "{markdown}\n")?,
            Err(error) => writeln!(self.text, "Failed: {error:#}\n")?,
        }
        Ok(())
    }

    fn frame_section(&mut self) -> anyhow::Result<()> {
        let run = self.args.work.join("frame-brick");
        let size = self.plan.frame_size.to_string();
        let mut train = strings(&["frame", "train", "--data", &path(&self.plan.texture), "--run", &path(&run), "--image-size", &size, "--width-divisor", "2"]);
        train.extend(strings(&["--iterations", &self.plan.frame_iterations.to_string(), "--chains", "8", "--sample-every", &self.plan.frame_iterations.to_string(), "--quiet"]));
        train.extend(self.runner.device());
        writeln!(self.text, "## 4. Generative ConvNet / FRAME texture statistics (paper 004)\n")?;
        writeln!(self.text, "The paper shows textures without numbers. Here: the brick texture at {size}×{size}, {} learning iterations; the statistics of 8 fresh syntheses against the training image and, as the no-learning reference, uniform noise.\n", self.plan.frame_iterations)?;
        let trained = self.runner.run_unless_done(&run.join("model.ebm"), &train);
        let stats = trained.then(|| texture_statistics(&run, &self.plan.texture, self.plan.frame_size)).transpose();
        match stats {
            Ok(Some(rows)) => {
                writeln!(self.text, "| image | mean | std | intensity-histogram L1 to the texture | mean absolute horizontal gradient |\n|---|---|---|---|---|")?;
                for row in rows {
                    writeln!(self.text, "| {} | {:.1} | {:.1} | {:.3} | {:.1} |", row.0, row.1, row.2, row.3, row.4)?;
                }
                std::fs::copy(run.join("figure.png"), self.figures.join("frame-brick.png")).ok();
                writeln!(self.text, "\n![texture | synthesis | larger synthesis]({})\n", self.figure_link("frame-brick.png"))?;
            }
            Ok(None) => writeln!(self.text, "Training failed (see the command log).\n")?,
            Err(error) => writeln!(self.text, "Failed: {error:#}\n")?,
        }
        Ok(())
    }
}

/// (name, mean, std, histogram L1 to the texture, mean |horizontal difference|), 0–255.
type TextureRow = (String, f64, f64, f64, f64);

/// The statistics of the texture, 8 syntheses and uniform noise.
fn texture_statistics(run: &Path, texture: &Path, size: usize) -> anyhow::Result<Vec<TextureRow>> {
    let device = burn::prelude::Device::flex();
    let model = load_model(&run.join("model.ebm"), &device)?;
    let channels = model.manifest.data.channels;
    let observed = data::open_resized(texture, &LoadOptions::default(), size, channels)?;
    let synthesis = trainer::eval::model_images(&model, &device, 8, &Default::default(), 3)?;
    let mut rng = shared::rng::HostRng::new(9);
    let noise_pixels: Vec<f32> = (0..synthesis.pixels.len()).map(|_| rng.uniform(0.0, 255.0) as f32).collect();
    let noise = ImageSet::new(noise_pixels, synthesis.count, synthesis.channels, synthesis.height, synthesis.width, None)?;
    let histogram = |set: &ImageSet| {
        let mut bins = [0.0f64; 16];
        set.pixels.iter().for_each(|v| bins[((v.clamp(0.0, 255.0) / 16.0) as usize).min(15)] += 1.0);
        bins.map(|b| b / set.pixels.len() as f64)
    };
    let reference = histogram(&observed);
    let describe = |name: &str, set: &ImageSet| {
        let n = set.pixels.len() as f64;
        let mean = set.pixels.iter().map(|v| f64::from(*v)).sum::<f64>() / n;
        let std = (set.pixels.iter().map(|v| (f64::from(*v) - mean).powi(2)).sum::<f64>() / n).sqrt();
        let l1 = histogram(set).iter().zip(&reference).map(|(a, b)| (a - b).abs()).sum();
        let gradient = set.pixels.chunks(set.width).flat_map(|row| row.windows(2).map(|w| f64::from((w[1] - w[0]).abs()))).sum::<f64>() / (n * (set.width - 1) as f64 / set.width as f64);
        (name.to_string(), mean, std, l1, gradient)
    };
    Ok(vec![describe("training texture", &observed), describe("syntheses", &synthesis), describe("uniform noise", &noise)])
}

/// The checkout's short commit id, when git can tell.
fn git_revision() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map_or("unknown".into(), |out| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `trainer report`.
pub fn run(args: ReportArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let plan = Plan::new(args.budget, &args.data);
    for needed in [&plan.mnist, &plan.fashion, &plan.texture] {
        if !needed.exists() {
            anyhow::bail!("{}: missing; run `bash scripts/fetch-data.sh {}` first (or --budget smoke for the bundled data)", needed.display(), args.data.display());
        }
    }
    let stem = args.out.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "REPORT".into());
    let figures = args.out.parent().unwrap_or(Path::new("")).join(format!("{stem}-img"));
    std::fs::create_dir_all(&figures).with_context(|| format!("cannot create {}", figures.display()))?;
    std::fs::create_dir_all(&args.work).with_context(|| format!("cannot create {}", args.work.display()))?;
    let mut report = Report { plan, args: &args, runner: Runner { device: args.device.clone(), log: Vec::new() }, figures, text: String::new() };
    report.short_run_section()?;
    report.multigrid_section()?;
    report.meg_section()?;
    report.frame_section()?;

    let mut head = String::new();
    let budget = format!("{:?}", args.budget).to_lowercase();
    writeln!(head, "# Reproduction report\n")?;
    writeln!(head, "Written by `trainer report --budget {budget} --data {} --device {}` (git {}), {:.0} min in all. Every number below comes from the commands listed at the end, run in that order; rerun them to check any cell. The `{budget}` budget scales the papers' settings down so the whole report fits the machine at hand (`--budget paper` selects the papers' settings).\n",
        path(&args.data), args.device, git_revision(), started.elapsed().as_secs_f64() / 60.0)?;
    let mut tail = String::from("## Commands run\n\n| command | seconds | result |\n|---|---|---|\n");
    for Logged { line, seconds, outcome } in &report.runner.log {
        let (seconds, result) = match outcome {
            Outcome::Ran => (format!("{seconds:.0}"), "ok".to_string()),
            Outcome::Failed { message, .. } => (format!("{seconds:.0}"), format!("failed: {}", message.replace('|', "/").replace('\n', " "))),
            Outcome::Reused => ("–".into(), "reused: its output is already in the work folder".into()),
        };
        writeln!(tail, "| `{line}` | {seconds} | {result} |")?;
    }
    atomic_write(&args.out, format!("{head}{}{tail}", report.text).as_bytes())?;
    eprintln!("wrote {} ({:.0} min)", args.out.display(), started.elapsed().as_secs_f64() / 60.0);
    Ok(())
}
