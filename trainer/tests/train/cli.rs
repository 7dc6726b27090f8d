//! The `trainer` binary as a user runs it: a tiny end-to-end run, then bad input everywhere.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `trainer` binary under test, for callers that need to set its environment or directory.
pub fn trainer_command() -> Command {
    Command::new(env!("CARGO_BIN_EXE_trainer"))
}

pub fn trainer(args: &[&str]) -> Output {
    trainer_command().args(args).output().expect("run trainer")
}

pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ebm-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn assert_png(path: &Path) {
    let image = image::open(path).unwrap_or_else(|e| panic!("{} is not a readable image: {e}", path.display()));
    assert!(image.width() > 0 && image.height() > 0);
}

#[test]
fn train_sample_interpolate_reconstruct_export_end_to_end() {
    let dir = scratch("e2e");
    let run = dir.join("run");
    let data = crate::mnist_mini();
    let run_s = run.to_str().expect("utf-8");
    let common = ["--device", "flex"];
    let out = trainer(&[
        &["train", "--data", data.to_str().expect("utf-8"), "--run", run_s, "--preset", "quick", "--iterations", "4", "--n-f", "4", "--steps", "3", "--batch", "4"],
        &["--image-size", "16", "--sample-every", "2", "--checkpoint-every", "2", "--quiet"][..],
        &common[..],
    ]
    .concat());
    assert!(out.status.success(), "train failed: {}", stderr(&out));
    assert!(stderr(&out).contains("device: CPU"), "the chosen device should be reported: {}", stderr(&out));
    for file in ["config.json", "metrics.jsonl", "checkpoint.ebm", "model.ebm"] {
        assert!(run.join(file).exists(), "missing {file}");
    }
    assert_png(&run.join("samples/iter_0000002.png"));
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).expect("metrics");
    assert_eq!(metrics.lines().count(), 4);

    // Running again without --resume refuses to overwrite; with --resume and more iterations continues.
    let again = trainer(&[&["train", "--data", data.to_str().expect("utf-8"), "--run", run_s], &common[..]].concat());
    assert!(!again.status.success() && stderr(&again).contains("--resume"), "{}", stderr(&again));

    let model = run.join("model.ebm");
    let model_s = model.to_str().expect("utf-8");
    let samples = dir.join("samples");
    let out = trainer(&[&["sample", model_s, "--count", "4", "--out", samples.to_str().expect("utf-8"), "--chain-every", "1"], &common[..]].concat());
    assert!(out.status.success(), "sample failed: {}", stderr(&out));
    assert_png(&samples.join("grid.png"));
    assert_png(&samples.join("images/sample_0003.png"));
    assert_png(&samples.join("chain.png"));
    assert!(samples.join("chain.gif").exists());

    let strip = dir.join("interp.png");
    let out = trainer(&[&["interpolate", model_s, "--pairs", "2", "--points", "4", "--out", strip.to_str().expect("utf-8")], &common[..]].concat());
    assert!(out.status.success(), "interpolate failed: {}", stderr(&out));
    assert_png(&strip);

    let recon = dir.join("recon.png");
    let out = trainer(&[
        &["reconstruct", model_s, "--data", data.to_str().expect("utf-8"), "--count", "4", "--iterations", "3", "--out", recon.to_str().expect("utf-8")],
        &common[..],
    ]
    .concat());
    assert!(out.status.success(), "reconstruct failed: {}", stderr(&out));
    assert!(stderr(&out).contains("per-pixel MSE"), "{}", stderr(&out));
    assert_png(&recon);

    let exported = dir.join("exported.ebm");
    let out = trainer(&["export", run.join("checkpoint.ebm").to_str().expect("utf-8"), "--out", exported.to_str().expect("utf-8")]);
    assert!(out.status.success(), "export failed: {}", stderr(&out));
    let out = trainer(&["info", exported.to_str().expect("utf-8")]);
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("short_run"), "{}", stderr(&out));
}

#[test]
fn bad_input_gives_readable_errors_not_panics() {
    let dir = scratch("bad");
    let garbage = dir.join("garbage.ebm");
    std::fs::write(&garbage, b"definitely not a model").expect("write");
    let truncated = dir.join("truncated.ebm");
    std::fs::write(&truncated, b"EBMMODEL\x01\x00\x00\x00\xff\xff").expect("write");
    let missing = dir.join("missing.ebm");
    let run = dir.join("run");
    let no_run = dir.join("no-run");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["sample", missing.to_str().expect("utf-8")], "cannot read"),
        (vec!["sample", garbage.to_str().expect("utf-8"), "--device", "flex"], "magic"),
        (vec!["info", truncated.to_str().expect("utf-8")], "not a usable model file"),
        (vec!["export", garbage.to_str().expect("utf-8"), "--out", "x.ebm"], "not a checkpoint"),
        (vec!["train", "--data", "/nonexistent/data", "--run", run.to_str().expect("utf-8"), "--device", "flex"], "/nonexistent/data"),
        (vec!["train", "--image-size", "12", "--run", run.to_str().expect("utf-8"), "--device", "flex"], "image size"),
        (vec!["train", "--channels", "2", "--image-size", "16", "--run", run.to_str().expect("utf-8"), "--device", "flex"], "channels"),
        (vec!["train", "--sample-range-limit", "0", "--run", run.to_str().expect("utf-8"), "--device", "flex"], "--sample-range-limit"),
        (vec!["train", "--resume", "--run", no_run.to_str().expect("utf-8"), "--device", "flex"], "--resume"),
        (vec!["sample", garbage.to_str().expect("utf-8"), "--count", "0", "--device", "flex"], "magic"),
    ];
    for (args, expected) in cases {
        let out = trainer(&args);
        let message = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?} should fail cleanly with exit code 1: {message}");
        assert!(!message.contains("panicked"), "{args:?} panicked: {message}");
        assert!(message.contains(expected), "{args:?}: expected the message to mention {expected:?}, got: {message}");
    }
    let help = trainer(&["--help"]);
    assert!(help.status.success() && String::from_utf8_lossy(&help.stdout).contains("sample"));
}

#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    // `trainer info MODEL | head`: the reader goes away before the model is even read, so every
    // line goes to a closed pipe.
    let model = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../www/models/mnist-shortrun.ebm"));
    let mut child = trainer_command()
        .args(["info", model.to_str().expect("utf-8")])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("trainer starts");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("trainer ends");
    let message = stderr(&out);
    assert!(!message.contains("panicked") && !message.contains("Broken pipe"), "{message}");
    assert_eq!(out.status.code(), Some(0), "{message}");
}

#[test]
fn frame_texture_and_reconstruction_end_to_end() {
    let dir = scratch("frame");
    let assets = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../assets/textures"));
    let brick = assets.join("brick.png");
    let (brick_s, assets_s) = (brick.to_str().expect("utf-8"), assets.to_str().expect("utf-8"));
    let run = dir.join("texture");
    let run_s = run.to_str().expect("utf-8");
    let tiny = ["--image-size", "24", "--width-divisor", "10", "--steps", "2", "--synthesis-steps", "3", "--quiet", "--device", "flex"];
    let out = trainer(&[&["frame", "train", "--data", brick_s, "--run", run_s, "--layers", "2", "--iterations", "2", "--sample-every", "2", "--chain-scale", "2"][..], &tiny[..]].concat());
    assert!(out.status.success(), "frame train failed: {}", stderr(&out));
    let log = stderr(&out);
    assert!(log.contains("relative distance to the training image"), "the figure step reports statistics: {log}");
    for file in ["config.json", "metrics.jsonl", "checkpoint.ebm", "model.ebm"] {
        assert!(run.join(file).exists(), "missing {file}");
    }
    assert_eq!(std::fs::read_to_string(run.join("metrics.jsonl")).expect("metrics").lines().count(), 4, "2 iterations per layer, 2 layers");
    let figure = image::open(run.join("figure.png")).expect("figure");
    assert_eq!((figure.width(), figure.height()), (24 + 2 + 24 + 2 + 48, 48), "training | corner of a chain | a 2×-size chain");
    assert_png(&run.join("samples/iter_0000004.png"));

    let model = run.join("model.ebm");
    let model_s = model.to_str().expect("utf-8");
    let info = trainer(&["info", model_s]);
    assert!(String::from_utf8_lossy(&info.stdout).contains("extra.chains     shape [16, 1, 48, 48]"), "the model keeps its 2×-size chains: {}", String::from_utf8_lossy(&info.stdout));
    let samples = dir.join("wide");
    let out = trainer(&["sample", model_s, "--count", "2", "--width", "40", "--height", "32", "--out", samples.to_str().expect("utf-8"), "--device", "flex"]);
    assert!(out.status.success(), "sample --width failed: {}", stderr(&out));
    let one = image::open(samples.join("images/sample_0001.png")).expect("sample");
    assert_eq!((one.width(), one.height()), (40, 32), "a canvas larger than the training image");

    let again = dir.join("figure.png");
    let out = trainer(&["frame", "figure", model_s, "--data", brick_s, "--scale", "3", "--steps", "2", "--out", again.to_str().expect("utf-8"), "--device", "flex"]);
    assert!(out.status.success(), "frame figure failed: {}", stderr(&out));
    assert_eq!(image::open(&again).expect("figure").width(), 24 + 2 + 24 + 2 + 72, "3× needs fresh chains");
    let continued = dir.join("continued.png");
    let out = trainer(&["frame", "figure", model_s, "--data", brick_s, "--steps", "2", "--out", continued.to_str().expect("utf-8"), "--device", "flex"]);
    assert!(out.status.success(), "frame figure failed: {}", stderr(&out));
    assert_eq!(image::open(&continued).expect("figure").width(), 24 + 2 + 24 + 2 + 48, "2× continues a stored chain");

    // First-layer statistics: this model keeps 2×-size persistent chains, so their corners are
    // the yardstick; the same model as its own --reference gives the same figures.
    let scores_path = dir.join("texture.json");
    let out = trainer(&["frame", "eval", model_s, "--data", brick_s, "--chains", "3", "--rounds", "2", "--steps", "2", "--json", scores_path.to_str().expect("utf-8"), "--device", "flex"]);
    assert!(out.status.success() && stderr(&out).contains("fresh over persistent"), "frame eval failed: {}", stderr(&out));
    let scores: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&scores_path).expect("scores")).expect("JSON");
    assert_eq!((scores["chains"].as_u64(), scores["rounds"].as_u64(), scores["steps"].as_u64(), scores["scale"].as_u64()), (Some(3), Some(2), Some(2), Some(2)), "{scores}");
    for stage in ["fresh", "long_run", "persistent", "large"] {
        let (mean, min, max) = (scores[stage]["mean"].as_f64(), scores[stage]["min"].as_f64(), scores[stage]["max"].as_f64());
        let (mean, min, max) = (mean.expect("mean"), min.expect("min"), max.expect("max"));
        assert!(mean.is_finite() && mean > 0.0 && min <= mean && mean <= max, "{stage}: {scores}");
    }
    let ratio = scores["fresh_over_persistent"].as_f64().expect("ratio");
    let expected = scores["fresh"]["mean"].as_f64().expect("fresh") / scores["persistent"]["mean"].as_f64().expect("persistent");
    assert!((ratio - expected).abs() < 1e-9 * expected, "{ratio} vs {expected}");
    let again_path = dir.join("texture-again.json");
    let out = trainer(&["frame", "eval", model_s, "--data", brick_s, "--chains", "3", "--rounds", "2", "--steps", "2", "--reference", model_s, "--json", again_path.to_str().expect("utf-8"), "--device", "flex"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let again: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&again_path).expect("scores")).expect("JSON");
    assert_eq!(again["persistent"], scores["persistent"], "the model's own chains, read the same way");
    let out = trainer(&["frame", "eval", model_s, "--data", brick_s, "--chains", "0", "--device", "flex"]);
    assert!(!out.status.success() && stderr(&out).contains("at least one chain"), "{}", stderr(&out));

    let cd = dir.join("cd");
    let out = trainer(&[&["frame", "train", "--experiment", "reconstruction", "--data", assets_s, "--run", cd.to_str().expect("utf-8"), "--iterations", "3"][..], &tiny[..]].concat());
    assert!(out.status.success(), "CD training failed: {}", stderr(&out));
    let metrics = std::fs::read_to_string(cd.join("metrics.jsonl")).expect("metrics");
    assert!(metrics.contains("\"reconstruction_mse\":") && !metrics.contains("\"reconstruction_mse\":null"), "CD logs its reconstruction error");
    let grid = image::open(cd.join("reconstruction.png")).expect("reconstruction grid");
    assert_eq!(grid.width(), 3 * 24 + 2 * 2, "three textures per row");
    let out = trainer(&["frame", "reconstruct", cd.join("model.ebm").to_str().expect("utf-8"), "--data", assets_s, "--out", dir.join("r.png").to_str().expect("utf-8"), "--device", "flex"]);
    assert!(out.status.success() && stderr(&out).contains("reconstruction per-pixel MSE"), "{}", stderr(&out));
}

#[test]
fn frame_commands_reject_bad_input_with_reasons() {
    let dir = scratch("frame-bad");
    let brick = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../assets/textures/brick.png"));
    let brick_s = brick.to_str().expect("utf-8");
    let run = dir.join("run");
    let run_s = run.to_str().expect("utf-8");
    let cases: [(&[&str], &str); 5] = [
        (&["--layers", "4"], "1 to 3 conv layers"),
        (&["--optimizer", "adam", "--cap", "1"], "belong to the lab update"),
        (&["--lr=-1"], "learning rate must be a positive number"),
        (&["--delta", "0"], "step δ must be a positive number"),
        (&["--iterations", "0"], "--iterations must be at least 1"),
    ];
    for (extra, message) in cases {
        let out = trainer(&[&["frame", "train", "--data", brick_s, "--run", run_s, "--image-size", "24", "--device", "flex"][..], extra].concat());
        assert!(!out.status.success() && stderr(&out).contains(message), "{extra:?}: {}", stderr(&out));
    }
    let missing = trainer(&["frame", "train", "--data", dir.join("nope.png").to_str().expect("utf-8"), "--run", run_s, "--device", "flex"]);
    assert!(!missing.status.success() && stderr(&missing).contains("nope.png"), "{}", stderr(&missing));
    let short_run = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../www/models/mnist-shortrun.ebm"));
    let out = trainer(&["frame", "figure", short_run.to_str().expect("utf-8"), "--data", brick_s, "--out", dir.join("f.png").to_str().expect("utf-8"), "--device", "flex"]);
    assert!(!out.status.success() && stderr(&out).contains("not a generative ConvNet model"), "{}", stderr(&out));
    let out = trainer(&["frame", "eval", short_run.to_str().expect("utf-8"), "--data", brick_s, "--device", "flex"]);
    assert!(!out.status.success() && stderr(&out).contains("not a generative ConvNet model"), "{}", stderr(&out));
    let out = trainer(&["sample", short_run.to_str().expect("utf-8"), "--width", "0", "--out", dir.join("s").to_str().expect("utf-8"), "--device", "flex"]);
    assert!(!out.status.success() && stderr(&out).contains("at least 1"), "{}", stderr(&out));
}

#[test]
fn multigrid_train_sample_inpaint_table_end_to_end() {
    let dir = scratch("multigrid");
    let data = crate::mnist_mini();
    let data_s = data.to_str().expect("utf-8");
    let tiny = ["--data", data_s, "--limit", "8", "--batch-size", "4", "--epochs", "1", "--width-divisor", "16", "--steps", "2", "--baseline-steps", "3", "--hole", "16", "--quiet", "--device", "flex"];
    let mut models = Vec::new();
    for method in ["multigrid", "pcd"] {
        let run = dir.join(method);
        let out = trainer(&[&["multigrid", "train", "--method", method, "--run", run.to_str().expect("utf-8"), "--sample-every", "1"][..], &tiny[..]].concat());
        assert!(out.status.success(), "multigrid train --method {method} failed: {}", stderr(&out));
        for file in ["config.json", "metrics.jsonl", "checkpoint.ebm", "model.ebm", "samples/iter_0000002.png"] {
            assert!(run.join(file).exists(), "{method}: missing {file}");
        }
        models.push(run.join("model.ebm"));
    }
    // Every grid's samples, shown at 64×64: a 4×4 grid of 16 chains.
    for side in [4, 16, 64] {
        let grid = image::open(dir.join(format!("multigrid/grid{side}.png"))).expect("grid");
        assert_eq!((grid.width(), grid.height()), (4 * 64 + 3 * 2, 4 * 64 + 3 * 2), "grid{side}.png");
    }
    assert_png(&dir.join("multigrid/one-start/grid64.png"));
    // A fresh start refuses a folder that holds a run.
    let run_s = dir.join("multigrid");
    let again = trainer(&[&["multigrid", "train", "--run", run_s.to_str().expect("utf-8")][..], &tiny[..]].concat());
    assert!(!again.status.success() && stderr(&again).contains("--resume"), "{}", stderr(&again));

    let mg = models[0].to_str().expect("utf-8");
    let figure = dir.join("inpaint.png");
    let out = trainer(&["multigrid", "inpaint", mg, "--data", data_s, "--count", "3", "--mask", "doodle", "--out", figure.to_str().expect("utf-8"), "--device", "flex"]);
    assert!(out.status.success() && stderr(&out).contains("doodle mask: error"), "{}", stderr(&out));
    assert_eq!(image::open(&figure).expect("figure").height(), 3 * 64 + 2 * 2, "rows: originals, masked, inpainted");

    let table = dir.join("table.md");
    let (a, b) = (format!("MG={mg}"), format!("PCD={}", models[1].to_str().expect("utf-8")));
    let out = trainer(&["multigrid", "table", "--model", &a, "--model", &b, "--data", data_s, "--count", "4", "--out", table.to_str().expect("utf-8"), "--device", "flex"]);
    assert!(out.status.success(), "table failed: {}", stderr(&out));
    let text = std::fs::read_to_string(&table).expect("table");
    for row in ["error square", "error doodle", "error pepper-salt", "PSNR square", "PSNR doodle", "PSNR pepper-salt"] {
        let line = text.lines().find(|l| l.starts_with(&format!("| {row} |"))).unwrap_or_else(|| panic!("no {row} row in {text}"));
        let ours: Vec<f64> = line.split('|').skip(2).take(2).map(|v| v.trim().parse().expect("a number")).collect();
        assert!(ours.iter().all(|v| v.is_finite() && *v > 0.0), "{row}: {ours:?}");
    }
}

#[test]
fn multigrid_commands_reject_bad_input_with_reasons() {
    let dir = scratch("multigrid-bad");
    let run = dir.join("run");
    let run_s = run.to_str().expect("utf-8");
    let cases: [(&[&str], &str); 5] = [
        (&["--hole", "64"], "--hole must be 1 to 63"),
        (&["--batch-size", "0"], "--batch-size must be at least 1"),
        (&["--epochs", "0"], "--epochs must be at least 1"),
        (&["--optimizer", "adam", "--momentum", "0.5"], "belong to the lab update"),
        (&["--width-divisor", "16", "--steps", "0"], "--steps must be at least 1"),
    ];
    for (extra, message) in cases {
        let out = trainer(&[&["multigrid", "train", "--run", run_s, "--device", "flex"][..], extra].concat());
        assert!(!out.status.success() && stderr(&out).contains(message), "{extra:?}: {}", stderr(&out));
        assert!(!run.join("config.json").exists(), "{extra:?}: a refused run leaves no folder behind");
    }
    let short_run = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../www/models/mnist-shortrun.ebm"));
    let short_run_s = short_run.to_str().expect("utf-8");
    let out = trainer(&["multigrid", "sample", short_run_s, "--out", dir.join("s").to_str().expect("utf-8"), "--device", "flex"]);
    assert!(!out.status.success() && stderr(&out).contains("is a short_run model, not a multigrid one"), "{}", stderr(&out));
    let out = trainer(&["multigrid", "inpaint", short_run_s, "--device", "flex"]);
    assert!(!out.status.success() && stderr(&out).contains("not a multigrid one"), "{}", stderr(&out));
    let out = trainer(&["multigrid", "table", "--model", short_run_s, "--device", "flex"]);
    assert!(!out.status.success() && stderr(&out).contains("expected NAME=PATH"), "{}", stderr(&out));
    let multigrid = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../www/models/multigrid-boots.ebm"));
    let out = trainer(&["sample", multigrid.to_str().expect("utf-8"), "--out", dir.join("t").to_str().expect("utf-8"), "--device", "flex"]);
    assert!(!out.status.success() && stderr(&out).contains("trainer multigrid sample"), "{}", stderr(&out));
}

/// The repository root: `trainer report --budget smoke` reads the bundled assets/ and www/.
fn repository() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

#[test]
fn eval_scores_a_model_and_images_and_rejects_bad_input() {
    if !crate::fid::weights_installed() {
        return;
    }
    let dir = scratch("eval");
    let cache = dir.join("cache");
    let (cache_s, data) = (cache.to_str().expect("utf-8"), crate::mnist_mini());
    let data_s = data.to_str().expect("utf-8");
    let model = repository().join("www/models/mnist-shortrun.ebm");
    let json = dir.join("scores.json");
    let base = ["--reference", data_s, "--reference-count", "12", "--cache", cache_s, "--device", "flex"];
    let out = trainer(&[&["eval", model.to_str().expect("utf-8"), "--count", "12", "--json", json.to_str().expect("utf-8")][..], &base[..]].concat());
    assert!(out.status.success(), "eval of a model failed: {}", stderr(&out));
    let scores: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).expect("scores written")).expect("JSON");
    let fid = scores["scores"]["fid"].as_f64().expect("a FID");
    assert!(fid > 1.0 && fid < 1000.0, "FID of an untrained-looking sampler against digits: {fid}");
    assert_eq!(scores["scores"]["count"], 12);
    assert_eq!(std::fs::read_dir(&cache).expect("cache folder").count(), 1, "one cached reference");
    // Real test digits against training digits: far below the model's FID.
    let out = trainer(&[&["eval", data_s, "--count", "12"][..], &base[..]].concat());
    assert!(out.status.success(), "eval of images failed: {}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let real: f64 = text.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("no FID in {text:?}"));
    assert!(real < fid, "real digits {real} should score better than samples {fid}");

    // A smaller reference count takes the first features of the cached 12 (no new cache file),
    // and its floor is the one computed afresh in an empty cache.
    let floor = |count: &str, cache: &Path| {
        let json = cache.with_extension("floor.json");
        let out = trainer(&["eval-reference", data_s, "--reference-count", count, "--cache", cache.to_str().expect("utf-8"), "--json", json.to_str().expect("utf-8"), "--device", "flex"]);
        assert!(out.status.success(), "eval-reference failed: {}", stderr(&out));
        let record: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).expect("floor written")).expect("JSON");
        (record["floor"]["fid"].as_f64().expect("FID"), record["floor"]["kid"].as_f64().expect("KID"))
    };
    let reused = floor("8", &cache);
    assert_eq!(std::fs::read_dir(&cache).expect("cache folder").count(), 1, "the 12 cached features served the 8");
    let fresh = floor("8", &dir.join("fresh-cache"));
    assert!((reused.0 - fresh.0).abs() <= 1e-6 * fresh.0.abs().max(1.0) && (reused.1 - fresh.1).abs() <= 1e-6, "reused {reused:?} vs fresh {fresh:?}");
    assert!(fresh.0 > 0.0, "{fresh:?}");

    // A folder of differently sized images (textures) is scored image by image.
    let mixed = dir.join("mixed");
    std::fs::create_dir_all(&mixed).expect("scratch folder");
    let textures = repository().join("assets/textures");
    for name in ["brick.png", "grass.png"] {
        std::fs::copy(textures.join(name), mixed.join(name)).expect("copy a texture");
    }
    image::RgbImage::from_fn(40, 30, |x, y| image::Rgb([(x * 6) as u8, (y * 8) as u8, 90])).save(mixed.join("small.png")).expect("write a PNG");
    let grid = dir.join("mixed-grid.png");
    let textures_s = textures.to_str().expect("utf-8");
    let out = trainer(&["eval", mixed.to_str().expect("utf-8"), "--reference", textures_s, "--reference-count", "3", "--cache", cache_s, "--grid", grid.to_str().expect("utf-8"), "--device", "flex"]);
    assert!(out.status.success(), "eval of mixed sizes failed: {}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("(3 images against 3 reference images"), "{text}");
    assert_png(&grid);

    for (args, expected) in [
        (vec!["eval", "/no/such/model.ebm", "--reference", data_s], "/no/such/model.ebm"),
        (vec!["eval", model.to_str().expect("utf-8"), "--reference", "/no/such/data"], "/no/such/data"),
        (vec!["eval", model.to_str().expect("utf-8"), "--reference", data_s, "--count", "1"], "--count must be at least 2"),
        (vec!["eval-reference", data_s, "--reference-count", "1"], "--reference-count must be at least 2"),
        (vec!["eval-reference", data_s, "--weights", "/no/weights.safetensors"], "fetch-inception.sh"),
    ] {
        let out = trainer(&[&args[..], &["--cache", cache_s, "--device", "flex"][..]].concat());
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(stderr(&out).contains(expected), "{args:?}: {}", stderr(&out));
        assert!(!stderr(&out).contains("panicked"), "{args:?} panicked: {}", stderr(&out));
    }
}

#[test]
fn eval_digits_names_what_is_missing() {
    let dir = scratch("eval-digits");
    let model = repository().join("www/models/mnist-shortrun.ebm");
    let model_s = model.to_str().expect("utf-8");
    let missing = dir.join("no-classifier.ebm");
    let not_a_classifier = model_s;
    for (args, expected) in [
        (vec!["eval-digits", model_s, "--classifier", missing.to_str().expect("utf-8")], "trainer meg classifier"),
        (vec!["eval-digits", model_s, "--classifier", not_a_classifier], "not an MNIST classifier"),
        (vec!["eval-digits", model_s, "--count", "0"], "--count must be at least 1"),
        (vec!["meg", "classifier", "--widths", "0,20,50", "--out", missing.to_str().expect("utf-8")], "classifier widths must be 1 to 1024"),
        (vec!["meg", "classifier", "--widths", "10,20", "--out", missing.to_str().expect("utf-8")], "--widths takes three numbers"),
    ] {
        let out = trainer(&[&args[..], &["--device", "flex"][..]].concat());
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(stderr(&out).contains(expected), "{args:?}: {}", stderr(&out));
        assert!(!stderr(&out).contains("panicked"), "{args:?} panicked: {}", stderr(&out));
    }
}

#[test]
fn report_smoke_budget_writes_every_table_with_numbers() {
    if !crate::fid::weights_installed() {
        return;
    }
    let dir = scratch("report");
    let report_into = |name: &str| {
        let out = trainer_command()
            .current_dir(repository())
            .args(["report", "--budget", "smoke", "--device", "flex", "--out"])
            .arg(dir.join(name))
            .arg("--work")
            .arg(dir.join("work"))
            .env("EBM_CACHE", dir.join("cache"))
            .output()
            .expect("run trainer");
        assert!(out.status.success(), "report {name} failed: {}", stderr(&out));
        std::fs::read_to_string(dir.join(name)).expect("report written")
    };
    let report = report_into("REPORT.md");
    for heading in ["## 1. Short-run", "### FID vs K", "### FID vs σ", "### FID vs n_f", "### Reconstruction MSE", "## 2. Multigrid", "## 3. MEG", "## 4. Generative ConvNet", "## Commands run"] {
        assert!(report.contains(heading), "no {heading:?} in the report");
    }
    assert!(!report.contains("failed"), "a step failed:\n{report}");
    // The K table's rows carry a finite FID and KID in columns 3 and 4.
    let rows: Vec<&str> = report.lines().skip_while(|l| !l.starts_with("### FID vs K")).skip(4).take(2).collect();
    for row in &rows {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let (fid, kid): (f64, f64) = (cells[3].parse().expect("FID number"), cells[4].parse().expect("KID number"));
        assert!(fid.is_finite() && fid > 0.0 && kid.is_finite(), "{row}");
    }
    for figure in ["REPORT-img/frame-brick.png", "REPORT-img/reconstruction-mnist.png", "REPORT-img/shortrun-mnist-k5-s0.15-nf4.png", "REPORT-img/inpainting/MG-square.png"] {
        assert_png(&dir.join(figure));
    }
    // A second report in the same work folder reuses the trained models and their scores: the
    // same K table, and the training commands listed as reused.
    let second = report_into("REPORT-again.md");
    let k_table = |text: &str| text.lines().skip_while(|l| !l.starts_with("### FID vs K")).take(8).map(String::from).collect::<Vec<_>>();
    assert_eq!(k_table(&report), k_table(&second));
    let reused = second.lines().filter(|l| l.starts_with("| `trainer train") && l.ends_with("reused: its output is already in the work folder |")).count();
    assert!(reused >= 4, "{reused} training commands reused:\n{second}");
}
