#!/usr/bin/env bash
# Re-run every published study into one folder and publish it into experiments/ (the same
# sweeps as the published runs; ~15 h on a 2-core CPU, 2 jobs at a time). Real MNIST is read
# from $CNNLAB_DATA_DIR. A failed or skipped job is in its study's table, never a stop.
#   CNNLAB_DATA_DIR=... bash experiments/run_studies.sh [STUDIES_DIR]   # default logs/studies
# Then experiments/publish_studies.sh STUDIES_DIR (run last here) makes every README.
set -uo pipefail
cd "$(dirname "$0")/.."
S=${1:-logs/studies}
mkdir -p "$S/extra" "$S/extra6" "$S/conv" "$S/conv12" "$S/recipes"
F=(-m experiment=ablation/full)
sweep() {  # sweep NAME ARGS...: one cnnlab-train into $S/NAME, its log beside it
  local name=$1 t0 rc
  shift
  t0=$(date +%s)
  cnnlab-train "$@" "hydra.sweep.dir=$S/$name" >"$S/$name.log" 2>&1
  rc=$?
  echo "$name: $(($(date +%s) - t0)) s, exit $rc"
}
sweep full "${F[@]}"
sweep conv/all "${F[@]}" study_budget=2  # the budget test: every arm at twice the budget
sweep extra/d025 "${F[@]}" model.net.dropout=0.25 model.net.batchnorm=false data/augmentation=none
sweep extra/affine "${F[@]}" model.net.dropout=0.0 model.net.batchnorm=false data/augmentation=affine
sweep extra6/d025 "${F[@]}" study_budget=2 model.net.dropout=0.25 model.net.batchnorm=false data/augmentation=none
sweep extra6/affine "${F[@]}" study_budget=2 model.net.dropout=0.0 model.net.batchnorm=false data/augmentation=affine
# four times the budget: the budget test of the studies published at twice it
sweep conv12/all "${F[@]}" study_budget=4
sweep conv12/d025 "${F[@]}" study_budget=4 model.net.dropout=0.25 model.net.batchnorm=false data/augmentation=none
sweep conv12/affine "${F[@]}" study_budget=4 model.net.dropout=0.0 model.net.batchnorm=false data/augmentation=affine
cnnlab-train experiment=pretrain_fashion >"$S/pretrain_fashion.log" 2>&1  # transfer's source
sweep transfer -m experiment=ablation/transfer
sweep activation -m experiment=ablation/activation
sweep activation6 -m experiment=ablation/activation study_budget=2
sweep activation12 -m experiment=ablation/activation study_budget=4
sweep transfer6 -m experiment=ablation/transfer study_budget=2
sweep transfer12 -m experiment=ablation/transfer study_budget=4
sweep recipes/fast -m experiment=fast 'seed=range(1,6)'
bash experiments/publish_studies.sh "$S"
