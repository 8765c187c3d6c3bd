"""rembg's server API as its README calls it, with `requests`, against nobg."""
import os

import requests

base, image, image_url = (os.environ[k] for k in ("DROPIN_BASE", "DROPIN_IMAGE", "DROPIN_IMAGE_URL"))

# rembg's README: files={"file": ...}, options as form data.
with open(image, "rb") as f:
    r = requests.post(f"{base}/api/remove", files={"file": f},
                      data={"model": "tiny", "a": "true", "af": "240", "ab": "10", "ae": "10", "om": "false"})
assert r.status_code == 200, r.text
assert r.headers["content-type"] == "image/png"
assert r.content[:8] == b"\x89PNG\r\n\x1a\n"
print("POST /api/remove: ok")

r = requests.get(f"{base}/api/remove", params={"url": image_url, "om": "true", "model": "tiny"})
assert r.status_code == 200, r.text
assert r.content[:8] == b"\x89PNG\r\n\x1a\n"
print("GET /api/remove?url=: ok")

r = requests.get(f"{base}/api/remove", params={"url": "http://169.254.169.254/latest/meta-data"})
assert r.status_code == 400 and r.json() == {"detail": "Requests to private/internal addresses are not allowed."}, r.text
r = requests.post(f"{base}/api/remove", data={"om": "true"}, files={"x": b""})
assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "file"], r.text
r = requests.post(f"{base}/api/remove", files={"file": open(image, "rb")}, data={"model": "u2net"})
assert r.status_code == 400 and "u2net" in r.json()["detail"], r.text
print("errors: ok")

spec = requests.get(f"{base}/openapi.json").json()
assert set(spec["paths"]["/api/remove"]) == {"get", "post"}
assert "/openapi.json" in requests.get(f"{base}/api").text
print("/openapi.json and /api: ok")
