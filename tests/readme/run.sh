#!/usr/bin/env bash
# Runs every `sh` and `python` block of README.md, in order, in one scratch folder holding
# `photo.jpg` (a real photo), against nobg-server on a free loopback port with the tiny synthetic
# model (downloads are replaced by it: `nobg` is wrapped so that `--model NAME` becomes
# `--synthetic tiny`). Then checks the files the blocks say they write. Python blocks run in the
# runware-sdk venv that tests/sdk/run.sh installs.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
target=${CARGO_TARGET_DIR:-$root/target}
python=${PYTHON:-python3}
log() { printf '[readme] %s\n' "$*" >&2; }

cargo build --quiet -p nobg-server -p nobg-cli
work=$(mktemp -d)
trap 'kill "${server_pid:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT
cp tests/fixtures/images/rocket.jpg "$work/photo.jpg"

mkdir -p "$work/bin"
cat > "$work/bin/nobg" <<WRAP
#!/usr/bin/env bash
args=(); synthetic=""; skip=""
sub="\${1:-}"
for a in "\$@"; do
  if [ -n "\$skip" ]; then skip=""; continue; fi
  case "\$a" in
    --model|-m) skip=1 ;;
    --synthetic|--weights) synthetic=1; args+=("\$a") ;;
    *) args+=("\$a") ;;
  esac
done
case "\$sub" in remove|batch|bench|i|p) [ -n "\$synthetic" ] || args+=(--synthetic tiny) ;; esac
exec "$target/debug/nobg" "\${args[@]}"
WRAP
chmod +x "$work/bin/nobg"
ln -s "$target/debug/nobg-server" "$work/bin/nobg-server"

port=$("$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$target/debug/nobg-server" --listen "127.0.0.1:$port" --synthetic tiny \
    --air bria:2@1=tiny --air runware:110@1=tiny --storage-dir "$work/storage" \
    >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 240); do
    curl -fsS "http://127.0.0.1:$port/ready" >/dev/null 2>&1 && break
    sleep 0.5
done

# The blocks, with the README's address pointed at this server.
"$python" - "$root/README.md" "$work/blocks" "$port" <<'PY'
import os, re, sys
readme, out, port = sys.argv[1], sys.argv[2], sys.argv[3]
os.makedirs(out)
blocks = re.findall(r"^```(sh|python)\n(.*?)^```", open(readme).read(), re.M | re.S)
for i, (lang, body) in enumerate(blocks):
    body = body.replace("localhost:8080", f"127.0.0.1:{port}")
    open(os.path.join(out, f"{i:02d}.{lang}"), "w").write(body)
print(f"{len(blocks)} blocks", file=sys.stderr)
PY

export PATH="$work/bin:$PATH" RUNWARE_API_KEY=readme-key BRIA_API_KEY=readme-key REMOVEBG_API_KEY=readme-key
sdk_python=$target/sdk-env/py-new/bin/python
failed=0
for block in "$work"/blocks/*; do
    log "running $(basename "$block"): $(head -n1 "$block")"
    case "$block" in
        *.sh) (cd "$work" && timeout 300 bash -euo pipefail "$block") || { log "FAILED: $block"; failed=1; } ;;
        *.python) (cd "$work" && timeout 300 "$sdk_python" "$block") || { log "FAILED: $block"; failed=1; } ;;
    esac
done

# What the blocks promise to leave behind.
check() { # file, what `file` must say
    if ! file -b "$work/$1" | grep -q "$2"; then log "FAILED: $1 is not $2: $(file -b "$work/$1" 2>&1)"; failed=1; fi
}
check cutout.png "PNG image data"
check predicted.png "PNG image data"
check photo.nobg.png "RGBA"
check cutout.webp "Web/P image"
check mask.png "grayscale"
check on-white.jpg "JPEG image data"
check rembg-mask.png "grayscale"
check removebg.jpg "JPEG image data"
check rembg-cli.png "PNG image data"
check isnet-try.png "RGBA"
check from-stdin.png "PNG image data"
check cutouts/trip/photo.png "PNG image data"
[ -s "$work/tiny.safetensors" ] || { log "FAILED: tiny.safetensors"; failed=1; }
if [ "$failed" -ne 0 ]; then tail -n 30 "$work/server.log" >&2; exit 1; fi
echo "readme: every block ran"
