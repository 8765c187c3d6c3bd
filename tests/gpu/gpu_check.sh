#!/usr/bin/env bash
# One visit to a GPU machine (PyTorch and a CUDA driver, no Rust, no network), in a few
# minutes: the bundle of tests/gpu/bundle.sh must be at target/gpu-bundle (GPU_BUNDLE).
#
#   1. the CUDA kernels' own tests: deformable im2col against the torchvision fixtures, fused
#      window attention against the reference's tensor-op sequence and its CPU twin;
#   2. model parity on every fixture in f32, f16 and bf16, with the CUDA kernels and with the
#      generic paths (NOBG_CUDA_DEFORM, _ATTENTION, _EPILOGUE and _CONV = kernel|generic);
#   3. forward_time and the PyTorch reference (BiRefNet's own code, random weights,
#      torch.inference_mode, f16 via .half()) on the same cases, in the same run;
#   4. the whole pipeline, `nobg bench` (decode, resize, forward, mask, composite, PNG), where
#      the bundle has the CLI: how much of an image's time the CPU side takes at GPU speed.
#
# Every line it prints on stdout is JSON: {"check":…} for 1, the parity lines with "kernels"
# for 2, the raw "run" lines for 3, then one line per case
# {"case","dtype","batch","kernels","nobg_ms","pytorch_ms","pytorch_dtype","ratio",
#  "nobg_backbone_ms","nobg_gpu_mib","pytorch_gpu_mib"}, ratio = nobg / PyTorch; then one
# {"pipeline",…} line per step-4 run;
# nobg_backbone_ms is the Swin backbone alone at full resolution, per forward (where the time
# goes). PyTorch cannot run BiRefNet in bf16 (torchvision's deform_conv2d has no bf16 kernel),
# so nobg's bf16 is set against PyTorch's f16. GPU memory is the peak of nvidia-smi's
# memory.used during the run less its value before (both sides include their CUDA context).
# Exits non-zero if a check fails.
#
# CASES (default below, most wanted first) and ITERS (default 10) set the timings, DTYPES and
# FIXTURES the parity runs. BUDGET_S (default 270) bounds the whole run: once it has gone by, the
# remaining parity runs and timing cases are skipped, each with a {"skipped":…} line (a skipped
# parity run fails the check), so that a visit with a fixed time limit still returns what it
# measured. DEVICE=cpu runs the same steps on the CPU (the kernels' CPU tests instead of the
# CUDA ones, no GPU memory): a dry run of this script on a machine without a GPU, with small
# CASES.
set -uo pipefail
cd "$(dirname "$0")/../.."

bundle=${GPU_BUNDLE:-target/gpu-bundle}
iters=${ITERS:-10}
device=${DEVICE:-cuda}
py=${PYTHON:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
status=0
start=$SECONDS
budget=${BUDGET_S:-270}
over_budget() { # WHAT: true (and says so) once the budget has gone by
    if [ $((SECONDS - start)) -ge "$budget" ]; then
        echo "{\"skipped\":\"$1\",\"reason\":\"budget of ${budget}s used\"}"
        return 0
    fi
    return 1
}

xz -dc "$bundle/bin.tar.xz" | tar -C "$work" -xf - || {
    echo "gpu_check: $bundle/bin.tar.xz missing or broken: run tests/gpu/bundle.sh first" >&2
    exit 2
}
for bin in parity forward_time deform_conv_test window_attention_test; do
    [ -x "$work/bin/$bin" ] || { echo "gpu_check: the bundle has no $bin" >&2; exit 2; }
    mv "$work/bin/$bin" "$work/$bin"
done
# Built with Candle's cuDNN convolutions, where the bundle has them.
cudnn=0
if [ -x "$work/bin/parity_cudnn" ] && [ -x "$work/bin/forward_time_cudnn" ]; then
    mv "$work/bin/parity_cudnn" "$work/bin/forward_time_cudnn" "$work/"
    cudnn=1
fi

# cuBLAS, cuRAND and NVRTC for Candle (loaded at run time): PyTorch's wheels carry them.
libs=$("$py" - <<'EOF'
import glob, os, site
dirs = set()
for s in site.getsitepackages() + [site.getusersitepackages()]:
    dirs.update(glob.glob(os.path.join(s, "nvidia", "*", "lib")))
    dirs.update(glob.glob(os.path.join(s, "torch", "lib")))
print(":".join(sorted(dirs)))
EOF
)
export LD_LIBRARY_PATH="$libs:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"

# The reference's imports, from the bundle where this PyTorch lacks them: installed into a
# folder on PYTHONPATH (a venv made from PyTorch's own venv would not see its packages).
missing=()
for module in timm einops kornia; do
    "$py" -c "import $module" 2>/dev/null || missing+=("$module")
done
if [ ${#missing[@]} -gt 0 ]; then
    "$py" -m pip install -q --no-index --no-deps --no-compile --target "$work/site" \
        --find-links "$bundle/wheels" "${missing[@]}" >&2 ||
        { echo "gpu_check: cannot install ${missing[*]} from $bundle/wheels" >&2; exit 2; }
    export PYTHONPATH="$work/site${PYTHONPATH:+:$PYTHONPATH}"
fi
mkdir -p "$work/BiRefNet.git"
tar -xzf "$bundle/BiRefNet.tar.gz" -C "$work/BiRefNet.git"
git -C "$work/BiRefNet.git" init -q && git -C "$work/BiRefNet.git" add -A &&
    git -C "$work/BiRefNet.git" -c user.name=x -c user.email=x@x commit -qm ref

# 1. The kernels' own tests.
for suite in deform_conv window_attention; do
    if [ "$device" = cuda ]; then
        out=$("$work/${suite}_test" cuda:: --test-threads 1 2>&1)
    else
        out=$("$work/${suite}_test" --skip cuda:: 2>&1)
    fi
    echo "$out" >&2
    passed=$(echo "$out" | sed -n 's/^test result: .* \([0-9]*\) passed; \([0-9]*\) failed.*/\1/p')
    failed=$(echo "$out" | sed -n 's/^test result: .* \([0-9]*\) passed; \([0-9]*\) failed.*/\2/p')
    echo "{\"check\":\"${suite}_${device}_tests\",\"passed\":${passed:-0},\"failed\":${failed:-1}}"
    [ "${failed:-1}" = 0 ] && [ "${passed:-0}" -gt 0 ] || status=1
done

# KERNELS: which CUDA kernels replace the generic tensor-op paths; a "+cudnn" suffix runs the
# binaries built with Candle's cuDNN convolutions.
kernel_env() {
    case ${1%+cudnn} in
    kernel) echo NOBG_CUDA_DEFORM=kernel NOBG_CUDA_ATTENTION=kernel NOBG_CUDA_EPILOGUE=kernel NOBG_CUDA_CONV=kernel ;;
    deform) echo NOBG_CUDA_DEFORM=kernel NOBG_CUDA_ATTENTION=generic NOBG_CUDA_EPILOGUE=generic NOBG_CUDA_CONV=generic ;;
    attention) echo NOBG_CUDA_DEFORM=generic NOBG_CUDA_ATTENTION=kernel NOBG_CUDA_EPILOGUE=generic NOBG_CUDA_CONV=generic ;;
    epilogue) echo NOBG_CUDA_DEFORM=generic NOBG_CUDA_ATTENTION=generic NOBG_CUDA_EPILOGUE=kernel NOBG_CUDA_CONV=generic ;;
    conv) echo NOBG_CUDA_DEFORM=generic NOBG_CUDA_ATTENTION=generic NOBG_CUDA_EPILOGUE=generic NOBG_CUDA_CONV=kernel ;;
    *) echo NOBG_CUDA_DEFORM=generic NOBG_CUDA_ATTENTION=generic NOBG_CUDA_EPILOGUE=generic NOBG_CUDA_CONV=generic ;;
    esac
}

# 2. Parity.
tag() { "$py" -c 'import json, sys
for line in sys.stdin:
    if line.startswith("{"):
        print(json.dumps({**json.loads(line), "kernels": sys.argv[1], "dtype": sys.argv[2]}), flush=True)' "$@"; }
binary() { # NAME KERNELS: the binary NAME for those kernels
    case $2 in *+cudnn) echo "$work/${1}_cudnn" ;; *) echo "$work/$1" ;; esac
}
# The kernels in every dtype; the generic paths (which passed on a GPU before the kernels) and
# cuDNN (measured, not adopted) in f16 only, to keep the visit short.
parity_runs=""
for dtype in ${DTYPES:-f32 f16 bf16}; do parity_runs="$parity_runs kernel:$dtype"; done
parity_runs="$parity_runs generic:${GENERIC_DTYPE:-f16}"
[ "$cudnn" = 1 ] && parity_runs="$parity_runs kernel+cudnn:${GENERIC_DTYPE:-f16}"
for run in $parity_runs; do
    kernels=${run%%:*} dtype=${run#*:}
    # A skipped parity run leaves the kernels unproven: the check fails (cuDNN's is optional).
    if over_budget "parity:$run"; then
        case $kernels in *+cudnn) ;; *) status=1 ;; esac
        continue
    fi
    env $(kernel_env "$kernels") "$(binary parity "$kernels")" --device "$device" --dtype "$dtype" \
        ${FIXTURES:-tests/fixtures/birefnet/*/} 2>"$work/parity.err" | tag "$kernels" "$dtype" ||
        {
            # cuDNN is measured, not required: its f16 accumulates in f16.
            case $kernels in *+cudnn) ;; *) status=1 ;; esac
            tail -5 "$work/parity.err" >&2
        }
done

# 3. Timings. A case is BACKBONE:SIZE:DTYPE:BATCH:KERNELS, KERNELS one of kernel (all the CUDA
# kernels), deform, attention, epilogue, conv (that one only) or generic (none), each with an optional
# "+cudnn" (skipped where the bundle has no cuDNN build).
# The issue's targets first (Swin-L f16 and bf16, Swin-T f16, batch 8, f32), then what
# explains them (the generic paths, each kernel alone, cuDNN).
cases=${CASES:-"swin_v1_l:1024:f16:1:kernel swin_v1_l:1024:bf16:1:kernel swin_v1_t:1024:f16:1:kernel swin_v1_l:1024:f16:8:kernel swin_v1_l:1024:f32:1:kernel swin_v1_l:1024:f16:1:generic swin_v1_l:1024:f16:1:kernel+cudnn swin_v1_l:1024:f16:1:deform swin_v1_l:1024:f16:1:attention swin_v1_l:1024:f16:1:epilogue swin_v1_l:1024:f16:1:conv swin_v1_l:1024:f32:1:kernel+cudnn"}
gpu_peak() { # COMMAND... : runs it, prints its stdout, leaves the memory peak in $work/peak
    if ! command -v nvidia-smi >/dev/null || [ "$device" != cuda ]; then
        echo null > "$work/peak"
        "$@"
        return
    fi
    local base
    base=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -i 0 | head -1)
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -i 0 -lms 50 \
        > "$work/mem" 2>/dev/null &
    local sampler=$!
    "$@"
    local rc=$?
    kill "$sampler" 2>/dev/null
    wait "$sampler" 2>/dev/null
    sort -n "$work/mem" | tail -1 | awk -v b="$base" '{print $1 - b}' > "$work/peak"
    return $rc
}
runs="$work/runs.jsonl"
: > "$runs"
declare -A torch_runs
for spec in $cases; do
    IFS=: read -r backbone size dtype batch kernels <<<"$spec"
    case $kernels in *+cudnn) [ "$cudnn" = 1 ] || continue ;; esac
    over_budget "timing:$spec" && continue
    # shellcheck disable=SC2046 # kernel_env prints NAME=value words
    line=$(export $(kernel_env "$kernels") &&
        gpu_peak "$(binary forward_time "$kernels")" --device "$device" --dtype "$dtype" \
            --batch "$batch" --iters "$iters" "$backbone:$size" 2>"$work/nobg.err" |
        grep '^{') || { status=1; tail -5 "$work/nobg.err" >&2; }
    [ -n "$line" ] &&
        echo "{\"spec\":\"$spec\",\"side\":\"nobg\",\"gpu_mib\":$(cat "$work/peak"),\"run\":$line}" |
        tee -a "$runs"
    ptdtype=$dtype
    [ "$dtype" = bf16 ] && ptdtype=f16
    # PyTorch once per (backbone, size, dtype, batch): cases that differ only in nobg's
    # kernels share that run's figures.
    key="$backbone:$size:$ptdtype:$batch"
    if [ -z "${torch_runs[$key]:-}" ]; then
        line=$(gpu_peak "$py" crates/birefnet/benches/pytorch_forward.py \
            --repo "$work/BiRefNet.git/.git" --device "$device" --dtype "$ptdtype" \
            --batch "$batch" --iters "$iters" "$backbone:$size" 2>"$work/torch.err" |
            grep '^{') || { status=1; tail -5 "$work/torch.err" >&2; }
        [ -n "$line" ] && torch_runs[$key]="\"gpu_mib\":$(cat "$work/peak"),\"run\":$line"
    fi
    [ -n "${torch_runs[$key]:-}" ] &&
        echo "{\"spec\":\"$spec\",\"side\":\"pytorch\",${torch_runs[$key]}}" | tee -a "$runs"
done

"$py" - "$runs" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
for spec in dict.fromkeys(r["spec"] for r in rows):
    backbone, size, dtype, batch, kernels = spec.split(":")
    side = {r["side"]: r for r in rows if r["spec"] == spec}
    n, p = side.get("nobg"), side.get("pytorch")
    nobg_ms = n["run"]["median_ms"] / int(batch) if n else None
    torch_ms = p["run"]["median_ms"] / int(batch) if p else None
    print(json.dumps({
        "case": f"{backbone}:{size}", "dtype": dtype, "batch": int(batch), "kernels": kernels,
        "nobg_ms": nobg_ms, "pytorch_ms": torch_ms,
        "pytorch_dtype": "f16" if dtype == "bf16" else dtype,
        "ratio": round(nobg_ms / torch_ms, 3) if nobg_ms and torch_ms else None,
        "nobg_backbone_ms": n and n["run"].get("backbone_full_res_ms"),
        "nobg_gpu_mib": n and n["gpu_mib"], "pytorch_gpu_mib": p and p["gpu_mib"],
        "pytorch_peak_allocated_mib": p and p["run"].get("peak_gpu_mib"),
        "gpu": p and p["run"].get("gpu"), "torch": p and p["run"].get("torch"),
    }))
EOF
# 4. The pipeline: PIPELINE is SIDE:CONCURRENCY words (a square gradient PNG of SIDE pixels,
# CONCURRENCY requests in flight and batches of up to that many), PIPELINE_MODEL the synthetic
# preset (RMBG-2.0's Swin-L), in f16 with every CUDA kernel.
if [ -x "$work/bin/nobg" ]; then
    for spec in ${PIPELINE:-1024:1 1024:16 3456:16}; do
        IFS=: read -r side conc <<<"$spec"
        over_budget "pipeline:$spec" && continue
        # shellcheck disable=SC2046 # kernel_env prints NAME=value words
        out=$(env $(kernel_env kernel) "$work/bin/nobg" bench \
            --synthetic "${PIPELINE_MODEL:-rmbg-2.0}" --device "$device" --dtype f16 \
            --size "$side" --concurrency "$conc" --iterations $((conc * ${PIPELINE_ROUNDS:-3})) \
            2>"$work/bench.err") || { status=1; tail -5 "$work/bench.err" >&2; continue; }
        echo "$out" >&2
        echo "$out" | "$py" -c 'import json, re, sys
text = sys.stdin.read()
def number(key):
    m = re.search(r"^" + key + r"\s+([0-9.]+)", text, re.M)
    return float(m.group(1)) if m else None
passes = re.search(r"([0-9]+) forward passes", text)
print(json.dumps({"pipeline": sys.argv[1], "model": sys.argv[2], "dtype": "f16",
    "images_per_s": number("throughput"), "latency_ms": number("latency"),
    "forward_ms_per_pass": number("forward"), "passes": passes and int(passes.group(1)),
    "prepare_ms": number("prepare"), "finish_ms": number("finish"),
    "peak_rss_mib": number("peak memory")}))' "$spec" "${PIPELINE_MODEL:-rmbg-2.0}" ||
            status=1
    done
fi
exit $status
