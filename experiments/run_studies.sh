#!/usr/bin/env bash
# Re-run and publish the ablation studies at the study budget (conf/experiment/ablation/
# _study.yaml), one after another, each into experiments/<study>/. Real MNIST is read from
# $CNNLAB_DATA_DIR. A failed or skipped job is in the study's table, never a stop.
#   bash experiments/run_studies.sh dropout batchnorm augmentation transfer activation full
set -uo pipefail
cd "$(dirname "$0")/.."
title() {
  case $1 in
    dropout) echo "Ablation study: dropout after fc1 (seed 003 §4.2)";;
    batchnorm) echo "Ablation study: BatchNorm2d after each conv (seed 003 §4.3)";;
    augmentation) echo "Ablation study: augmentation (seed 003 §4.1)";;
    transfer) echo "Ablation study: transfer learning (seed 003 §4.4)";;
    activation) echo "Ablation study: ReLU vs sigmoid vs tanh in a six-conv stack (seed 002)";;
    full) echo "Ablation study: dropout × batchnorm × augmentation";;
  esac
}
mkdir -p logs/studies
for study in "$@"; do
  sweep=logs/studies/$study
  t0=$(date +%s)
  if [ "$study" = transfer ]; then
    cnnlab-train experiment=pretrain_fashion >logs/studies/pretrain_fashion.log 2>&1
  fi
  cnnlab-train -m "experiment=ablation/$study" "hydra.sweep.dir=$sweep" >"logs/studies/$study.log" 2>&1
  rc=$?
  t1=$(date +%s)
  echo "$study: $((t1 - t0)) s, exit $rc"
  cnnlab-compare "$sweep" --out "experiments/$study" --title "$(title "$study")" \
    >"logs/studies/$study.compare.log" 2>&1
  python experiments/publish_study.py "$study" "$sweep" \
    --title "$(title "$study")" --command "cnnlab-train -m experiment=ablation/$study"
done
