"""PyPI `runware-sdk` (WebSocket and REST, sync and async) against nobg-server, and an invalid
key refused on both transports. Exits non-zero on any failure."""
import asyncio
import base64
import os
import sys
import urllib.request

from runware import Runware

WS = os.environ["RW_WS_URL"]
HTTP = os.environ["RW_HTTP_URL"]
KEY = os.environ["RW_KEY"]
IMAGE = os.environ["RW_IMAGE"]
LIMIT = 120


def client(transport: str, key: str) -> Runware:
    return Runware(api_key=key, transport=transport, ws_base_url=WS, http_base_url=HTTP, auth_timeout=15_000)


async def removal() -> None:
    durl = "data:image/png;base64," + base64.b64encode(open(IMAGE, "rb").read()).decode()
    for transport in ("websocket", "rest"):
        async with client(transport, KEY) as c:
            for dm in ("sync", "async"):
                res = await asyncio.wait_for(
                    c.run({"taskType": "removeBackground", "model": "bria:2@1", "inputs": {"image": durl},
                           "outputType": "URL", "outputFormat": "PNG", "deliveryMethod": dm, "includeCost": True}),
                    LIMIT,
                )
                items = res if isinstance(res, list) else [res]
                assert len(items) == 1, (transport, dm, res)
                item = items[0]
                get = item.get if isinstance(item, dict) else (lambda k: getattr(item, k, None))
                assert get("taskType") == "removeBackground", item
                assert get("imageUUID"), item
                with urllib.request.urlopen(get("imageURL"), timeout=30) as r:
                    assert r.read()[:8] == b"\x89PNG\r\n\x1a\n"
                print(f"new python: {transport} {dm} ok")


async def invalid_key() -> None:
    durl = "data:image/png;base64," + base64.b64encode(open(IMAGE, "rb").read()).decode()
    for transport in ("websocket", "rest"):
        try:
            async with client(transport, "not-the-key") as c:
                await asyncio.wait_for(
                    c.run({"taskType": "removeBackground", "model": "runware:109@1", "inputs": {"image": durl},
                           "deliveryMethod": "sync"}),
                    60,
                )
        except asyncio.TimeoutError:
            raise AssertionError(f"{transport}: invalid key not refused in time")
        except Exception as e:
            text = f"{e!r} {getattr(e, 'code', '')}"
            assert "auth" in text.lower() or "Invalid API key" in text, text
        else:
            raise AssertionError(f"{transport}: invalid key accepted")
        print(f"new python: {transport} invalid key refused")


async def main() -> None:
    await removal()
    await invalid_key()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except AssertionError as e:
        print(f"new python FAILED: {e}", file=sys.stderr)
        sys.exit(1)
