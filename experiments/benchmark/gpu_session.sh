#!/usr/bin/env bash
# One short session on a GPU machine (run from the repo root; results under $OUT):
#   1. cnnlab installed there from carried wheels (.whl) and MNIST from carried .gz (.mnist)
#   2. the GPU tests (tests/test_gpu.py)
#   3. determinism: experiment=fast twice with trainer.deterministic=warn and twice with
#      true; bf16-mixed once: fit time, test accuracy, whether reruns are bit-identical
#   4. sweep throughput on one GPU: 4 runs of experiment=fast with joblib n_jobs 1 and 4
#   5. model.compile: 3 epochs of experiment=fast eager, compiled (default) and with CUDA
#      graphs (reduce-overhead): seconds per epoch (the first pays the compile), test accuracy
# Every step writes its result at once, so a session cut short still returns what it did.
# Locally (no GPU): DEVICE=cpu EXTRA=trainer.limit_train_batches=5 runs the same steps on
# the CPU, as a dry run of the script.
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
export WANDB_MODE=offline CNNLAB_LOG_DIR=/tmp/gpu_logs
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >"$OUT/gpu.txt" 2>&1
python3 -c "import torch, lightning; print(torch.__version__, lightning.__version__, torch.cuda.is_available())" >>"$OUT/gpu.txt" 2>&1

step gpu tests
timeout 100 python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py >"$OUT/test_gpu.txt" 2>&1
tail -n 3 "$OUT/test_gpu.txt" >>"$OUT/steps.txt"

read -r -a EXTRA_ARGS <<< "${EXTRA:-}"  # a dry run: EXTRA=trainer.limit_train_batches=5
RUN=(experiment=fast "trainer=$DEVICE" logger=none callbacks.progress_bar=null "${EXTRA_ARGS[@]}" seed=1)
step determinism and precision
for case in warn-1 warn-2 true-1 true-2 bf16-1; do
  mode=${case%-*}
  extra=("trainer.deterministic=$mode")
  [ "$mode" = bf16 ] && extra=("trainer.deterministic=warn" "trainer.precision=bf16-mixed")
  timeout 60 cnnlab-train "${RUN[@]}" "${extra[@]}" "hydra.run.dir=/tmp/gpu_logs/$case" \
    >"$OUT/run_$case.log" 2>&1
  cp "/tmp/gpu_logs/$case/results.json" "$OUT/results_$case.json" 2>/dev/null
done
python3 - "$OUT" <<'EOF' >>"$OUT/steps.txt" 2>&1
import json, re, sys
from pathlib import Path
out = Path(sys.argv[1])
res = {c: json.loads((out / f"results_{c}.json").read_text())
       for c in ("warn-1", "warn-2", "true-1", "true-2", "bf16-1")
       if (out / f"results_{c}.json").exists()}
for c, r in res.items():
    print(c, r["status"], "test/acc", r["metrics"].get("test/acc"), "fit_s", r.get("fit_time_s"),
          "gpu_mb", r.get("gpu_memory_peak_mb"))
for a, b in (("warn-1", "warn-2"), ("true-1", "true-2"), ("warn-1", "true-1")):
    if a in res and b in res:
        rows = lambda r: [{k: v for k, v in row.items() if k != "time_s"} for row in r["history"]]
        same = res[a]["metrics"] == res[b]["metrics"] and rows(res[a]) == rows(res[b])
        print(f"{a} vs {b}: metrics and history {'bit-identical' if same else 'DIFFER'}")
for c in ("warn-1", "true-1"):
    log = (out / f"run_{c}.log").read_text() if (out / f"run_{c}.log").exists() else ""
    ops = sorted(set(re.findall(r"(\w+) does not have a deterministic implementation", log)))
    print(c, "ops without a deterministic kernel:", ops or "none")
EOF

step sweep throughput
for n in 1 4; do
  t0=$(date +%s.%N)
  timeout 120 cnnlab-train -m "${RUN[@]:0:$((${#RUN[@]} - 1))}" 'seed=range(1,5)' hydra/launcher=local_parallel \
    "hydra.launcher.n_jobs=$n" "hydra.sweep.dir=/tmp/gpu_logs/sweep_$n" >"$OUT/sweep_$n.log" 2>&1
  t1=$(date +%s.%N)
  python3 - "$n" "$t0" "$t1" <<'EOF' >>"$OUT/steps.txt" 2>&1
import json, sys
from pathlib import Path
n, t0, t1 = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
runs = [json.loads(p.read_text()) for p in Path(f"/tmp/gpu_logs/sweep_{n}").glob("*/results.json")]
done = [r for r in runs if r["status"] == "completed"]
mem = [r.get("gpu_memory_peak_mb") for r in done]
print(f"n_jobs={n}: {len(done)} runs in {t1 - t0:.1f} s = {60 * len(done) / (t1 - t0):.1f} runs/min; "
      f"GPU MB per run {mem}; test/acc {[round(r['metrics']['test/acc'], 4) for r in done]}")
EOF
done
step compile
# inductor on the GPU; the CPU dry run traces with the eager backend (inductor's C++ kernels
# take minutes to build on 2 cores)
BACKEND=${COMPILE_BACKEND:-$([ "$DEVICE" = gpu ] && echo inductor || echo eager)}
for mode in none default reduce-overhead; do
  timeout 150 cnnlab-train "${RUN[@]}" trainer.max_epochs=3 "model.compile=$mode" \
    "model.compile_backend=$BACKEND" "hydra.run.dir=/tmp/gpu_logs/compile_$mode" \
    >"$OUT/compile_$mode.log" 2>&1
  cp "/tmp/gpu_logs/compile_$mode/results.json" "$OUT/results_compile_$mode.json" 2>/dev/null
done
python3 - "$OUT" <<'EOF' >>"$OUT/steps.txt" 2>&1
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
base = None
for mode in ("none", "default", "reduce-overhead"):
    f = out / f"results_compile_{mode}.json"
    if not f.exists():
        print(f"compile={mode}: no result (see compile_{mode}.log)")
        continue
    r = json.loads(f.read_text())
    epochs = [row.get("time_s") for row in r.get("history", [])]
    last = epochs[-1] if epochs and epochs[-1] else None
    base = last if mode == "none" else base
    ratio = f"; last epoch {last / base:.2f}x eager" if last and base else ""
    print(f"compile={mode}: {r['status']}, s per epoch {epochs}, test/acc "
          f"{r['metrics'].get('test/acc')}{ratio}")
EOF

step done
