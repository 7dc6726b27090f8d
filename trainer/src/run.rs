//! The run folder: configuration, metrics, sample grids and checkpoints of one training run.
//!
//! ```text
//! runs/NAME/config.json      the full training configuration
//!          /metrics.jsonl    one JSON object per logged iteration
//!          /samples/*.png    sample grids every N iterations
//!          /checkpoint.ebm   latest checkpoint (model + optimiser + RNG), written atomically
//!          /model.ebm        the exported model file (what the browser loads)
//! ```

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use std::collections::BTreeMap;

use anyhow::Context;
use burn::prelude::*;
use modelfile::{ModelFile, NamedTensor};

use crate::shortrun::host_values;

/// Manifest key of a checkpoint's training state.
pub const TRAINING_KEY: &str = "training";
/// Prefix of a checkpoint's optimiser-state tensors (generative ConvNet and multigrid).
pub const STATE_PREFIX: &str = "extra.train.";

/// A checkpoint opened to resume from: the model part of the file, the training state, and
/// the optimiser-state tensors by their names without [`STATE_PREFIX`]. `what` names the
/// trainer in the error when the file is not its checkpoint.
pub fn open_checkpoint<S: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> anyhow::Result<(ModelFile, S, BTreeMap<String, NamedTensor>)> {
    let mut file = ModelFile::from_bytes(bytes).context("the checkpoint is damaged")?;
    let state = serde_json::from_value(file.manifest.get(TRAINING_KEY).cloned().unwrap_or_default()).with_context(|| format!("the file is a model, not a {what} training checkpoint"))?;
    let mut saved = BTreeMap::new();
    file.tensors.retain(|t| match t.name.strip_prefix(STATE_PREFIX) {
        Some(name) => {
            saved.insert(name.to_string(), t.clone());
            false
        }
        None => true,
    });
    Ok((file, state, saved))
}

/// Checkpoint bytes: `file` (the model) with the optimiser-state tensors, named under
/// [`STATE_PREFIX`], and the training state added.
pub fn seal_checkpoint<'a, S: serde::Serialize>(mut file: ModelFile, optimiser: impl IntoIterator<Item = (String, &'a Tensor<1>)>, state: &S) -> anyhow::Result<Vec<u8>> {
    for (name, tensor) in optimiser {
        let values = host_values(tensor.clone())?;
        file.tensors.push(NamedTensor { name: format!("{STATE_PREFIX}{name}"), shape: vec![values.len()], values });
    }
    if let Some(manifest) = file.manifest.as_object_mut() {
        manifest.insert(TRAINING_KEY.into(), serde_json::to_value(state)?);
    }
    Ok(file.to_bytes()?)
}

/// Where a model this trainer exported came from: the data set, iterations, seed, the source
/// revision (`EBM_GIT_REVISION` at build time, if set) and the trainer's version.
pub fn provenance(dataset: String, iterations: u64, seed: u64) -> shared::file::Provenance {
    shared::file::Provenance {
        dataset,
        iterations,
        seed,
        git_revision: option_env!("EBM_GIT_REVISION").map(str::to_string),
        created_by: format!("trainer {}", env!("CARGO_PKG_VERSION")),
    }
}

/// Paths of a run folder.
#[derive(Debug, Clone)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    /// The folder `root` (created on demand).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `config.json`.
    pub fn config(&self) -> PathBuf {
        self.root.join("config.json")
    }

    /// `metrics.jsonl`.
    pub fn metrics(&self) -> PathBuf {
        self.root.join("metrics.jsonl")
    }

    /// `checkpoint.ebm`.
    pub fn checkpoint(&self) -> PathBuf {
        self.root.join("checkpoint.ebm")
    }

    /// `model.ebm`.
    pub fn model(&self) -> PathBuf {
        self.root.join("model.ebm")
    }

    /// `samples/iter_NNNNNNN.png`.
    pub fn sample_grid(&self, iteration: u64) -> PathBuf {
        self.root.join("samples").join(format!("iter_{iteration:07}.png"))
    }

    /// Creates the folder.
    pub fn create(&self) -> anyhow::Result<()> {
        fs::create_dir_all(self.root.join("samples")).with_context(|| format!("cannot create run folder {}", self.root.display()))
    }

    /// What `--resume` continues from: the run's configuration and its checkpoint's bytes, with
    /// errors that say which of the two is missing or damaged.
    pub fn resume_state<C: serde::de::DeserializeOwned>(&self) -> anyhow::Result<(C, Vec<u8>)> {
        let text = fs::read(self.config()).with_context(|| format!("--resume: no run in {}", self.root.display()))?;
        let config = serde_json::from_slice(&text).context("config.json of the run is damaged")?;
        let bytes = fs::read(self.checkpoint()).with_context(|| format!("--resume: {} has no checkpoint yet", self.root.display()))?;
        Ok((config, bytes))
    }

    /// Appends one line to `metrics.jsonl`.
    pub fn log_metrics(&self, line: &serde_json::Value) -> anyhow::Result<()> {
        let mut file = OpenOptions::new().create(true).append(true).open(self.metrics()).with_context(|| format!("cannot open {}", self.metrics().display()))?;
        writeln!(file, "{line}")?;
        Ok(())
    }

    /// Drops metric lines past `iteration` (they will be recomputed after a resume).
    pub fn truncate_metrics(&self, iteration: u64) -> anyhow::Result<()> {
        let path = self.metrics();
        let Ok(file) = File::open(&path) else { return Ok(()) };
        let kept: Vec<String> = BufReader::new(file)
            .lines()
            .map_while(Result::ok)
            .filter(|line| {
                serde_json::from_str::<serde_json::Value>(line)
                    .ok()
                    .and_then(|v| v.get("iteration").and_then(serde_json::Value::as_u64))
                    .is_some_and(|i| i <= iteration)
            })
            .collect();
        let mut text = kept.join("\n");
        if !text.is_empty() {
            text.push('\n');
        }
        atomic_write(&path, text.as_bytes())
    }
}

/// Writes `bytes` to `path` so that a reader (or a crash) sees the old file or the new one,
/// never a partial one: temporary file in the same folder, fsync, rename.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temporary = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let mut file = File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temporary, path)?;
        // Make the rename itself durable.
        if let Ok(dir) = File::open(dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    result.with_context(|| format!("cannot write {}", path.display()))
}
