//! The model zoo's recipes (`zoo/*.json`) as `scripts/train-zoo.sh` runs them, each for a few
//! iterations on the bundled data (`--smoke`), so that no recipe rots: the trainer accepts its
//! flags, the run resumes, the card records what ran and the evaluation's figures.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::cli::scratch;

fn repository() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn zoo(runs: &Path, args: &[&str]) -> Output {
    Command::new("python3")
        .arg(repository().join("scripts/zoo.py"))
        .args(args)
        .env("TRAINER", env!("CARGO_BIN_EXE_trainer"))
        .env("EBM_RUNS", runs)
        .output()
        .expect("python3 runs scripts/zoo.py")
}

fn json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

fn recipes() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(repository().join("zoo"))
        .expect("zoo/ exists")
        .filter_map(|entry| {
            entry
                .ok()?
                .file_name()
                .to_str()?
                .strip_suffix(".json")
                .map(str::to_string)
        })
        .collect();
    names.sort();
    names
}

/// The iteration count a smoke run of `recipe` must reach: short-run, MEG and multigrid run
/// `--iterations` (multigrid: epochs × batches per epoch), FRAME grows three layers.
fn smoke_iterations(recipe: &serde_json::Value) -> u64 {
    let smoke = &recipe["smoke"];
    match recipe["family"].as_str() {
        Some("frame") => 3 * smoke["--iterations"].as_u64().expect("smoke iterations"),
        Some("multigrid") => {
            let (limit, batch) = (
                smoke["--limit"].as_u64().expect("smoke limit"),
                smoke["--batch-size"].as_u64().expect("smoke batch"),
            );
            smoke["--epochs"].as_u64().expect("smoke epochs") * limit.div_ceil(batch)
        }
        _ => smoke["--iterations"].as_u64().expect("smoke iterations"),
    }
}

#[test]
fn every_zoo_recipe_trains_resumes_and_writes_its_card() {
    let runs = scratch("zoo");
    let names = recipes();
    assert!(
        names.len() >= 7,
        "the zoo lists digits, fashion, multigrid, MEG and three textures: {names:?}"
    );
    for name in &names {
        let recipe = json(&repository().join(format!("zoo/{name}.json")));
        let out = zoo(&runs, &["train", name, "--smoke"]);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let run = runs.join(format!("zoo-{name}-smoke"));
        let card = json(&run.join("card.json"));
        assert_eq!(card["finished"], true, "{name}: {card}");
        assert_eq!(
            card["iterations"].as_u64(),
            Some(smoke_iterations(&recipe)),
            "{name}: {card}"
        );
        assert_eq!(card["family"], recipe["family"]);
        assert_eq!(card["sessions"], 1);
        let seconds = card["training_seconds"].as_f64().expect("training time");
        assert!(seconds > 0.0, "{name}: {seconds} s");
        assert!(
            card["command"].as_str().expect("command").contains("--run"),
            "{card}"
        );
        assert!(
            card["machine"]["cores"].as_u64().is_some_and(|c| c >= 1),
            "{card}"
        );
        assert!(
            card["model_bytes"].as_u64().is_some_and(|b| b > 1000),
            "{card}"
        );
        let picture = recipe["picture_file"]
            .as_str()
            .expect("picture file")
            .replace("{run}", run.to_str().expect("utf-8"));
        assert!(
            image::open(&picture).is_ok_and(|i| i.width() > 0),
            "{name}: no picture at {picture}"
        );
        if recipe["evaluate"].get("digits").is_some() {
            let samples = &card["metrics"]["digits"]["samples"];
            assert_eq!(samples["count"], 16, "{name}: {card}");
            let histogram: u64 = samples["histogram"]
                .as_array()
                .expect("histogram")
                .iter()
                .filter_map(serde_json::Value::as_u64)
                .sum();
            assert_eq!(histogram, 16);
            let share = samples["confident_share"].as_f64().expect("share");
            assert!((0.0..=1.0).contains(&share), "{share}");
            // Even a one-epoch classifier of 2 000 digits reads most real digits right.
            let accuracy = card["metrics"]["digits"]["classifier_test_accuracy"]
                .as_f64()
                .expect("accuracy");
            assert!(accuracy > 0.6, "{name}: classifier accuracy {accuracy}");
        }
        if recipe["evaluate"].get("inpainting").is_some() {
            // Every mask of the paper's Table 4, with the error on a 0–1 scale beside the paper's.
            let inpainting = &card["metrics"]["inpainting"];
            assert_eq!(inpainting["count"], 4, "{name}: {card}");
            for mask in ["square", "doodle", "pepper-salt"] {
                let error = inpainting["masks"][mask]["MG"]["error"].as_f64().expect("error");
                assert!((0.0..=1.0).contains(&error) && error > 0.0, "{name} {mask}: {card}");
                let paper = inpainting["masks"][mask]["paper_mg"]["error"].as_f64().expect("paper");
                assert!((0.03..0.05).contains(&paper), "{name} {mask}: the paper's MG error, {paper}");
            }
        }
        if recipe["evaluate"].get("texture").is_some() {
            // Fresh chains against the persistent chains the model keeps from training.
            let scores = &card["metrics"]["texture"];
            assert_eq!(scores["chains"], 2, "{name}: {card}");
            let fresh = scores["fresh"]["mean"].as_f64().expect("fresh distance");
            let persistent = scores["persistent"]["mean"]
                .as_f64()
                .expect("persistent distance");
            assert!(fresh.is_finite() && fresh > 0.0 && persistent > 0.0, "{name}: {card}");
            let ratio = scores["fresh_over_persistent"].as_f64().expect("ratio");
            assert!((ratio - fresh / persistent).abs() < 1e-9 * ratio, "{name}: {card}");
        }
    }

    // A run killed after its last checkpoint but before it finished: the same command resumes
    // it (a second session, marked resumed) instead of starting again.
    let run = runs.join("zoo-digits-smoke");
    let state_file = run.join("zoo-state.json");
    let mut state = json(&state_file);
    state["finished"] = false.into();
    // A killed session records no end: the next one ends it at the last line it logged.
    state["segments"][0]["end"] = serde_json::Value::Null;
    std::fs::write(&state_file, state.to_string()).expect("write state");
    std::fs::remove_file(run.join("model.ebm")).expect("model exists");
    let out = zoo(&runs, &["train", "digits", "--smoke", "--no-eval"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("resuming"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let card = json(&run.join("card.json"));
    assert_eq!(
        (card["sessions"].as_u64(), card["finished"].as_bool()),
        (Some(2), Some(true)),
        "{card}"
    );
    let state = json(&state_file);
    assert_eq!(state["segments"][1]["resumed"], true);
    assert_eq!(state["segments"][0]["exit"], "killed");
    let (start, end) = (state["segments"][0]["start"].as_f64().expect("start"), state["segments"][0]["end"].as_f64().expect("end"));
    assert!(end > start, "killed session from {start} to {end}");
    assert!(run.join("model.ebm").is_file());

    // A finished run is not trained again.
    let out = zoo(&runs, &["train", "digits", "--smoke", "--no-eval"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already trained"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(json(&run.join("card.json"))["sessions"], 2);

    // An unknown recipe is named, with the list of recipes.
    let out = zoo(&runs, &["train", "no-such-model", "--smoke"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no recipe 'no-such-model'"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&runs);
}
