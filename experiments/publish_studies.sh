#!/usr/bin/env bash
# Publish every study in experiments/ from the run dirs that experiments/run_studies.sh
# leaves in one folder (the published ones: run on one machine, see each README's header):
#   $S/full          cnnlab-train -m experiment=ablation/full
#   $S/conv/*/       the same at twice the budget (study_budget=2), in parts of the grid
#   $S/extra/d025    dropout 0.25 with the full study's config (no batchnorm, no augmentation)
#   $S/extra/affine  affine augmentation likewise (no dropout, no batchnorm)
#   $S/transfer      cnnlab-train -m experiment=ablation/transfer (after pretrain_fashion)
#   $S/activation    cnnlab-train -m experiment=ablation/activation
#   $S/extra6/*, $S/activation6   the extra arms and the activation study at twice the
#                    budget (study_budget=2): their budget tests, where they were run
#   $S/conv12/*/     arms at four times the budget (study_budget=4): once a slice study's
#                    are all there, it is published at twice the budget against them
#   $S/transfer6, $S/transfer12, $S/activation12   likewise for those two studies
#   $S/recipes/fast  cnnlab-train -m experiment=fast 'seed=range(1,6)' (a recipe's seeds)
#   $S/recipes/best  cnnlab-train -m experiment=best 'seed=range(1,6)'
# The dropout, batchnorm and augmentation studies are slices of the full study's runs.
# A study whose runs are not in the folder is left as published: experiments/runs/ (the
# records experiments/archive_runs.py keeps in the repository) holds some studies' runs.
#   bash experiments/publish_studies.sh /path/to/studies
#   bash experiments/publish_studies.sh experiments/runs
set -euo pipefail
S=$(realpath -e "${1:?usage: publish_studies.sh STUDIES_DIR}") || exit 2
cd "$(dirname "$0")/.."
P="python experiments/publish_study.py"
F="cnnlab-train -m experiment=ablation/full"
conv=("$S"/conv/*/)
# an optional sweep, once it has finished (cnnlab-train writes sweep.json at a sweep's end)
have() { [ -e "$1/sweep.json" ] && echo "$1" || true; }
runs_in() {  # runs_in PATH...: how many runs are below (or at) the paths, as compare counts
  # them: a copy that cnnlab-rerun made of one of them is not another run
  python -c 'import sys; from pathlib import Path
from cnnlab.analysis.load import leave_out_reruns, load_run, run_dirs
runs = [load_run(d, Path(p)) for p in sys.argv[1:] for d in run_dirs(Path(p))]
print(len({r.path.resolve() for r in leave_out_reruns(runs)[0]}))' "$@"
}
# there STUDY N RUNS... [-- AGAINST...]: whether the study can be published from $S: its N
# runs (its config's arms × seeds) all there, and every budget-test path (else it is left
# as published: e.g. a study assembled in experiments/runs/ over several sessions)
there() {
  local study=$1 want=$2 p runs=() against=()
  shift 2
  while [ $# -gt 0 ] && [ "$1" != -- ]; do runs+=("$1") && shift; done
  [ $# -eq 0 ] || { shift && against=("$@"); }
  for p in "${runs[@]}" ${against[@]+"${against[@]}"}; do
    [ -e "$p" ] || { echo "$study: no ${p#"$S"/} in $S; left as published" && return 1; }
  done
  local n
  n=$(runs_in "${runs[@]}")
  [ "$n" -eq "$want" ] && return 0
  echo "$study: $n of its $want runs in $S; left as published"
  return 1
}
# A slice study is published at twice the budget (study_budget=2: $S/conv, $S/extra6) with
# its budget test at four times (study_budget=4: $S/conv12/*) once every run it has at twice
# the budget is there at four times, from sweeps that finished; until then at the full
# study's budget with the test at twice it.
at12() {  # at12 SLICE [EXTRA]
  local slice=$1 extra=${2:-} d
  [ -z "$extra" ] || [ -e "$S/extra6/$extra/sweep.json" ] || return 1
  # the same run names (arm and seed) at twice and at four times the budget
  names() { for d in "$@"; do [ -e "$d" ] && basename "$d"; done | sort; }
  local six twelve
  six=$(names "$S"/conv/*/$slice ${extra:+"$S/extra6/$extra"/$slice})
  twelve=$(names "$S"/conv12/*/$slice)
  [ -n "$six" ] && [ "$six" = "$twelve" ] || return 1
  for d in "$S"/conv12/*/; do  # a sweep still running has no sweep.json yet
    if compgen -G "$d$slice" >/dev/null && [ ! -e "$d/sweep.json" ]; then return 1; fi
  done
}
budget() {  # budget SLICE [EXTRA]: sets runs, against, B and W for one slice study
  local slice=$1 extra=${2:-}
  if at12 "$slice" "$extra"; then
    B=" study_budget=2" W=" at twice its budget"
    runs=("$S"/conv/*/$slice)
    [ -z "$extra" ] || runs+=("$S/extra6/$extra")
    against=("$S"/conv12/*/$slice)
  else
    B="" W=""
    runs=("$S"/full/$slice)
    [ -z "$extra" ] || runs+=("$S/extra/$extra")
    against=("$S"/conv/*/$slice)
    [ -z "$extra" ] || [ -z "$(have "$S/extra6/$extra")" ] || against+=("$S/extra6/$extra")
  fi
}
budget 'dropout=*,batchnorm=false,augmentation=none,*' d025
there dropout 15 "${runs[@]}" -- "${against[@]}" && $P dropout "${runs[@]}" \
  --reference model.net.dropout=0.0 \
  --title "Ablation study: dropout after fc1 (seed 003 §4.2)" \
  --command "$F$B   # this study is its slice: batchnorm off, no augmentation" \
  --command "$F$B model.net.dropout=0.25 model.net.batchnorm=false data/augmentation=none" \
  --against "${against[@]}" \
  --notes "The runs are the full study's$W with batchnorm off and no augmentation, and a dropout 0.25 arm run with the same config (second command)."
budget 'dropout=0.0,batchnorm=*,augmentation=none,*'
there batchnorm 10 "${runs[@]}" -- "${against[@]}" && $P batchnorm "${runs[@]}" \
  --reference model.net.batchnorm=false \
  --title "Ablation study: BatchNorm2d after each conv (seed 003 §4.3)" \
  --command "$F$B   # this study is its slice: no dropout, no augmentation" \
  --against "${against[@]}" \
  --notes "The runs are the full study's$W with no dropout and no augmentation."
budget 'dropout=0.0,batchnorm=false,augmentation=*' affine
there augmentation 20 "${runs[@]}" -- "${against[@]}" && $P augmentation "${runs[@]}" \
  --reference data/augmentation=none \
  --title "Ablation study: augmentation (seed 003 §4.1)" \
  --command "$F$B   # this study is its slice: no dropout, batchnorm off" \
  --command "$F$B model.net.dropout=0.0 model.net.batchnorm=false data/augmentation=affine" \
  --against "${against[@]}" \
  --notes "The runs are the full study's$W with no dropout and batchnorm off, and an affine arm run with the same config (second command)."
# transfer and activation: at twice the budget against four times once both have finished,
# else at the study budget against twice it where that has
study_at() {  # study_at NAME: sets runs, against, B for $S/NAME (+6, +12)
  local name=$1
  if [ -n "$(have "$S/${name}6")" ] && [ -n "$(have "$S/${name}12")" ]; then
    B=" study_budget=2" runs=("$S/${name}6") against=(--against "$S/${name}12")
  else
    B="" runs=("$S/$name") against=()
    [ -z "$(have "$S/${name}6")" ] || against=(--against "$S/${name}6")
  fi
}
study_at transfer
there transfer 25 "${runs[@]}" && $P transfer "${runs[@]}" "${against[@]}" --title "Ablation study: transfer learning (seed 003 §4.4)" \
  --command "cnnlab-train experiment=pretrain_fashion   # the Fashion-MNIST source model" \
  --command "cnnlab-train -m experiment=ablation/transfer$B" \
  --notes "The fashion arms start from the source model that the first command trains."
study_at activation
there activation 15 "${runs[@]}" && $P activation "${runs[@]}" "${against[@]}" \
  --title "Ablation study: ReLU vs sigmoid vs tanh in a six-conv stack (seed 002)" \
  --command "cnnlab-train -m experiment=ablation/activation$B"
# the full study and convergence: at twice the budget against four times once every arm is
# there (the grid's arms only: the extra arms' runs in conv12/ are not the full study's);
# --ignore torch_threads: one part of the earlier runs was run one job at a time with
# torch_threads=1 given (the thread a job gets from its share of the cores anyway); should a
# part be run so again, that override is not an arm
grid='dropout=0.[05],batchnorm=*,augmentation=[nrf]*'
if at12 "$grid"; then
  study=("$S"/conv/*/$grid) test=("$S"/conv12/*/$grid) B=" study_budget=2" B2=" study_budget=4"
else
  study=("$S/full") test=("${conv[@]}") B="" B2=" study_budget=2"
fi
there full 60 "${study[@]}" -- "${test[@]}" && $P full "${study[@]}" --ignore torch_threads \
  --title "Ablation study: dropout × batchnorm × augmentation" \
  --command "$F$B" --against "${test[@]}"
there convergence 60 "${test[@]}" -- "${study[@]}" && $P convergence "${test[@]}" --against "${study[@]}" --ignore torch_threads \
  --title "Convergence: every arm of the full study at twice its budget" \
  --command "$F$B2" \
  --notes "The arms were run as sweeps of that command, each a part of the grid with two of its factors given (e.g. \`model.net.dropout=0.0 model.net.batchnorm=false\`: the three augmentations, every seed); each arm is compared with its own runs in the full study, paired by seed."
there recipes/fast 5 "$S/recipes/fast" && $P recipes/fast "$S/recipes/fast" \
  --title "Recipe: fast (tuomaso/train_mnist_fast's recipe and net)" \
  --command "cnnlab-train -m experiment=fast 'seed=range(1,6)'"
there recipes/best 5 "$S/recipes/best" && $P recipes/best "$S/recipes/best" \
  --title "Recipe: best (a larger CNN, 15 epochs on all 60,000 training images)" \
  --command "cnnlab-train -m experiment=best 'seed=range(1,6)'"
$P --index
