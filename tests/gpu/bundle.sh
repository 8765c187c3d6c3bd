#!/usr/bin/env bash
# Builds, on a machine with Rust but no GPU, everything tests/gpu/gpu_check.sh runs on a GPU
# machine that has PyTorch and a CUDA driver but no Rust and no network:
#
#   target/gpu-bundle/bin.tar.xz   stripped release binaries, --features cuda: parity,
#       forward_time, the kernels' test binaries {deform_conv,window_attention}_test, and
#       parity_cudnn, forward_time_cudnn (--features cudnn), the nobg CLI; one solid archive, since every
#       binary embeds the same PTX of Candle's kernels
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
    "nvidia-cuda-runtime==13.0.*" "nvidia-cuda-cccl==13.0.*" "nvidia-cuda-crt==13.0.*" \
    "nvidia-cublas==13.0.*" "nvidia-cuda-nvrtc==13.0.*" "nvidia-curand==10.4.*"
cuda=$(cd "$venv"/lib/python3*/site-packages/nvidia/cu13 && pwd)
export PATH="$cuda/bin:$PATH" CUDA_PATH="$cuda" CUDA_ROOT="$cuda"
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/cuda}

# Linking (cudarc's dynamic-linking, as Candle builds it): the wheels' libraries carry only
# their sonames (libcublas.so.13, ...), the linker wants the plain names, and there is no
# driver here, so libcuda.so is a stub (tests/gpu/libcuda_stub.py) with the driver's soname.
# On the GPU machine the binaries load the driver's libcuda.so.1 and PyTorch's CUDA 13 wheels.
for lib in cublas.so.13 cublasLt.so.13 nvrtc.so.13 curand.so.10 cudart.so.13; do
    ln -sf "lib$lib" "$cuda/lib/lib${lib%.so.*}.so"
done
cudarc=$(cargo metadata --format-version 1 --features birefnet/cuda |
    python3 -c 'import json, os, sys
print(next(os.path.dirname(p["manifest_path"]) for p in json.load(sys.stdin)["packages"] if p["name"] == "cudarc"))')
mkdir -p "$cuda/lib/stubs"
python3 tests/gpu/libcuda_stub.py "$cudarc/src/driver/sys/mod.rs" > "$cuda/lib/stubs/libcuda.c"
cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$cuda/lib/stubs/libcuda.so" "$cuda/lib/stubs/libcuda.c"
# Under its soname too, for a dry run here (DEVICE=cpu gpu_check.sh with the stubs folder on
# LD_LIBRARY_PATH): the binaries start, and any CUDA call fails with CUDA_ERROR_UNKNOWN.
ln -sf libcuda.so "$cuda/lib/stubs/libcuda.so.1"
export LD_LIBRARY_PATH="$cuda/lib:${LD_LIBRARY_PATH:-}"

cargo build --release -p birefnet --features cuda --example parity --example forward_time
# The CUDA kernels' own tests, as prebuilt test binaries.
tests=(deform_conv window_attention)
test_args=()
for t in "${tests[@]}"; do test_args+=(--test "$t"); done
cargo test --release -p birefnet --features cuda "${test_args[@]}" --no-run \
    --message-format=json 2>/dev/null |
    python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        print(m["target"]["name"], m["executable"])' > "$CARGO_TARGET_DIR/gpu-tests.txt"
for t in "${tests[@]}"; do
    grep -q "^$t " "$CARGO_TARGET_DIR/gpu-tests.txt" || { echo "bundle: no $t test binary" >&2; exit 1; }
done

rm -rf "$out"
mkdir -p "$out/bin" "$out/wheels"
for example in parity forward_time; do
    strip -o "$out/bin/$example" "$CARGO_TARGET_DIR/release/examples/$example"
done
while read -r name exe; do
    strip -o "$out/bin/${name}_test" "$exe"
done < "$CARGO_TARGET_DIR/gpu-tests.txt"
# The CLI, for the whole pipeline on the GPU (`nobg bench`: decode, resize, forward, mask,
# composite, encode).
cargo build --release -p nobg-cli --features cuda
strip -o "$out/bin/nobg" "$CARGO_TARGET_DIR/release/nobg"

# Candle's cuDNN convolutions, for the with/without comparison: parity and forward_time again
# with --features cudnn (CUDNN=0 skips them). cuDNN 9 from its PyPI wheel for the link; on the
# GPU machine PyTorch's.
if [ "${CUDNN:-1}" = 1 ]; then
    "$venv/bin/pip" install -q "nvidia-cudnn-cu13==9.*"
    cudnn_lib=$(cd "$venv"/lib/python3*/site-packages/nvidia/cudnn/lib && pwd)
    ln -sf "$cudnn_lib/libcudnn.so.9" "$cuda/lib/libcudnn.so"
    LD_LIBRARY_PATH="$cudnn_lib:$LD_LIBRARY_PATH" cargo build --release -p birefnet \
        --features cudnn --example parity --example forward_time
    for example in parity forward_time; do
        strip -o "$out/bin/${example}_cudnn" "$CARGO_TARGET_DIR/release/examples/$example"
    done
fi

# A dictionary larger than one binary, so that the second copy of the PTX costs nothing.
tar -C "$out" -cf - bin | xz -T1 --lzma2=preset=9,dict=256MiB > "$out/bin.tar.xz"
rm -rf "$out/bin"

git --git-dir "$repo" archive HEAD | gzip -9 > "$out/BiRefNet.tar.gz"

# BiRefNet imports timm, einops, kornia and huggingface_hub. The GPU machines' image (PyTorch
# 2.11 + cu130) has all but kornia; the pure-Python ones travel in case that changes, compiled
# ones (PyYAML, safetensors) for every CPython would not fit the 64 MiB one visit carries.
# kornia 0.6.12 is the last without a compiled kornia_rs dependency.
pip download -q --no-deps -d "$out/wheels" "kornia==0.6.12" einops timm
du -sh "$out" "$out"/*
