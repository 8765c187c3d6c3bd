"""Drives nobg-server replicas with a fixed number of clients for a fixed time and prints one
JSON line: tasks completed, failures, retries of 429, throughput.

Only tasks that complete inside the measured window count (after `--warmup` seconds, for
`--seconds`); clients then finish the task they hold, so one measurement's leftovers never
load the next.

Clients are spread round-robin over the replicas given (as an ordinary load balancer would).
`--mode rest`: each client thread POSTs one sync removal at a time (keep-alive).
`--mode ws`: each client holds one WebSocket and sends one removal at a time, waiting for its
result frame. Every task uses the same uploaded input (`--input`, an imageUUID) and asks for
a URL result, so the bytes moved per task are the same in every setup.
"""

import argparse
import asyncio
import http.client
import json
import threading
import time
import urllib.parse
import uuid

import websockets


def removal(input_uuid):
    return {
        "taskType": "removeBackground",
        "taskUUID": str(uuid.uuid4()),
        "model": "bria:2@1",
        "inputImage": input_uuid,
        "outputType": "URL",
        "outputFormat": "PNG",
    }


class Tally:
    def __init__(self, window_start, window_end):
        self.lock = threading.Lock()
        self.window = (window_start, window_end)
        self.done = 0
        self.failed = 0
        self.busy = 0

    def add(self, done=0, failed=0, busy=0):
        now = time.monotonic()
        if not self.window[0] <= now <= self.window[1]:
            return
        with self.lock:
            self.done += done
            self.failed += failed
            self.busy += busy


def rest_client(base, key, input_uuid, deadline, tally):
    url = urllib.parse.urlparse(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=120)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    while time.monotonic() < deadline:
        body = json.dumps([removal(input_uuid)])
        try:
            conn.request("POST", "/v1", body, headers)
            resp = conn.getresponse()
            answer = json.loads(resp.read())
        except (OSError, http.client.HTTPException, ValueError):
            tally.add(failed=1)
            conn.close()
            conn = http.client.HTTPConnection(url.hostname, url.port, timeout=120)
            continue
        if resp.status == 429:
            tally.add(busy=1)
            time.sleep(0.01)
        elif resp.status == 200 and answer.get("data", [{}])[0].get("imageURL"):
            tally.add(done=1)
        else:
            tally.add(failed=1)
    conn.close()


async def ws_client(base, key, input_uuid, deadline, tally):
    url = base.replace("http://", "ws://", 1) + "/v1"
    async with websockets.connect(url, max_size=None) as ws:
        await ws.send(json.dumps([{"taskType": "authentication", "apiKey": key}]))
        json.loads(await ws.recv())
        while time.monotonic() < deadline:
            task = removal(input_uuid)
            await ws.send(json.dumps([task]))
            while True:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 120))
                item = (frame.get("data") or frame.get("errors") or [{}])[0]
                if item.get("taskUUID") == task["taskUUID"]:
                    break
            if item.get("imageURL"):
                tally.add(done=1)
            elif item.get("code") == "rateLimitExceeded":
                tally.add(busy=1)
                await asyncio.sleep(0.01)
            else:
                tally.add(failed=1)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--urls", required=True, help="comma-separated replica base URLs")
    p.add_argument("--key", required=True)
    p.add_argument("--input", required=True, help="imageUUID of the uploaded input")
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--mode", choices=["rest", "ws"], default="rest")
    args = p.parse_args()
    urls = args.urls.split(",")
    started = time.monotonic()
    deadline = started + args.warmup + args.seconds
    tally = Tally(started + args.warmup, deadline)
    bases = [urls[i % len(urls)] for i in range(args.clients)]
    if args.mode == "rest":
        threads = [
            threading.Thread(target=rest_client, args=(b, args.key, args.input, deadline, tally))
            for b in bases
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    else:

        async def all_clients():
            await asyncio.gather(
                *(ws_client(b, args.key, args.input, deadline, tally) for b in bases)
            )

        asyncio.run(all_clients())
    tail = time.monotonic() - deadline
    print(
        json.dumps(
            {
                "mode": args.mode,
                "replicas": len(urls),
                "clients": args.clients,
                "done": tally.done,
                "failed": tally.failed,
                "busy_retries": tally.busy,
                "window_s": args.seconds,
                "tail_s": round(tail, 2),
                "tasks_per_s": round(tally.done / args.seconds, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
