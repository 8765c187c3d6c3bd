#!/usr/bin/env bash
# `make demo-real`: nobg's RMBG-1.4 path on real trained IS-Net weights (see prepare.sh) over
# the fixture photos, as a contact sheet to look at: target/isnet-real/contact-sheet.png.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
work="$root/target/isnet-real"
bash "$root/tests/isnet_real/prepare.sh"
cd "$root"
# The binary `cargo test --workspace` builds (same targets, same dependency features as
# `make test`), not a second build.
cargo test --quiet --workspace --tests --no-run
rm -rf "$work/demo"
"${CARGO_TARGET_DIR:-$root/target}/debug/nobg" batch tests/fixtures/images "$work/demo" \
    --weights "$work/ref/model.safetensors" --config rmbg-1.4
"$work/venv/bin/python" tests/isnet_real/contact_sheet.py tests/fixtures/images "$work/demo" \
    "$work/contact-sheet.png"
