#!/usr/bin/env bash
# nobg vs the PyTorch reference on the CPU, same cases, alternating rounds, each run in its own
# process (so peak RSS is per case). One JSON line per run from each side.
#
#   BIREFNET_REPO=/path/to/ZhengPeng7/BiRefNet/git-dir \
#     crates/birefnet/benches/cpu_vs_pytorch.sh [ROUNDS] [CASE...]
#
# CASE is BACKBONE:SIZE (default: swin_v1_t:512 swin_v1_t:1024 swin_v1_l:1024). THREADS (default
# 2) sets both sides' thread count, ITERS (default 3) the timed passes per run. The PyTorch side
# runs in a venv under target/ (CPU torch + torchvision and BiRefNet's imports from PyPI).
# NOBG_FORWARD_TIME points at a prebuilt forward_time binary (default: built here, release).
set -euo pipefail
cd "$(dirname "$0")/../../.."

rounds=${1:-2}
shift || true
cases=("$@")
[ ${#cases[@]} -gt 0 ] || cases=(swin_v1_t:512 swin_v1_t:1024 swin_v1_l:1024)
threads=${THREADS:-2}
iters=${ITERS:-3}
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
    cargo build -q --release -p birefnet --example forward_time
    nobg=$target/release/examples/forward_time
fi

export RAYON_NUM_THREADS=$threads OMP_NUM_THREADS=$threads
for round in $(seq 1 "$rounds"); do
    for case in "${cases[@]}"; do
        echo "{\"round\":$round,\"side\":\"nobg\",\"run\":$("$nobg" --iters "$iters" --no-backbone "$case")}"
        echo "{\"round\":$round,\"side\":\"pytorch\",\"run\":$("$venv/bin/python" \
            crates/birefnet/benches/pytorch_forward.py --repo "$repo" --threads "$threads" \
            --iters "$iters" "$case")}"
    done
done
