#!/usr/bin/env bash
# The web page at `/` in a real browser: Debian's chromium driven through WebDriver (Python
# selenium with the system chromedriver) against nobg-server with the tiny synthetic model and a
# queue of depth 1, so that several photos at once meet 429s that the page must retry.
# Writes target/ui-screenshot.png. Needs chromium and chromium-driver (.ci/run installs them).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
target=${CARGO_TARGET_DIR:-$root/target}
log() { printf '[ui] %s\n' "$*" >&2; }

for tool in chromium chromedriver; do
    command -v "$tool" >/dev/null || { log "$tool not found (apt-get install chromium chromium-driver)"; exit 1; }
done

env_dir=$root/target/ui-env
if [ ! -x "$env_dir/bin/python" ] || ! "$env_dir/bin/python" -c 'import selenium' 2>/dev/null; then
    log "installing selenium into $env_dir"
    python3 -m venv "$env_dir"
    "$env_dir/bin/pip" install -q 'selenium>=4.20,<5'
fi

cargo build --quiet -p nobg-server
work=$(mktemp -d)
trap 'kill "${server_pid:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT

port=$("$env_dir/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$target/debug/nobg-server" --listen "127.0.0.1:$port" --synthetic tiny --queue-depth 1 \
    --max-batch 1 --storage-dir "$work/storage" >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 240); do
    curl -fsS "http://127.0.0.1:$port/ready" >/dev/null 2>&1 && break
    sleep 0.5
done
curl -fsS "http://127.0.0.1:$port/ready" >/dev/null || { cat "$work/server.log" >&2; exit 1; }

status=0
"$env_dir/bin/python" tests/ui/check.py "http://127.0.0.1:$port" "$root/tests/fixtures/images" \
    "$root/target/ui-screenshot.png" "$work/chrome-profile" || status=$?
[ "$status" -eq 0 ] || tail -n 30 "$work/server.log" >&2
exit "$status"
