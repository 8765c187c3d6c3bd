#!/usr/bin/env bash
# nobg vs the PyTorch reference on the CPU, same cases, alternating rounds, each run in its own
# process (so peak RSS is per case). One JSON line per run from each side, then one summary line
# per case and nobg dtype: {"case","dtype","nobg_ms","pytorch_ms","ratio","nobg_cpu_ms",
# "pytorch_cpu_ms","cpu_ratio","nobg_rss_mib","pytorch_rss_mib","rss_ratio","rounds"}, medians
# over the rounds, ratio = nobg / PyTorch (PyTorch always in f32: it cannot run BiRefNet in bf16
# on a CPU, torchvision's deform_conv2d has no bf16 kernel).
#
#   BIREFNET_REPO=/path/to/ZhengPeng7/BiRefNet/git-dir \
#     crates/birefnet/benches/cpu_vs_pytorch.sh [ROUNDS] [CASE...]
#
# CASE is BACKBONE:SIZE (default: swin_v1_t:512 swin_v1_t:1024 swin_v1_l:1024). THREADS (default
# 2) sets both sides' thread count, ITERS (default 3) the timed passes per run, DTYPES nobg's
# dtypes (default: "f32 bf16" where the CPU has AMX-BF16 or AVX512-BF16, else "f32"). The PyTorch side
# runs in a venv under target/ (CPU torch + torchvision and BiRefNet's imports from PyPI).
# NOBG_FORWARD_TIME points at a prebuilt forward_time binary (default: built here, release).
# CPU_LEVEL=avx2 measures, on an AVX-512 machine, what an AVX2-only CPU runs: nobg built without
# its `avx512` feature (gemm's AVX2 micro-kernels, nobg's AVX2 twins), PyTorch with its AVX-512
# dispatch capped at AVX2 (ATEN_CPU_CAPABILITY, ONEDNN_MAX_CPU_ISA, MKL_ENABLE_INSTRUCTIONS),
# f32 only.
set -euo pipefail
cd "$(dirname "$0")/../../.."

rounds=${1:-2}
shift || true
cases=("$@")
[ ${#cases[@]} -gt 0 ] || cases=(swin_v1_t:512 swin_v1_t:1024 swin_v1_l:1024)
threads=${THREADS:-2}
iters=${ITERS:-3}
features=()
if [ "${CPU_LEVEL:-}" = avx2 ]; then
    features=(--no-default-features)
    DTYPES=f32
    export ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2
elif [ -n "${CPU_LEVEL:-}" ]; then
    echo "CPU_LEVEL is avx2 or unset" >&2
    exit 2
fi
if [ -z "${DTYPES:-}" ]; then
    DTYPES=f32
    grep -qwE 'amx_bf16|avx512_bf16' /proc/cpuinfo 2>/dev/null && DTYPES="f32 bf16"
fi
repo=${BIREFNET_REPO:?set BIREFNET_REPO to a clone of github.com/ZhengPeng7/BiRefNet}
target=${CARGO_TARGET_DIR:-target}

venv=target/torch-venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import torch, torchvision" 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q torch torchvision einops kornia huggingface_hub \
        opencv-python-headless tqdm timm
fi

nobg=${NOBG_FORWARD_TIME:-}
if [ -z "$nobg" ]; then
    cargo build -q --release -p birefnet --example forward_time "${features[@]}"
    nobg=$target/release/examples/forward_time
fi

export RAYON_NUM_THREADS=$threads OMP_NUM_THREADS=$threads
log=$(mktemp)
for round in $(seq 1 "$rounds"); do
    for case in "${cases[@]}"; do
        for dtype in $DTYPES; do
            echo "{\"round\":$round,\"side\":\"nobg\",\"run\":$("$nobg" --iters "$iters" \
                --no-backbone --dtype "$dtype" "$case")}" | tee -a "$log"
        done
        echo "{\"round\":$round,\"side\":\"pytorch\",\"run\":$("$venv/bin/python" \
            crates/birefnet/benches/pytorch_forward.py --repo "$repo" --threads "$threads" \
            --iters "$iters" "$case")}" | tee -a "$log"
    done
done
python3 - "$log" <<'PY'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
med = lambda xs: statistics.median(xs)
for case in dict.fromkeys(r["run"]["case"] for r in rows):
    torch = [r["run"] for r in rows if r["side"] == "pytorch" and r["run"]["case"] == case]
    mine = [r["run"] for r in rows if r["side"] == "nobg" and r["run"]["case"] == case]
    for dtype in dict.fromkeys(r["dtype"] for r in mine):
        runs = [r for r in mine if r["dtype"] == dtype]
        n, p = med(r["median_ms"] for r in runs), med(r["median_ms"] for r in torch)
        nc, pc = med(r["cpu_ms"] for r in runs), med(r["cpu_ms"] for r in torch)
        nr, pr = max(r["peak_rss_mib"] for r in runs), max(r["peak_rss_mib"] for r in torch)
        print(json.dumps({"case": case, "dtype": dtype.lower(), "nobg_ms": n, "pytorch_ms": p,
                          "ratio": round(n / p, 3), "nobg_cpu_ms": nc, "pytorch_cpu_ms": pc,
                          "cpu_ratio": round(nc / pc, 3), "nobg_rss_mib": nr,
                          "pytorch_rss_mib": pr, "rss_ratio": round(nr / pr, 3),
                          "simd": runs[0].get("simd"), "pytorch_simd": torch[0].get("simd"),
                          "rounds": len(runs)}))
PY
rm -f "$log"
