#!/usr/bin/env bash
# One short session on a GPU machine (run from the repo root; results under $OUT). Issue 24's
# GPU goals come first, so a session cut short has measured the most:
#   1. cnnlab installed there from carried wheels (.whl) and MNIST from carried .gz (.mnist)
#   2. the fast recipe compiled with CUDA graphs (model.compile=reduce-overhead,
#      data.drop_last=true) against the eager plain loop, in one process
#      (bench_time_to_acc.py, 3 reps): seconds per epoch of each, plain/compiled and test
#      accuracy, against the goals (<= 0.15 s per epoch, >= 4x the plain loop, >= 99.0%)
#   3. a 15-run study of experiment=fast on the one GPU, jobs concurrent (joblib n_jobs=8):
#      runs per minute against the goal (>= 60)
#   4. the GPU tests (tests/test_gpu.py)
#   5. reruns of experiment=fast, eager and compiled (default, reduce-overhead), each twice:
#      test accuracy, seconds per epoch, whether the rerun is bit-identical
# Every step writes its result at once. Locally (no GPU): DEVICE=cpu STUDY_RUNS=2
# EXTRA="trainer.limit_train_batches=2 ..." runs the same steps on the CPU, as a dry run.
set -u
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
DEVICE=${DEVICE:-gpu}
step() { echo "== $(date +%T) $*" | tee -a "$OUT/steps.txt"; }

step setup
if [ -d .whl ] && [ "$DEVICE" = gpu ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
  python3 -m pip install -q --no-index --no-deps --no-build-isolation -e . >/dev/null 2>&1 \
    || echo "pip -e failed" >>"$OUT/steps.txt"
fi
if [ -d .mnist ]; then
  mkdir -p /tmp/mnist/MNIST/raw && cp .mnist/*.gz /tmp/mnist/MNIST/raw/
  export CNNLAB_DATA_DIR=/tmp/mnist
fi
LOGS=$(mktemp -d /tmp/gpu_logs.XXXXXX)  # this session's run dirs, none from an earlier one
export WANDB_MODE=offline CNNLAB_LOG_DIR=$LOGS
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >"$OUT/gpu.txt" 2>&1
python3 -c "import torch, lightning; print(torch.__version__, lightning.__version__, torch.cuda.is_available())" >>"$OUT/gpu.txt" 2>&1

read -r -a EXTRA_ARGS <<< "${EXTRA:-}"  # a dry run: EXTRA=trainer.limit_train_batches=5
RUN=(experiment=fast "trainer=$DEVICE" logger=none callbacks.progress_bar=null "${EXTRA_ARGS[@]}")
# inductor on the GPU; the CPU dry run traces with the eager backend (inductor's C++ kernels
# take minutes to build on 2 cores)
BACKEND=${COMPILE_BACKEND:-$([ "$DEVICE" = gpu ] && echo inductor || echo eager)}

step compiled fast recipe against the eager plain loop
if [ "$DEVICE" = gpu ]; then SIZE=(--device cuda --reps 3); else SIZE=(--reps 1 --batches 2); fi
timeout 240 python3 experiments/benchmark/bench_time_to_acc.py --recipes fast "${SIZE[@]}" \
  --override model.compile=reduce-overhead --override "model.compile_backend=$BACKEND" \
  --override data.drop_last=true --json "$OUT/compiled_vs_plain.json" \
  >"$OUT/compiled_vs_plain.txt" 2>&1
python3 - "$OUT" <<'PY' >>"$OUT/steps.txt" 2>&1
import json, sys
from pathlib import Path
f = Path(sys.argv[1]) / "compiled_vs_plain.json"
if not f.exists():
    sys.exit("compiled vs plain: no result (see compiled_vs_plain.txt)")
r = json.loads(f.read_text())
c, p = r["recipes"]["fast"]["arms"]["c"], r["recipes"]["fast"]["arms"]["p"]
speedup = p["s_per_epoch"] / c["s_per_epoch"]
goal = lambda ok: "met" if ok else "MISSED"
print(f"compiled vs plain ({r['device']}, {r['reps']} reps): compiled {c['s_per_epoch']:.3f} s "
      f"per epoch ({goal(c['s_per_epoch'] <= 0.15)}: <= 0.15), plain {p['s_per_epoch']:.3f}; "
      f"plain/compiled {speedup:.2f}x ({goal(speedup >= 4)}: >= 4); test acc compiled "
      f"{c['acc_mean']:.4f} ({goal(c['acc_mean'] >= 0.99)}: >= 0.990), plain {p['acc_mean']:.4f}")
PY

step study throughput
STUDY_RUNS=${STUDY_RUNS:-15}
JOBS=${JOBS:-8}
t0=$(date +%s.%N)
timeout 240 cnnlab-train -m "${RUN[@]}" "seed=range(1,$((STUDY_RUNS + 1)))" \
  hydra/launcher=local_parallel "hydra.launcher.n_jobs=$JOBS" "hydra.sweep.dir=$LOGS/study" \
  >"$OUT/study.log" 2>&1
t1=$(date +%s.%N)
python3 - "$LOGS/study" "$JOBS" "$t0" "$t1" <<'PY' >>"$OUT/steps.txt" 2>&1
import json, sys
from pathlib import Path
root, n, t0, t1 = Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
runs = [json.loads(p.read_text()) for p in root.glob("*/results.json")]
done = [r for r in runs if r["status"] == "completed"]
rate = 60 * len(done) / (t1 - t0)
print(f"study, n_jobs={n}: {len(done)} runs in {t1 - t0:.1f} s = {rate:.1f} runs/min "
      f"({'met' if rate >= 60 else 'MISSED'}: >= 60); GPU MB per run "
      f"{[r.get('gpu_memory_peak_mb') for r in done]}; test/acc "
      f"{[round(r['metrics']['test/acc'], 4) for r in done]}")
PY

step gpu tests
# -o addopts=: one process, whether or not the carried wheels hold pytest-xdist
timeout 200 python3 -m pytest -q -p no:cacheprovider -o addopts= tests/test_gpu.py >"$OUT/test_gpu.txt" 2>&1
tail -n 3 "$OUT/test_gpu.txt" >>"$OUT/steps.txt"

step reruns, eager and compiled
for case in none-1 none-2 default-1 default-2 reduce-overhead-1 reduce-overhead-2; do
  mode=${case%-*}
  args=("model.compile=$mode" "model.compile_backend=$BACKEND")
  [ "$mode" = reduce-overhead ] && args+=(data.drop_last=true)
  timeout 120 cnnlab-train "${RUN[@]}" seed=1 trainer.deterministic=warn "${args[@]}" \
    "hydra.run.dir=$LOGS/$case" >"$OUT/run_$case.log" 2>&1
  cp "$LOGS/$case/results.json" "$OUT/results_$case.json" 2>/dev/null
done
python3 - "$OUT" <<'PY' >>"$OUT/steps.txt" 2>&1
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
rows = lambda r: [{k: v for k, v in row.items() if k != "time_s"} for row in r["history"]]
for mode in ("none", "default", "reduce-overhead"):
    res = [json.loads(f.read_text()) for f in (out / f"results_{mode}-{i}.json" for i in (1, 2))
           if f.exists()]
    if len(res) < 2:
        print(f"compile={mode}: {len(res)} of 2 runs (see run_{mode}-*.log)")
        continue
    a, b = res
    same = a["metrics"] == b["metrics"] and rows(a) == rows(b)
    print(f"compile={mode}: {a['status']}, test/acc {a['metrics'].get('test/acc')}, s per epoch "
          f"{[row.get('time_s') for row in a['history']]} then "
          f"{[row.get('time_s') for row in b['history']]}; rerun "
          f"{'bit-identical' if same else 'DIFFERS'}")
PY

step done
