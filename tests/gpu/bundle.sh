#!/usr/bin/env bash
# Builds, on a machine with Rust but no GPU, everything tests/gpu/gpu_check.sh runs on a GPU
# machine that has PyTorch and a CUDA driver but no Rust and no network:
#
#   target/gpu-bundle/bin/{parity,forward_time,deform_conv_test}.xz   release, --features cuda
#   target/gpu-bundle/BiRefNet.tar.gz   HEAD of BIREFNET_REPO (the PyTorch reference's code)
#   target/gpu-bundle/wheels/           BiRefNet's pure-Python imports, for a PyTorch without them
#
# The CUDA compiler comes from PyPI wheels (nvcc 13.0, in a venv under target/), so the PTX
# targets a driver of CUDA 13.0 or later. CUDA_COMPUTE_CAP (default 90: H100/H200) is the
# PTX's architecture. BIREFNET_REPO: a clone (bare or not) of github.com/ZhengPeng7/BiRefNet.
set -euo pipefail
cd "$(dirname "$0")/../.."

repo=${BIREFNET_REPO:?set BIREFNET_REPO to a clone of github.com/ZhengPeng7/BiRefNet}
out=target/gpu-bundle
venv=target/cuda-venv
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/pip" install -q "nvidia-cuda-nvcc==13.0.*" "nvidia-nvvm==13.0.*" \
    "nvidia-cuda-runtime==13.0.*" "nvidia-cuda-cccl==13.0.*" "nvidia-cuda-crt==13.0.*"
cuda=$(cd "$venv"/lib/python3*/site-packages/nvidia/cu13 && pwd)
export PATH="$cuda/bin:$PATH" CUDA_PATH="$cuda" CUDA_ROOT="$cuda"
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/cuda}

cargo build --release -p birefnet --features cuda --example parity --example forward_time
test_bin=$(cargo test --release -p birefnet --features cuda --test deform_conv --no-run \
    --message-format=json 2>/dev/null |
    python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "deform_conv":
        print(m["executable"])')
[ -n "$test_bin" ] || { echo "bundle: no deform_conv test binary" >&2; exit 1; }

rm -rf "$out"
mkdir -p "$out/bin" "$out/wheels"
for example in parity forward_time; do
    xz -T0 -9 -c "$CARGO_TARGET_DIR/release/examples/$example" > "$out/bin/$example.xz"
done
xz -T0 -9 -c "$test_bin" > "$out/bin/deform_conv_test.xz"
git --git-dir "$repo" archive HEAD | gzip -9 > "$out/BiRefNet.tar.gz"

# BiRefNet imports timm, einops, kornia and huggingface_hub. Versions whose imports need no
# compiled extension beyond PyYAML's, which comes for the usual CPython versions.
pip download -q --no-deps -d "$out/wheels" timm einops "kornia==0.6.12" \
    "huggingface_hub==0.30.*" requests urllib3 idna certifi tqdm filelock fsspec packaging \
    typing_extensions
for py in 3.10 3.11 3.12 3.13; do
    pip download -q --no-deps --only-binary=:all: --python-version "$py" \
        --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 -d "$out/wheels" \
        pyyaml charset_normalizer safetensors
done
du -sh "$out" "$out"/bin/*
