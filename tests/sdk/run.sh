#!/usr/bin/env bash
# Drives nobg-server with the official Runware SDKs as real clients:
#   PyPI runware 0.5.24 (WebSocket), PyPI runware-sdk (WebSocket + REST, sync + async),
#   npm @runware/sdk-js 1.3.2 (WebSocket, sync + async).
# Installs them under target/sdk-env/ (once), builds and starts the server with the tiny
# synthetic model on a free loopback port, runs each client; exits non-zero on any failure.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
target=${CARGO_TARGET_DIR:-$root/target}
env_dir=$target/sdk-env
mkdir -p "$env_dir"
python=${PYTHON:-python3}

log() { printf '[sdk] %s\n' "$*" >&2; }

install_python() { # dir, requirement
    local dir=$1 req=$2
    if [ ! -f "$dir/.installed-$req" ]; then
        log "installing $req into $dir"
        rm -rf "$dir"
        "$python" -m venv "$dir"
        "$dir/bin/pip" install --quiet --disable-pip-version-check "$req"
        touch "$dir/.installed-$req"
    fi
}
# Both packages import as `runware`: one venv each.
install_python "$env_dir/py-legacy" "runware==0.5.24"
install_python "$env_dir/py-new" "runware-sdk==1.8.0"
if [ ! -f "$env_dir/node/.installed" ]; then
    log "installing @runware/sdk-js@1.3.2"
    mkdir -p "$env_dir/node"
    (cd "$env_dir/node" && echo '{"private":true,"type":"module"}' > package.json \
        && npm install --silent --no-audit --no-fund @runware/sdk-js@1.3.2 >/dev/null)
    touch "$env_dir/node/.installed"
fi

log "building nobg-server"
cargo build --quiet -p nobg-server
server_bin=$target/debug/nobg-server

port=$("$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
key=sdk-test-key
storage=$env_dir/storage
server_log=$env_dir/server.log
"$server_bin" --listen "127.0.0.1:$port" --synthetic tiny --api-key "$key" \
    --air bria:2@1=tiny --storage-dir "$storage" >"$server_log" 2>&1 &
server_pid=$!
trap 'kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true' EXIT

for _ in $(seq 1 240); do
    if curl -fsS "http://127.0.0.1:$port/ready" >/dev/null 2>&1; then break; fi
    if ! kill -0 "$server_pid" 2>/dev/null; then cat "$server_log" >&2; log "server died"; exit 1; fi
    sleep 0.5
done
curl -fsS "http://127.0.0.1:$port/ready" >/dev/null || { cat "$server_log" >&2; log "server not ready"; exit 1; }

export RW_WS_URL="ws://127.0.0.1:$port/v1" RW_HTTP_URL="http://127.0.0.1:$port/v1" RW_KEY=$key
export RW_IMAGE=$root/tests/fixtures/images/chelsea.png
failed=0
run() { # name, command...
    local name=$1; shift
    log "running $name"
    if timeout 600 "$@"; then log "$name passed"; else log "$name FAILED"; failed=$((failed + 1)); fi
}
run "runware 0.5.24 (WebSocket)" "$env_dir/py-legacy/bin/python" tests/sdk/legacy_python.py
run "runware-sdk (WebSocket + REST)" "$env_dir/py-new/bin/python" tests/sdk/new_python.py
# ESM resolves packages next to the script: run it from the node_modules' folder.
cp tests/sdk/legacy_js.mjs "$env_dir/node/legacy_js.mjs"
run "@runware/sdk-js 1.3.2 (WebSocket)" node "$env_dir/node/legacy_js.mjs"

if [ "$failed" -ne 0 ]; then
    log "server log:"; tail -n 50 "$server_log" >&2
    echo "sdk: 3 clients, $failed failed" >&2
    exit 1
fi
echo "sdk: 3 passed, 0 failed"
