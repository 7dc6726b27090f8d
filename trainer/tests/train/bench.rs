//! `trainer bench` as a user runs it: times, peak memory, the scaling table, the description of
//! what was timed, and the PyTorch reference run beside it (here a stand-in script, so that the
//! ratio arithmetic and the error paths are checked without torch).

use std::path::Path;

use super::cli::{scratch, stderr, trainer, trainer_command};

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The numbers that directly follow `label` on the lines of `text` that contain it.
fn numbers_after(text: &str, label: &str) -> Vec<f64> {
    text.lines()
        .filter_map(|line| line.split_once(label))
        .filter_map(|(_, rest)| rest.trim_start_matches([' ', ':']).split_whitespace().next()?.parse().ok())
        .collect()
}

/// An executable stand-in for Python: checks the arguments `trainer bench --torch` passes and
/// prints `result` as the reference's JSON line.
fn fake_python(dir: &Path, result: &str) -> String {
    let path = dir.join("python");
    let script = format!(
        "#!/bin/sh\n[ -f \"$1\" ] && [ -f \"$2\" ] && [ \"$3\" = --device ] && [ \"$4\" = cpu ] || {{ echo \"bad arguments: $*\" >&2; exit 3; }}\necho 'torch-like log line'\necho '{result}'\n"
    );
    std::fs::write(&path, script).expect("write");
    std::process::Command::new("chmod").arg("+x").arg(&path).status().expect("chmod");
    path.to_str().expect("utf-8").to_string()
}

#[test]
fn bench_reports_times_peak_memory_and_the_ratio_to_the_reference() {
    let dir = scratch("bench");
    let spec = dir.join("spec.json");
    let python = fake_python(&dir, r#"{"describe": "stand-in", "langevin_s": 0.5, "iteration_s": 2.0}"#);
    // n_f 16: every layer but the head fills the CPU kernels' 16-channel tile. At n_f 8 the RGB
    // layer's 8 outputs fill half of it, and the product's padded rows (a transient twice that
    // layer's output) outweigh the tape of so small a net (1.3 against 1.2 MiB).
    let args = ["bench", "--device", "flex", "--n-f", "16", "--batch", "8", "--steps", "4", "--repeats", "1"];
    // One thread: the peaks then count what each chain holds, not how many of flex's per-thread
    // scratch buffers happened to be alive at once (with two threads the 1.2 MiB peaks jitter).
    let out = trainer_command()
        .args([&args[..], &["--reference-spec", spec.to_str().expect("utf-8"), "--torch", &python]].concat())
        .env("RAYON_NUM_THREADS", "1")
        .output()
        .expect("run trainer");
    let text = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));

    // Three peaks (explicit chain, taped chain, training iteration), all real allocations.
    let peaks = numbers_after(&text, "peak memory");
    assert_eq!(peaks.len(), 3, "{text}");
    assert!(peaks.iter().all(|&mib| mib > 0.01), "{text}");
    // Sampling keeps one tensor per layer for the explicit gradient and no tape: no more than
    // the taped chain (it held 33 % more while the trace kept pre-activations and outputs).
    assert!(peaks[0] <= peaks[1], "the explicit chain should not need more memory than the tape: {text}");
    // A training iteration holds the chain's activations and the tape of two forward passes.
    assert!(peaks[2] > peaks[0], "training should need more memory than sampling: {text}");

    // Ratios printed against the stand-in's 500 ms and 2000 ms.
    let explicit_ms = numbers_after(&text, "explicit gradient")[0];
    let iteration_ms = numbers_after(&text, "training iteration ")[0];
    let ratios: Vec<f64> = text.lines().filter_map(|l| l.split_once("ratio ours / PyTorch")).map(|(_, r)| r.trim().parse().expect("ratio")).collect();
    assert_eq!(ratios.len(), 2, "{text}");
    assert!((ratios[0] - explicit_ms / 500.0).abs() < 0.01, "{text}");
    assert!((ratios[1] - iteration_ms / 2000.0).abs() < 0.01, "{text}");
    assert!(text.contains("reference: stand-in"), "{text}");
    // Achieved arithmetic: the n_f 16 net at 32 × 32 multiplies-adds per image, layer by layer,
    // 16·3·9·32², 32·16·16·16², 64·32·16·8², 128·64·16·4² and 128·16 (the energy head).
    let macs = [16.0 * 3.0 * 9.0 * 1024.0, 32.0 * 16.0 * 16.0 * 256.0, 64.0 * 32.0 * 16.0 * 64.0, 128.0 * 64.0 * 16.0 * 16.0, 128.0 * 16.0];
    let per_image: f64 = macs.iter().sum();
    // Four steps of forward + input gradient for 8 images; the update's forward, weight and
    // input gradients (none below the first layer) on 8 data + 8 samples.
    let chain_flop = 4.0 * 2.0 * 2.0 * per_image * 8.0;
    let update_flop = 2.0 * (3.0 * per_image - macs[0]) * 16.0;
    let tflops = |label: &str| -> f64 {
        let line = text.lines().find(|l| l.contains(label)).unwrap_or_else(|| panic!("no {label:?} line: {text}"));
        let (before, _) = line.split_once(" TFLOP/s").unwrap_or_else(|| panic!("no TFLOP/s on {line:?}"));
        before.rsplit([' ', '(']).next().and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("no number before TFLOP/s on {line:?}"))
    };
    let close = |printed: f64, expected: f64| (printed - expected).abs() <= 0.03 * expected + 0.0006;
    let chain_tflops = chain_flop / (explicit_ms * 1e-3) / 1e12;
    assert!(close(tflops("explicit gradient"), chain_tflops), "chain {chain_tflops:.4} TFLOP/s expected: {text}");
    let train_tflops = (chain_flop + update_flop) / (iteration_ms * 1e-3) / 1e12;
    assert!(close(tflops("training iteration "), train_tflops), "training {train_tflops:.4} TFLOP/s expected: {text}");

    // The tape-free iteration against the tape in the same process, with their ratio.
    let tape_ms = numbers_after(&text, "training iteration, autodiff tape")[0];
    let tape_ratio = numbers_after(&text, "same process; ratio")[0];
    assert!(tape_ms > 0.0 && (tape_ratio - iteration_ms / tape_ms).abs() < 0.01, "{text}");

    // The description the reference builds its nets from.
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&spec).expect("spec written")).expect("JSON");
    assert_eq!(json["kind"], "short_run");
    assert_eq!(json["batch"], 8);
    assert_eq!(json["langevin"]["steps"], 4);
    let layers = json["net"]["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 5, "conv 3×3, three stride-2 convs, the 4×4 energy conv");
    assert_eq!((layers[1]["op"].as_str(), layers[1]["kernel"].as_u64(), layers[1]["stride"].as_u64(), layers[1]["out_channels"].as_u64()), (Some("conv"), Some(4), Some(2), Some(32)));
    assert_eq!(layers[0]["act"]["kind"], "leaky_relu");
}

#[test]
fn bench_sweep_meg_and_cascade_print_their_numbers() {
    let sweep = trainer(&["bench", "--device", "flex", "--sweep", "--n-f", "4", "--batch", "4", "--image-size", "32", "--steps", "1", "--repeats", "1"]);
    let text = stdout(&sweep);
    assert!(sweep.status.success(), "{}", stderr(&sweep));
    let rows: Vec<Vec<&str>> = text.lines().filter(|l| l.starts_with("| ") && !l.starts_with("| n_f")).map(|l| l.split('|').map(str::trim).collect()).collect();
    // batch 1, 2, 4, 8, 16; n_f 1, 2, 8 (4 is already there); image size 64, 128.
    assert_eq!(rows.len(), 10, "{text}");
    let ms = |n_f: &str, batch: &str, size: &str| -> f64 {
        let row = rows.iter().find(|r| (r[1], r[2], r[3]) == (n_f, batch, size)).unwrap_or_else(|| panic!("no row {n_f}/{batch}/{size}: {text}"));
        row[4].trim_end_matches(" ms").parse().expect("ms")
    };
    // Every row holds a positive, finite time. Which of two times is larger is the benchmark's
    // business, not a test's: with one repeat on a shared machine the order can flip (it made
    // this test fail in CI once).
    for row in &rows {
        let time = ms(row[1], row[2], row[3]);
        assert!(time.is_finite() && time > 0.0, "{row:?}: {text}");
    }

    let meg = trainer(&["bench", "--device", "flex", "--meg", "toy", "--batch", "32", "--repeats", "1"]);
    let text = stdout(&meg);
    assert!(meg.status.success(), "{}", stderr(&meg));
    let iteration = numbers_after(&text, "MEG iteration");
    assert!(iteration.len() == 1 && iteration[0] > 0.0, "{text}");

    let untaped = trainer(&["bench", "--device", "flex", "--n-f", "4", "--batch", "2", "--steps", "1", "--repeats", "1", "--no-tape"]);
    let text = stdout(&untaped);
    assert!(untaped.status.success(), "{}", stderr(&untaped));
    // The explicit chain and the training iteration, no taped runs.
    assert_eq!(numbers_after(&text, "peak memory").len(), 2, "{text}");
    assert!(!text.contains("autodiff tape") && text.contains("skipped (--no-tape)"), "{text}");

    let dir = scratch("bench-cascade");
    let spec = dir.join("cascade.json");
    let cascade = trainer(&["bench", "--device", "flex", "--multigrid", "--width-divisor", "16", "--batch", "1", "--steps", "1", "--repeats", "1", "--reference-spec", spec.to_str().expect("utf-8")]);
    let text = stdout(&cascade);
    assert!(cascade.status.success(), "{}", stderr(&cascade));
    let grid_lines = |text: &str| text.lines().filter(|l| l.trim_start().starts_with("grid")).map(str::to_owned).collect::<Vec<_>>();
    let grids = grid_lines(&text);
    assert!(grids.len() == 3 && grids.iter().all(|l| l.contains("autodiff tape")), "{text}");
    // --no-tape: the same grids without the taped reference.
    let untaped = trainer(&["bench", "--device", "flex", "--multigrid", "--width-divisor", "16", "--batch", "1", "--steps", "1", "--repeats", "1", "--no-tape"]);
    let text = stdout(&untaped);
    assert!(untaped.status.success(), "{}", stderr(&untaped));
    let grids = grid_lines(&text);
    assert!(grids.len() == 3 && grids.iter().all(|l| l.contains("steps/s") && !l.contains("tape")), "{text}");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&spec).expect("spec written")).expect("JSON");
    let sides: Vec<u64> = json["grids"].as_array().expect("grids").iter().map(|g| g["input"][1].as_u64().expect("side")).collect();
    assert_eq!(sides, [4, 16, 64]);
}

#[test]
fn bench_names_what_went_wrong_with_the_reference_and_its_sizes() {
    let dir = scratch("bench-bad");
    let silent = fake_python(&dir, "not json at all");
    let bench = ["bench", "--device", "flex", "--repeats", "1"];
    let meg_toy = [&bench[..], &["--meg", "toy", "--batch", "8"]].concat();
    let mut cases: Vec<(Vec<&str>, &str)> = vec![
        ([&meg_toy[..], &["--torch", "/nonexistent/python3"]].concat(), "cannot run /nonexistent/python3"),
        ([&meg_toy[..], &["--torch", "false"]].concat(), "the PyTorch reference failed"),
        ([&meg_toy[..], &["--torch", &silent]].concat(), "printed no result"),
        ([&meg_toy[..], &["--sweep"]].concat(), "cannot be used with"),
        ([&bench[..], &["--meg", "stacked-mnist", "--stacks", "0"]].concat(), "1 to 8 stacks"),
    ];
    // Empty benchmarks, for every kind that takes a batch and a chain length.
    for kind in [&[][..], &["--multigrid"][..], &["--sweep"][..]] {
        for (size, expected) in [(["--batch", "0"], "--batch 0"), (["--steps", "0"], "--steps 0")] {
            cases.push(([&bench[..], kind, &size[..]].concat(), expected));
        }
    }
    for (args, expected) in cases {
        let out = trainer(&args);
        let message = stderr(&out);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(!message.contains("panicked"), "{args:?} panicked: {message}");
        assert!(message.contains(expected), "{args:?}: expected {expected:?} in: {message}");
    }
}

/// The features of the burn crate `krate` that one build of `package` for `target`, with
/// `package_features` switched on, enables.
fn burn_features(krate: &str, package: &str, target: Option<&str>, package_features: &[&str]) -> Vec<String> {
    // Not --offline: on a fresh machine the wasm-only crates are not downloaded yet at this point.
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = std::process::Command::new(cargo);
    command.current_dir(env!("CARGO_MANIFEST_DIR"));
    command.args(["tree", "--locked", "--prefix", "none", "-e", "features", "-i", krate, "-p", package]);
    if let Some(target) = target {
        command.args(["--target", target]);
    }
    for feature in package_features {
        command.args(["--features", feature]);
    }
    let output = command.output().expect("run cargo tree");
    assert!(output.status.success(), "cargo tree failed: {}", stderr(&output));
    let mut features: Vec<String> = stdout(&output)
        .lines()
        .filter_map(|line| line.strip_prefix(&format!("{krate} feature \"")))
        .filter_map(|rest| rest.split('"').next().map(str::to_string))
        .collect();
    features.sort();
    features.dedup();
    features
}

/// The workspace takes burn without default features; flex's threads and SIMD kernels were lost
/// that way once (one core of two, scalar element-wise code: 1.4–2× slower), and so were
/// burn-wgpu's autotune (every convolution fell back to the naive direct kernel). The native
/// trainer must build flex with both, the browser runtime with SIMD (its wasm has no threads),
/// and the trainer's `wgpu-tuned` and `wgpu-spirv` features must reach burn-wgpu's autotune and
/// its SPIR-V compiler.
#[test]
fn backends_are_built_with_their_fast_paths() {
    let wgpu = burn_features("burn-wgpu", "trainer", None, &["wgpu-tuned"]);
    assert!(wgpu.iter().any(|f| f == "autotune"), "trainer's burn-wgpu features with wgpu-tuned: {wgpu:?}");
    let spirv = burn_features("burn-wgpu", "trainer", None, &["wgpu-spirv"]);
    assert!(spirv.iter().any(|f| f == "vulkan"), "trainer's burn-wgpu features with wgpu-spirv: {spirv:?}");
    let native = burn_features("burn-flex", "trainer", None, &[]);
    assert!(native.iter().any(|f| f == "rayon") && native.iter().any(|f| f == "simd"), "trainer's flex features: {native:?}");
    let wasm = burn_features("burn-flex", "runtime-wasm", Some("wasm32-unknown-unknown"), &[]);
    assert!(wasm.iter().any(|f| f == "simd"), "runtime-wasm's flex features on wasm32: {wasm:?}");
    assert!(!wasm.iter().any(|f| f == "rayon"), "no threads on wasm32: {wasm:?}");
}
