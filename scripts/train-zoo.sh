#!/usr/bin/env bash
# Trains one model of the zoo from its recipe (zoo/NAME.json) on this machine, evaluates it and
# writes its card (command, seed, data, iterations, wall time, machine, figures) beside it:
#   bash scripts/train-zoo.sh NAME            train, or resume after a kill or a reboot
#   bash scripts/train-zoo.sh NAME --fresh    start again from scratch
#   bash scripts/train-zoo.sh list            the recipes
#   bash scripts/train-zoo.sh report          docs/zoo.md from every card (--install: into www/models/)
# Runs live in $EBM_RUNS (default ~/.cache/ebm/runs/zoo-NAME), data in $EBM_DATA (default
# ~/.cache/ebm/data, fetched by scripts/fetch-data.sh on first use): both outside the clone, so a
# fresh clone on the same machine continues the same run.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -lt 1 ]; then
  echo "usage: bash scripts/train-zoo.sh NAME [--fresh] [--no-eval] | list | report [--install]" >&2
  python3 scripts/zoo.py list >&2
  exit 2
fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ebm/target}"
# The Vulkan loader complains on every adapter query when this is unset.
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
case $1 in
  list) exec python3 scripts/zoo.py list ;;
  report) shift; exec python3 scripts/zoo.py report "$@" ;;
esac
if [ -z "${TRAINER:-}" ]; then
  command -v cargo >/dev/null || { echo "train-zoo: cargo is missing; install Rust with rustup first" >&2; exit 1; }
  cargo build --locked -p trainer
fi
name=$1
shift
exec python3 scripts/zoo.py train "$name" "$@"
