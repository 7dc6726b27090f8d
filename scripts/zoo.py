#!/usr/bin/env python3
"""The model zoo: trains a recipe of zoo/NAME.json from scratch or resumes it, evaluates the
model, and writes its card; `report` gathers the cards into docs/zoo.md and www/models/.

  python3 scripts/zoo.py list
  python3 scripts/zoo.py train NAME [--smoke] [--fresh] [--no-eval]
  python3 scripts/zoo.py report [--install]

`scripts/train-zoo.sh NAME` builds the trainer and runs `train`. Runs live outside the clone,
in $EBM_RUNS (default ~/.cache/ebm/runs/zoo-NAME), so a fresh clone on the same machine picks
them up; running the same command again after a kill continues from the last checkpoint.
Data come from $EBM_DATA (default ~/.cache/ebm/data, filled by scripts/fetch-data.sh).
The trainer binary is $TRAINER (default $CARGO_TARGET_DIR/debug/trainer).
Standard library only.
"""

import argparse
import datetime
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ZOO = os.path.join(REPO, "zoo")
HOME = os.path.expanduser("~")

# Keys every recipe must have, with their types.
REQUIRED = {
    "title": str,
    "family": str,
    "data": str,
    "smoke_data": str,
    "train": list,
    "smoke": dict,
    "evaluate": dict,
    "picture": list,
    "install": str,
    "image_size": int,
    "choices": list,
}
FAMILIES = {"short_run", "multigrid", "meg", "frame"}


class ZooError(Exception):
    """A problem the user can fix; printed without a traceback."""


def runs_root():
    return os.environ.get("EBM_RUNS") or os.path.join(HOME, ".cache/ebm/runs")


def data_root():
    return os.environ.get("EBM_DATA") or os.path.join(HOME, ".cache/ebm/data")


def trainer_path():
    if os.environ.get("TRAINER"):
        return os.environ["TRAINER"]
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(HOME, ".cache/ebm/target")
    return os.path.join(target, "debug", "trainer")


def recipe_names():
    return sorted(f[:-5] for f in os.listdir(ZOO) if f.endswith(".json"))


def load_recipe(name):
    """The recipe zoo/NAME.json, checked for every key and type the zoo relies on."""
    path = os.path.join(ZOO, f"{name}.json")
    if not os.path.isfile(path):
        raise ZooError(f"no recipe '{name}' (zoo/{name}.json); recipes: {', '.join(recipe_names())}")
    try:
        with open(path, encoding="utf-8") as f:
            recipe = json.load(f)
    except json.JSONDecodeError as e:
        raise ZooError(f"zoo/{name}.json is not valid JSON: {e}") from e
    for key, kind in REQUIRED.items():
        if not isinstance(recipe.get(key), kind):
            raise ZooError(f"zoo/{name}.json: '{key}' must be a {kind.__name__}")
    if recipe["family"] not in FAMILIES:
        raise ZooError(f"zoo/{name}.json: family '{recipe['family']}' is not one of {sorted(FAMILIES)}")
    if not all(isinstance(a, str) for a in recipe["train"] + recipe["picture"]):
        raise ZooError(f"zoo/{name}.json: 'train' and 'picture' hold strings only")
    for flag in ("--data", "--run", "--resume"):
        if flag in recipe["train"]:
            raise ZooError(f"zoo/{name}.json: 'train' must not set {flag} (the zoo sets it)")
    recipe["name"] = name
    return recipe


def with_overrides(args, overrides):
    """`args` with each `--flag value` of `overrides` replaced (or appended when absent); a
    value of true adds a bare flag."""
    args = list(args)
    for flag, value in overrides.items():
        if value is True:
            if flag not in args:
                args.append(flag)
            continue
        if flag in args:
            i = args.index(flag)
            args[i + 1] = str(value)
        else:
            args += [flag, str(value)]
    return args


def recipe_hash(recipe, smoke):
    body = {"train": recipe["train"], "data": recipe["smoke_data" if smoke else "data"], "smoke": recipe["smoke"] if smoke else None}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


def write_json(path, value):
    """Writes JSON atomically: a temporary file in the same folder, fsync, rename."""
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=2, ensure_ascii=False)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_json(path, default=None):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError):
        return default


def machine():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    memory = None
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            kib = int(next(line.split()[1] for line in f if line.startswith("MemTotal")))
            memory = f"{kib / 1024 / 1024:.0f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "memory": memory, "os": platform.platform()}


def git_revision():
    try:
        out = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, check=True)
        return out.stdout.strip() + ("+" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def run_trainer(args, log=None):
    """Runs the trainer with `args`, its messages going to stderr (and to `log`)."""
    command = [trainer_path()] + args
    if not os.path.isfile(command[0]):
        raise ZooError(f"no trainer at {command[0]}: build it (cargo build --locked -p trainer) or set TRAINER")
    print("zoo: " + " ".join(command), file=sys.stderr, flush=True)
    if log is None:
        return subprocess.run(command, check=False).returncode
    with open(log, "a", encoding="utf-8") as out:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        alive = os.path.join(os.path.dirname(log), "zoo-alive")
        for line in process.stdout:
            sys.stderr.write(line)
            out.write(line)
            out.flush()
            # The last sign of life: where a killed session's wall time ends.
            with open(alive, "w", encoding="utf-8"):
                pass
        return process.wait()


def must_run(args, what):
    """Runs the trainer with `args`; a failure stops the zoo, naming `what` failed."""
    if run_trainer(args) != 0:
        raise ZooError(f"{what} failed")


def data_path(recipe, smoke):
    if smoke:
        return os.path.join(REPO, recipe["smoke_data"])
    path = os.path.join(data_root(), recipe["data"])
    if not os.path.exists(path):
        print(f"zoo: {path} is missing; fetching the data sets (scripts/fetch-data.sh)", file=sys.stderr, flush=True)
        subprocess.run(["bash", os.path.join(REPO, "scripts/fetch-data.sh"), data_root()], check=True)
    if not os.path.exists(path):
        raise ZooError(f"{path} is still missing after scripts/fetch-data.sh")
    return path


def train(name, smoke=False, fresh=False, evaluate=True):
    recipe = load_recipe(name)
    run = os.path.join(runs_root(), f"zoo-{name}" + ("-smoke" if smoke else ""))
    data = data_path(recipe, smoke)
    args = with_overrides(recipe["train"], recipe["smoke"] if smoke else {})
    args += ["--data", data, "--run", run, "--quiet"]
    state_file = os.path.join(run, "zoo-state.json")
    digest = recipe_hash(recipe, smoke)
    if fresh and os.path.isdir(run):
        shutil.rmtree(run)
    state = read_json(state_file, {})
    checkpoint = os.path.join(run, "checkpoint.ebm")
    if state.get("finished") and os.path.isfile(os.path.join(run, "model.ebm")):
        print(f"zoo: {name} is already trained in {run} (--fresh starts it again)", file=sys.stderr)
    else:
        resume = os.path.isfile(checkpoint)
        if resume and state.get("recipe_hash") not in (None, digest):
            raise ZooError(f"zoo/{name}.json changed since the run in {run} started; pass --fresh to train it again from scratch")
        if not resume and os.path.isdir(run):
            # Killed before its first checkpoint: nothing to continue.
            shutil.rmtree(run)
        os.makedirs(run, exist_ok=True)
        state.setdefault("segments", [])
        close_killed_segments(state, run)
        state.update({"recipe": name, "recipe_hash": digest, "command": [trainer_path()] + args, "data": data, "finished": False})
        began = time.time()
        state["segments"].append({"start": began, "end": None, "resumed": resume, "revision": git_revision()})
        write_json(state_file, state)
        code = run_trainer(args + (["--resume"] if resume else []), log=os.path.join(run, "train.log"))
        state["segments"][-1].update({"end": time.time(), "exit": code})
        state["finished"] = code == 0
        write_json(state_file, state)
        if code != 0:
            raise ZooError(f"training stopped (exit {code}); run the same command again to resume from the last checkpoint")
    metrics = evaluate_model(recipe, run, data, smoke) if evaluate else read_json(os.path.join(run, "card.json"), {}).get("metrics", {})
    card = write_card(recipe, run, state_file, metrics)
    print(json.dumps(card, indent=2, ensure_ascii=False))
    return card


def close_killed_segments(state, run):
    """Ends the sessions that were killed (no end recorded) at their last sign of life."""
    alive = os.path.join(run, "zoo-alive")
    last = os.path.getmtime(alive) if os.path.exists(alive) else None
    for segment in state.get("segments", []):
        if segment.get("end") is None:
            segment["end"] = max(segment["start"], last or segment["start"])
            segment["exit"] = "killed"


def evaluate_model(recipe, run, data, smoke):
    """The recipe's evaluations of run/model.ebm, each writing JSON into the run folder."""
    model = os.path.join(run, "model.ebm")
    spec = recipe["evaluate"]
    metrics = {}
    picture = [a.replace("{model}", model).replace("{run}", run) for a in recipe["picture"]]
    if picture:
        must_run(picture, "the sample picture")
    count = int(spec.get("count", 1000))
    if smoke:
        count = min(count, 16)
    if "digits" in spec:
        # The smoke run judges with a classifier of the bundled digits (one epoch), kept
        # beside the smoke runs; real runs with one of all of MNIST, kept with the weights.
        if smoke:
            classifier = os.path.join(runs_root(), "mnist-classifier-smoke.ebm")
            mnist, epochs = os.path.join(REPO, "assets/mnist-mini"), "1"
        else:
            classifier = os.path.join(HOME, ".cache/ebm/weights/mnist-classifier.ebm")
            mnist, epochs = os.path.join(data_root(), "mnist"), str(spec["digits"].get("classifier_epochs", 10))
        if not os.path.isfile(classifier):
            must_run(["meg", "classifier", "--data", mnist, "--epochs", epochs, "--out", classifier], "training the MNIST classifier")
        out = os.path.join(run, "eval-digits.json")
        must_run(["eval-digits", model, "--classifier", classifier, "--data", mnist, "--count", str(count), "--json", out], "eval-digits")
        metrics["digits"] = read_json(out)
    if "fid" in spec and not smoke:
        fid = spec["fid"]
        reference = os.path.join(data_root(), fid["reference"])
        common = ["--split", fid.get("split", "test")] + (["--class", str(fid["class"])] if "class" in fid else [])
        floor = os.path.join(run, "eval-floor.json")
        must_run(["eval-reference", reference, "--reference-count", str(2 * count), "--json", floor] + common, "eval-reference")
        out = os.path.join(run, "eval-fid.json")
        must_run(["eval", model, "--reference", reference, "--count", str(count), "--reference-count", str(count), "--json", out] + common, "eval")
        metrics["fid"] = read_json(out, {}).get("scores")
        metrics["floor"] = read_json(floor, {}).get("floor")
    if "inpainting" in spec:
        inpainting = spec["inpainting"]
        out = os.path.join(run, "eval-inpainting.json")
        # The smoke run's data is a folder of boots without labels or splits.
        held_out = ["--count", "4", "--batch", "4"] if smoke else ["--count", str(inpainting.get("count", 200)), "--split", "test"] + (["--class", str(inpainting["class"])] if "class" in inpainting else [])
        must_run(["multigrid", "table", "--model", f"MG={model}", "--data", data, "--out", os.path.join(run, "inpainting.md"), "--json", out] + held_out, "multigrid table")
        metrics["inpainting"] = read_json(out)
    if "texture" in spec:
        texture = spec["texture"]
        out = os.path.join(run, "eval-texture.json")
        command = ["frame", "eval", model, "--data", data, "--json", out, "--chains", str(2 if smoke else texture.get("chains", 8)), "--rounds", str(2 if smoke else texture.get("rounds", 10))]
        must_run(command, "frame eval")
        metrics["texture"] = read_json(out)
    return metrics


def write_card(recipe, run, state_file, metrics):
    state = read_json(state_file, {})
    config = read_json(os.path.join(run, "config.json"), {})
    segments = state.get("segments", [])
    wall = sum((s["end"] or s["start"]) - s["start"] for s in segments)
    model = os.path.join(run, "model.ebm")
    card = {
        "name": recipe["name"],
        "title": recipe["title"],
        "family": recipe["family"],
        "data": recipe["data"],
        "command": " ".join(state.get("command", [])),
        "seed": config.get("seed"),
        "iterations": iterations_of(run),
        "image_size": image_size_of(recipe, config),
        "training_seconds": round(wall, 1),
        "sessions": len(segments),
        "machine": machine(),
        # The source each session trained with (a `+` marks uncommitted changes).
        "git_revision": ", ".join(dict.fromkeys(str(s.get("revision")) for s in segments)) or None,
        "finished": state.get("finished", False),
        "written": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "model_bytes": os.path.getsize(model) if os.path.isfile(model) else None,
        "metrics": metrics,
        "targets": recipe.get("targets", {}),
        "choices": recipe["choices"],
    }
    write_json(os.path.join(run, "card.json"), card)
    return card


def iterations_of(run):
    """The last iteration the run logged (every family writes one metrics line per iteration)."""
    last = None
    try:
        with open(os.path.join(run, "metrics.jsonl"), encoding="utf-8") as f:
            for line in f:
                try:
                    last = json.loads(line).get("iteration", last)
                except json.JSONDecodeError:
                    continue
    except OSError:
        pass
    return last


def image_size_of(recipe, config):
    net = config.get("net", {})
    if isinstance(net, dict) and isinstance(net.get("image_size"), int):
        return net["image_size"]
    return recipe["image_size"]


def report(install):
    """docs/zoo.md from every finished card; with `install`, the models into www/models/ and
    their entries into www/models/models.json."""
    cards = []
    for name in recipe_names():
        recipe = load_recipe(name)
        run = os.path.join(runs_root(), f"zoo-{name}")
        card = read_json(os.path.join(run, "card.json"))
        cards.append((recipe, run, card))
    lines = [
        "# The model zoo",
        "",
        "Written by `bash scripts/train-zoo.sh report` from the cards of the zoo's runs on this machine; every figure is",
        "measured by the project's own evaluation. Each model has a recipe in `zoo/NAME.json` (the trainer's flags,",
        "the data, the evaluation, and why each setting departs from the paper) and trains from scratch with one command:",
        "",
        "```bash",
        "bash scripts/train-zoo.sh digits          # train (or, after a kill or a reboot, resume) and evaluate",
        "bash scripts/train-zoo.sh report --install  # this page, and the models into www/models/ for the demo",
        "```",
        "",
        "Runs live in `~/.cache/ebm/runs/zoo-NAME` (`$EBM_RUNS`), outside the clone, so a fresh clone on the same machine",
        "continues them; data come from `~/.cache/ebm/data` (`$EBM_DATA`), fetched by `scripts/fetch-data.sh` on first use.",
        "Each run folder holds `card.json`: the exact command, seed, data, iterations, wall time over every session,",
        "the machine, the source revision and the figures below. CI trains every recipe for a few iterations on the",
        "bundled data (`--smoke`) so that none rots.",
        "",
        "How the figures are measured:",
        "",
        "- **Digits** (`trainer eval-digits`): 1000 samples, read by the project's MNIST classifier (`trainer meg",
        "  classifier`, widths 32/64/128, 10 epochs on MNIST's training split; its test accuracy is in the table): the share",
        "  labelled with confidence above 0.9 and the entropy of the label histogram (ln 10 = 2.303 when every digit is",
        "  equally common), beside 1000 real test digits read by the same classifier. 32×32 samples lose MNIST's 2-pixel padding first.",
        "- **FID and KID** (`trainer eval`): 1000 samples against the first 1000 images of the test split; the floor",
        "  (`trainer eval-reference`) is the same distance between the test split's first and second 1000 images — what",
        "  a perfect model would score at this sample size.",
        "- **Inpainting** (`trainer multigrid table`): held-out test images under the paper's three masks (a 32×32 square,",
        "  a 25 % doodle, 30 % pepper-and-salt), the mean absolute error over the missing pixels on a 0–1 scale, beside",
        "  the paper's MG column of Table 4.",
        "- **Textures** (`trainer frame eval`): the mean response of every first-layer filter, as the relative distance to",
        "  the training image's (0 = matched, a chain at its start ≈ 1), read by the model's own filters: 8 fresh chains",
        "  after the model's own sampler (a new canvas), the persistent chains training kept (cut to the image's size),",
        "  their ratio, fresh chains on a 2× canvas, and the fresh chains after a second round.",
        "",
    ]
    lines += ["| model | family | data | iterations | training time | quality | target |", "|---|---|---|---|---|---|---|"]
    for recipe, run, card in cards:
        if not card or not card.get("finished"):
            lines.append(f"| {recipe['name']} | {recipe['family']} | {recipe['data']} | — | not trained yet | — | {target_text(recipe)} |")
            continue
        hours = card["training_seconds"] / 3600
        lines.append(f"| {recipe['name']} | {recipe['family']} | {recipe['data']} | {card['iterations']} | {hours:.2f} h on {card['machine']['cores']} cores | {quality_text(card['metrics'])} | {target_text(recipe)} |")
    for recipe, run, card in cards:
        lines += ["", f"## {recipe['name']}: {recipe['title']}", ""]
        if card and card.get("finished"):
            lines += [f"- command: `{shorten(card['command'])}`", f"- seed {card['seed']}, {card['iterations']} iterations, {card['training_seconds'] / 60:.0f} min of training in {card['sessions']} session(s) on {card['machine']['cpu']} ({card['machine']['cores']} cores), source {card['git_revision']}"]
            picture = recipe.get("picture_file", "{run}/samples.png").replace("{run}", run)
            if os.path.isfile(picture):
                os.makedirs(os.path.join(REPO, "docs/img/zoo"), exist_ok=True)
                shutil.copyfile(picture, os.path.join(REPO, "docs/img/zoo", f"{recipe['name']}.png"))
                lines += ["", f"![{recipe['name']} samples](img/zoo/{recipe['name']}.png)"]
        else:
            lines.append("Not trained yet.")
        lines += ["", "What the recipe chooses and why:", ""] + [f"- {c}" for c in recipe["choices"]]
    with open(os.path.join(REPO, "docs/zoo.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote docs/zoo.md", file=sys.stderr)
    if install:
        install_models(cards)


def install_models(cards):
    listing_path = os.path.join(REPO, "www/models/models.json")
    listing = read_json(listing_path, [])
    for recipe, run, card in cards:
        if not card or not card.get("finished"):
            continue
        target = os.path.join(REPO, "www/models", recipe["install"])
        shutil.copyfile(os.path.join(run, "model.ebm"), target)
        url = f"models/{recipe['install']}"
        entry = {
            "name": recipe["title"],
            "url": url,
            "family": recipe["family"],
            "data": recipe["data"],
            "image_size": card["image_size"],
            "iterations": card["iterations"],
            "training_seconds": card["training_seconds"],
            "quality": quality_summary(card["metrics"]),
            "recipe": f"zoo/{recipe['name']}.json",
        }
        listing = [e for e in listing if e.get("url") != url]
        listing.insert(0 if recipe["name"] == "digits" else len(listing), entry)
        print(f"installed {target}", file=sys.stderr)
    write_json(listing_path, listing)


def quality_summary(metrics):
    """The figures the demo's listing carries (no paths of this machine)."""
    summary = {}
    digits = metrics.get("digits")
    if digits:
        summary.update({
            "samples": digits["samples"]["count"],
            "confident_share": digits["samples"]["confident_share"],
            "label_entropy": round(digits["samples"]["label_entropy"], 4),
            "real_confident_share": digits["real"]["confident_share"],
            "classifier_test_accuracy": digits["classifier_test_accuracy"],
        })
    if metrics.get("fid") and metrics.get("floor"):
        summary.update({
            "fid": round(metrics["fid"]["fid"], 3),
            "fid_floor": round(metrics["floor"]["fid"], 3),
            "kid": round(metrics["fid"]["kid"], 5),
            "kid_floor": round(metrics["floor"]["kid"], 5),
            "fid_samples": metrics["fid"]["count"],
        })
    inpainting = metrics.get("inpainting")
    if inpainting:
        summary["inpainting_images"] = inpainting["count"]
        for mask, entry in inpainting["masks"].items():
            summary[f"inpainting_error_{mask}"] = round(entry["MG"]["error"], 4)
            summary[f"paper_mg_error_{mask}"] = entry["paper_mg"]["error"]
    texture = metrics.get("texture")
    if texture:
        summary.update({
            "fresh_distance": round(texture["fresh"]["mean"], 4),
            "persistent_distance": texture["persistent"] and round(texture["persistent"]["mean"], 4),
            "fresh_over_persistent": texture["fresh_over_persistent"] and round(texture["fresh_over_persistent"], 3),
            "large_distance": round(texture["large"]["mean"], 4),
            "chains": texture["chains"],
        })
    return summary


def quality_text(metrics):
    parts = []
    digits = metrics.get("digits")
    if digits:
        s = digits["samples"]
        parts.append(
            f"{100 * s['confident_share']:.1f} % confident (real digits {100 * digits['real']['confident_share']:.1f} %), label entropy {s['label_entropy']:.2f} nats; "
            f"classifier {100 * digits['classifier_test_accuracy']:.2f} % on MNIST test"
        )
    if metrics.get("fid") and metrics.get("floor"):
        parts.append(f"FID {metrics['fid']['fid']:.1f} (floor {metrics['floor']['fid']:.1f}), KID {metrics['fid']['kid']:.4f} (floor {metrics['floor']['kid']:.4f})")
    inpainting = metrics.get("inpainting")
    if inpainting:
        cells = [f"{mask} {e['MG']['error']:.3f} ({e['MG']['error'] / e['paper_mg']['error']:.1f}× the paper's {e['paper_mg']['error']:.3f})" for mask, e in inpainting["masks"].items()]
        parts.append(f"inpainting error on {inpainting['count']} held-out images: " + ", ".join(cells))
    texture = metrics.get("texture")
    if texture:
        text = f"first-layer distance: fresh chains {texture['fresh']['mean']:.3f}"
        if texture["persistent"]:
            text += f", persistent chains {texture['persistent']['mean']:.3f} (ratio {texture['fresh_over_persistent']:.2f})"
        text += f", {texture['scale']}× canvas {texture['large']['mean']:.3f}, after {texture['rounds']} rounds {texture['long_run']['mean']:.3f}"
        parts.append(text)
    return "; ".join(parts) or "—"


def target_text(recipe):
    return recipe.get("targets", {}).get("text", "—")


def shorten(command):
    """The card's command with this machine's folders named as the zoo names them."""
    return (command.replace(trainer_path(), "trainer").replace(runs_root(), "$EBM_RUNS").replace(data_root(), "$EBM_DATA")
            .replace(REPO + "/", "").replace(HOME, "~"))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="the recipes")
    t = sub.add_parser("train", help="train (or resume) a recipe, evaluate it, write its card")
    t.add_argument("name")
    t.add_argument("--smoke", action="store_true", help="a few iterations on the bundled data (what CI runs)")
    t.add_argument("--fresh", action="store_true", help="delete the run and start from scratch")
    t.add_argument("--no-eval", action="store_true", help="skip the evaluation")
    r = sub.add_parser("report", help="write docs/zoo.md from the cards")
    r.add_argument("--install", action="store_true", help="also copy the models into www/models/ and list them")
    args = parser.parse_args()
    try:
        if args.command == "list":
            for name in recipe_names():
                print(f"{name}: {load_recipe(name)['title']}")
        elif args.command == "train":
            train(args.name, smoke=args.smoke, fresh=args.fresh, evaluate=not args.no_eval)
        else:
            report(args.install)
    except ZooError as e:
        print(f"zoo: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
