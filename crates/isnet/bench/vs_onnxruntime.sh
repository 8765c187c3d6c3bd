#!/usr/bin/env bash
# nobg's IS-Net (RMBG-1.4 architecture) against onnxruntime on the CPU: the same synthetic
# weights (exported to ONNX f32 from the public reference `briarmbg.py` with torch.onnx.export),
# the same input, the same thread count, alternating rounds in one run.
#
# usage: crates/isnet/bench/vs_onnxruntime.sh BRIARMBG_PY [ROUNDS] [ITERS] [SIZE] [THREADS]
# env:   PYTHON  a Python with torch (CPU), onnx, onnxscript, onnxruntime, numpy, safetensors,
#                Pillow (default: target/venv/bin/python)
# Prints one JSON line per process and a summary per nobg dtype: median wall / CPU ms per pass,
# ratio nobg / onnxruntime, peak RSS of each, and the largest |mask difference| between the two.
# DTYPES: nobg's dtypes (default "f32 bf16" where the CPU has AMX-BF16, else "f32"); onnxruntime
# runs the f32 model.
set -euo pipefail
ref=${1:?usage: vs_onnxruntime.sh BRIARMBG_PY [ROUNDS] [ITERS] [SIZE] [THREADS]}
rounds=${2:-3}
iters=${3:-3}
size=${4:-1024}
threads=${5:-2}
root=$(cd "$(dirname "$0")/../../.." && pwd)
py=${PYTHON:-$root/target/venv/bin/python}
work=$root/target/isnet-bench
mkdir -p "$work"
onnx=$work/isnet-synthetic-$size.onnx
if [ ! -s "$onnx" ]; then
  "$py" "$root/tests/fixtures/isnet/generate.py" "$ref" --onnx "$onnx" "$size" 0 >&2
fi
x=$work/input-$size.npy
"$py" -c "import numpy as np; np.save('$x', (np.random.default_rng(0).random((1, 3, $size, $size), dtype=np.float32) - 0.5))"
(cd "$root" && cargo build --release -q -p isnet --example isnet_forward_time)
bin=${CARGO_TARGET_DIR:-$root/target}/release/examples/isnet_forward_time
log=$work/results-$size.jsonl
: > "$log"
if [ -z "${DTYPES:-}" ]; then
  DTYPES=f32
  grep -qw amx_bf16 /proc/cpuinfo 2>/dev/null && DTYPES="f32 bf16"
fi
for r in $(seq 1 "$rounds"); do
  save_o=
  if [ "$r" = 1 ]; then save_o="$work/ort-mask.npy"; fi
  for dtype in $DTYPES; do
    save_n=
    if [ "$r" = 1 ]; then save_n="--save $work/nobg-mask-$dtype.npy"; fi
    RAYON_NUM_THREADS=$threads "$bin" --input "$x" --iters "$iters" --seed 0 --dtype "$dtype" \
      $save_n | tee -a "$log"
  done
  OMP_NUM_THREADS=$threads "$py" "$root/crates/isnet/bench/ort_time.py" "$onnx" "$x" "$iters" "$threads" $save_o | tee -a "$log"
done
"$py" - "$log" "$work" <<'PY'
import json, sys
import numpy as np
rows = [json.loads(l) for l in open(sys.argv[1])]
def med(pick, key):
    return float(np.median([r[key] for r in rows if pick(r)]))
ort = lambda r: r["impl"].startswith("onnxruntime")
o_w, o_c, o_r = med(ort, "wall_ms"), med(ort, "cpu_ms"), med(ort, "peak_rss_mib")
print(f"onnxruntime      wall {o_w:8.1f} ms  cpu {o_c:8.1f} ms  peak RSS {o_r:7.1f} MiB")
ort_mask = np.load(f"{sys.argv[2]}/ort-mask.npy").reshape(-1)
for dtype in dict.fromkeys(r.get("dtype", "f32") for r in rows if not ort(r)):
    mine = lambda r, d=dtype: not ort(r) and r.get("dtype", "f32") == d
    n_w, n_c, n_r = med(mine, "wall_ms"), med(mine, "cpu_ms"), med(mine, "peak_rss_mib")
    d = np.abs(np.load(f"{sys.argv[2]}/nobg-mask-{dtype}.npy").reshape(-1) - ort_mask)
    print(f"nobg {dtype:5s}       wall {n_w:8.1f} ms  cpu {n_c:8.1f} ms  peak RSS {n_r:7.1f} MiB")
    print(f"  ratio nobg {dtype}/onnxruntime: wall {n_w / o_w:.3f}, cpu {n_c / o_c:.3f}, "
          f"RSS {n_r / o_r:.3f}; |mask diff| max {d.max():.2e} mean {d.mean():.2e}")
PY
