#!/usr/bin/env bash
# nobg's IS-Net (RMBG-1.4 architecture) against onnxruntime on the CPU: the same synthetic
# weights (exported to ONNX f32 from the public reference `briarmbg.py` with torch.onnx.export),
# the same input, the same thread count, alternating rounds in one run.
#
# usage: crates/isnet/bench/vs_onnxruntime.sh BRIARMBG_PY [ROUNDS] [ITERS] [SIZE] [THREADS]
# env:   PYTHON  a Python with torch (CPU), onnx, onnxscript, onnxruntime, numpy, safetensors,
#                Pillow (default: target/venv/bin/python)
# Prints one JSON line per process and a summary: median wall / CPU ms per pass, ratio
# nobg / onnxruntime, peak RSS of each, and the largest |mask difference| between the two.
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
for r in $(seq 1 "$rounds"); do
  save_n=; save_o=
  if [ "$r" = 1 ]; then save_n="--save $work/nobg-mask.npy"; save_o="$work/ort-mask.npy"; fi
  RAYON_NUM_THREADS=$threads "$bin" --input "$x" --iters "$iters" --seed 0 $save_n | tee -a "$log"
  OMP_NUM_THREADS=$threads "$py" "$root/crates/isnet/bench/ort_time.py" "$onnx" "$x" "$iters" "$threads" $save_o | tee -a "$log"
done
"$py" - "$log" "$work/nobg-mask.npy" "$work/ort-mask.npy" <<'PY'
import json, sys
import numpy as np
rows = [json.loads(l) for l in open(sys.argv[1])]
def med(impl, key):
    return float(np.median([r[key] for r in rows if r["impl"].startswith(impl)]))
n_w, o_w = med("nobg", "wall_ms"), med("onnxruntime", "wall_ms")
n_c, o_c = med("nobg", "cpu_ms"), med("onnxruntime", "cpu_ms")
d = np.abs(np.load(sys.argv[2]).reshape(-1) - np.load(sys.argv[3]).reshape(-1)).max()
print(f"nobg        wall {n_w:8.1f} ms  cpu {n_c:8.1f} ms  peak RSS {med('nobg', 'peak_rss_mib'):7.1f} MiB")
print(f"onnxruntime wall {o_w:8.1f} ms  cpu {o_c:8.1f} ms  peak RSS {med('onnxruntime', 'peak_rss_mib'):7.1f} MiB")
print(f"ratio nobg/onnxruntime: wall {n_w / o_w:.3f}, cpu {n_c / o_c:.3f}; max |mask diff| {d:.2e}")
PY
