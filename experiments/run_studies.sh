#!/usr/bin/env bash
# Re-run the published studies' sweeps into one folder (all of them: ~15 h on a 2-core CPU,
# 2 jobs at a time) and publish them into experiments/. Real MNIST is read from
# $CNNLAB_DATA_DIR. A failed or skipped job is in its study's table, never a stop.
#   CNNLAB_DATA_DIR=... bash experiments/run_studies.sh [STUDIES_DIR]   # default logs/studies
# A share of them, e.g. what one session's machine has time for:
#   bash experiments/run_studies.sh STUDIES_DIR SWEEP... [-- OVERRIDE...]
# runs only the named sweeps (names from the list below), in that order, with the overrides
# (if any) added to each; conv/PART and conv12/PART name a part of the full study's grid at
# twice or four times its budget, e.g. `conv12/bn -- model.net.batchnorm=true`. Then keep
# their records with experiments/archive_runs.py and publish with publish_studies.sh.
set -uo pipefail
S=$(realpath -m "${1:-$(dirname "$0")/../logs/studies}") # as given, from where it is run
shift || true
cd "$(dirname "$0")/.."
F=(-m experiment=ablation/full)
D025=(model.net.dropout=0.25 model.net.batchnorm=false data/augmentation=none)
AFFINE=(model.net.dropout=0.0 model.net.batchnorm=false data/augmentation=affine)
EVERY=(full conv/all extra/d025 extra/affine extra6/d025 extra6/affine
  conv12/all conv12/d025 conv12/affine # four times the budget: the 6-epoch studies' test
  pretrain_fashion transfer activation activation6 activation12 transfer6 transfer12
  recipes/fast)
OTHERS=(recipes/best) # by name only: 15 epochs of a larger net, ~1 h on a 2-core CPU
args() { # args NAME: sets A to the cnnlab-train arguments of that sweep
  case $1 in
    full) A=("${F[@]}") ;;
    extra/d025) A=("${F[@]}" "${D025[@]}") ;;
    extra/affine) A=("${F[@]}" "${AFFINE[@]}") ;;
    extra6/d025) A=("${F[@]}" study_budget=2 "${D025[@]}") ;;
    extra6/affine) A=("${F[@]}" study_budget=2 "${AFFINE[@]}") ;;
    conv12/d025) A=("${F[@]}" study_budget=4 "${D025[@]}") ;;
    conv12/affine) A=("${F[@]}" study_budget=4 "${AFFINE[@]}") ;;
    conv/?*) A=("${F[@]}" study_budget=2) ;; # conv/all or a part of the grid
    conv12/?*) A=("${F[@]}" study_budget=4) ;;
    pretrain_fashion) A=(experiment=pretrain_fashion) ;; # transfer's source: one run
    transfer | activation) A=(-m "experiment=ablation/$1") ;;
    transfer6 | activation6) A=(-m "experiment=ablation/${1%6}" study_budget=2) ;;
    transfer12 | activation12) A=(-m "experiment=ablation/${1%12}" study_budget=4) ;;
    recipes/fast | recipes/best) A=(-m "experiment=${1#recipes/}" 'seed=range(1,6)') ;;
    *) return 1 ;;
  esac
}
names=() extra=() all=
while [ $# -gt 0 ] && [ "$1" != -- ]; do names+=("$1") && shift; done
[ $# -eq 0 ] || { shift && extra=("$@"); }
[ ${#names[@]} -gt 0 ] || names=("${EVERY[@]}") all=1
for name in "${names[@]}"; do # every name checked before anything runs
  args "$name" || {
    echo "run_studies.sh: SWEEP=$name is not one of: ${EVERY[*]} ${OTHERS[*]} conv/PART conv12/PART" >&2
    exit 2
  }
done
sweep() { # sweep NAME: one cnnlab-train into $S/NAME, its log beside it
  local name=$1 t0 rc
  args "$name"
  mkdir -p "$(dirname "$S/$name")"
  t0=$(date +%s)
  if [ "$name" = pretrain_fashion ]; then # a single run into logs/pretrained, not a sweep
    cnnlab-train "${A[@]}" ${extra[@]+"${extra[@]}"} >"$S/$name.log" 2>&1
  else
    cnnlab-train "${A[@]}" ${extra[@]+"${extra[@]}"} "hydra.sweep.dir=$S/$name" >"$S/$name.log" 2>&1
  fi
  rc=$?
  echo "$name: $(($(date +%s) - t0)) s, exit $rc"
}
for name in "${names[@]}"; do sweep "$name"; done
[ -z "$all" ] || bash experiments/publish_studies.sh "$S"
