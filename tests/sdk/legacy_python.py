"""PyPI `runware` 0.5.24 (WebSocket) against nobg-server: removal with an uploaded local file and
with a data URI, a task error, and an invalid key refused. Exits non-zero on any failure."""
import asyncio
import base64
import os
import sys
import urllib.request

from runware import IBackgroundRemovalSettings, IImageBackgroundRemoval, Runware

URL = os.environ["RW_WS_URL"]
KEY = os.environ["RW_KEY"]
IMAGE = os.environ["RW_IMAGE"]
LIMIT = 120  # seconds for any single SDK call


async def removal() -> None:
    rw = Runware(api_key=KEY, url=URL)
    await asyncio.wait_for(rw.connect(), LIMIT)
    # A local file: the SDK uploads it (imageUpload), then sends its imageUUID.
    res = await asyncio.wait_for(
        rw.imageBackgroundRemoval(
            IImageBackgroundRemoval(
                inputImage=IMAGE, model="runware:109@1", outputType="URL", outputFormat="PNG",
                includeCost=True,
                settings=IBackgroundRemovalSettings(rgba=[255, 255, 255, 0], alphaMatting=True),
            )
        ),
        LIMIT,
    )
    assert len(res) == 1, res
    img = res[0]
    assert img.taskType == "imageBackgroundRemoval", img
    assert img.imageUUID and img.inputImageUUID, img
    assert img.cost is not None, img
    with urllib.request.urlopen(img.imageURL, timeout=30) as r:
        body = r.read()
        assert r.status == 200 and body[:8] == b"\x89PNG\r\n\x1a\n", (r.status, body[:8])

    # A data URI goes through as is; base64 output.
    durl = "data:image/png;base64," + base64.b64encode(open(IMAGE, "rb").read()).decode()
    res = await asyncio.wait_for(
        rw.imageBackgroundRemoval(IImageBackgroundRemoval(inputImage=durl, outputType="base64Data", outputFormat="PNG")),
        LIMIT,
    )
    assert base64.b64decode(res[0].imageBase64Data)[:8] == b"\x89PNG\r\n\x1a\n"

    # A task error reaches the caller as an exception carrying the code.
    try:
        await asyncio.wait_for(
            rw.imageBackgroundRemoval(IImageBackgroundRemoval(inputImage=durl, model="nope:1@1")), LIMIT
        )
    except asyncio.TimeoutError:
        raise AssertionError("task error was not delivered (timeout)")
    except Exception as e:  # RunwareAPIError
        assert "invalidModel" in str(e), repr(e)
    else:
        raise AssertionError("unknown model accepted")
    await rw.disconnect()


async def invalid_key() -> None:
    rw = Runware(api_key="not-the-key", url=URL)
    try:
        await asyncio.wait_for(rw.connect(), 30)
        await asyncio.wait_for(rw.imageBackgroundRemoval(IImageBackgroundRemoval(inputImage=IMAGE)), 60)
    except asyncio.TimeoutError:
        raise AssertionError("invalid key was not refused in time")
    except Exception as e:
        assert "Invalid API key" in str(e) or "invalidApiKey" in str(e), repr(e)
    else:
        raise AssertionError("invalid key accepted")
    finally:
        try:
            await asyncio.wait_for(rw.disconnect(), 10)
        except Exception:
            pass


async def main() -> None:
    await removal()
    print("legacy python: removal ok")
    await invalid_key()
    print("legacy python: invalid key refused")


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except AssertionError as e:
        print(f"legacy python FAILED: {e}", file=sys.stderr)
        sys.exit(1)
    os._exit(0)  # the SDK leaves reconnect tasks behind
