"""PyPI `removebg` 0.04 (a remove.bg client) against nobg: its endpoint constant pointed at
nobg's base URL, everything else its own code. Exits non-zero on the first failed check."""
import os
import struct
import sys

import requests
import removebg.removebg as client

base, key, image, image_url, work = (os.environ[k] for k in
                                     ("DROPIN_BASE", "DROPIN_KEY", "DROPIN_IMAGE", "DROPIN_IMAGE_URL", "DROPIN_WORK"))
client.API_ENDPOINT = f"{base}/v1.0/removebg"


def size_of(path):
    data = open(path, "rb").read()
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return struct.unpack(">II", data[16:24])
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    raise AssertionError(f"{path} is neither PNG nor JPEG: {data[:8]!r}")


rb = client.RemoveBg(key, os.path.join(work, "removebg-errors.log"))

# A file upload (multipart), size "regular" (remove.bg's alias of preview).
local = os.path.join(work, "cat.png")
with open(image, "rb") as src, open(local, "wb") as dst:
    dst.write(src.read())
rb.remove_background_from_img_file(local)
out = local + "_no_bg.png"
got = size_of(out)
assert got in ((451, 300), "jpeg"), got
print("file upload: ok", got)

# By URL, onto a colour: opaque, so format auto answers JPEG.
rb.remove_background_from_img_url(image_url, new_file_name=os.path.join(work, "url.jpg"), bg_color="green")
assert size_of(os.path.join(work, "url.jpg")) == "jpeg"
print("image_url + bg_color: ok")

# Base64 (form-urlencoded).
import base64
b64 = base64.b64encode(open(image, "rb").read()).decode()
rb.remove_background_from_base64_img(b64, size="hd", new_file_name=os.path.join(work, "b64.png"))
assert size_of(os.path.join(work, "b64.png")) in ((451, 300), "jpeg")
print("image_file_b64: ok")

# A wrong key: the client raises requests' HTTPError on remove.bg's 403.
bad = client.RemoveBg("wrong-key", os.path.join(work, "removebg-errors.log"))
try:
    bad.remove_background_from_base64_img(b64, new_file_name=os.path.join(work, "never.png"))
    raise AssertionError("a wrong key was accepted")
except requests.HTTPError as e:
    assert e.response.status_code == 403, e.response.status_code
    assert e.response.json()["errors"][0]["title"] == "Authentication failed"
print("wrong key -> 403: ok")
