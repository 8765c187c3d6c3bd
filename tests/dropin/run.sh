#!/usr/bin/env bash
# Drives nobg-server with real remove.bg and rembg clients:
#   PyPI removebg 0.04 and npm remove.bg 1.3.0 (remove.bg clients; their hard-coded endpoint
#   pointed at nobg's base URL), and rembg's server API called with `requests` as rembg's README
#   shows. Installs them under target/dropin-env/ (once), starts the server with the tiny
#   synthetic model and an API key on a free loopback port, serves the test photo over HTTP for
#   the URL inputs, runs each client; prints `N passed, N failed`, exits non-zero on a failure.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
target=${CARGO_TARGET_DIR:-$root/target}
env_dir=$target/dropin-env
mkdir -p "$env_dir"
python=${PYTHON:-python3}
log() { printf '[dropin] %s\n' "$*" >&2; }

if [ ! -f "$env_dir/py/.installed" ]; then
    log "installing removebg==0.04 (and requests)"
    rm -rf "$env_dir/py"
    "$python" -m venv "$env_dir/py"
    "$env_dir/py/bin/pip" install --quiet --disable-pip-version-check "removebg==0.04" requests
    touch "$env_dir/py/.installed"
fi
if [ ! -f "$env_dir/node/.installed" ]; then
    log "installing remove.bg@1.3.0"
    mkdir -p "$env_dir/node"
    (cd "$env_dir/node" && echo '{"private":true}' > package.json \
        && npm install --silent --no-audit --no-fund remove.bg@1.3.0 >/dev/null)
    touch "$env_dir/node/.installed"
fi

log "building nobg-server"
cargo build --quiet -p nobg-server
free_port() { "$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port)
files_port=$(free_port)
work=$(mktemp -d)
key=dropin-test-key
"$target/debug/nobg-server" --listen "127.0.0.1:$port" --synthetic tiny --api-key "$key" \
    --allow-network 127.0.0.1/32 --storage-dir "$work/storage" >"$work/server.log" 2>&1 &
server_pid=$!
"$python" -m http.server "$files_port" --bind 127.0.0.1 --directory tests/fixtures/images \
    >/dev/null 2>&1 &
files_pid=$!
trap 'kill "$server_pid" "$files_pid" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT

for _ in $(seq 1 240); do
    if curl -fsS "http://127.0.0.1:$port/ready" >/dev/null 2>&1; then break; fi
    if ! kill -0 "$server_pid" 2>/dev/null; then cat "$work/server.log" >&2; log "server died"; exit 1; fi
    sleep 0.5
done
curl -fsS "http://127.0.0.1:$port/ready" >/dev/null || { cat "$work/server.log" >&2; log "server not ready"; exit 1; }

export DROPIN_BASE="http://127.0.0.1:$port" DROPIN_KEY=$key DROPIN_WORK=$work
export DROPIN_IMAGE=$root/tests/fixtures/images/chelsea.png
export DROPIN_IMAGE_URL="http://127.0.0.1:$files_port/chelsea.png"
passed=0
failed=0
run() { # name, command...
    local name=$1; shift
    log "running $name"
    if timeout 300 "$@"; then log "$name passed"; passed=$((passed + 1));
    else log "$name FAILED"; failed=$((failed + 1)); fi
}
run "PyPI removebg 0.04" "$env_dir/py/bin/python" tests/dropin/removebg_python.py
cp tests/dropin/removebg_node.js "$env_dir/node/removebg_node.js"
run "npm remove.bg 1.3.0" node "$env_dir/node/removebg_node.js"
run "rembg API with requests" "$env_dir/py/bin/python" tests/dropin/rembg_requests.py

if [ "$failed" -ne 0 ]; then log "server log:"; tail -n 50 "$work/server.log" >&2; fi
echo "dropin: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
