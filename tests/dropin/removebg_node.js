// npm `remove.bg` 1.3.0 (the most used remove.bg client) against nobg. It posts to a constant
// https://api.remove.bg URL through `unirest`; the shared unirest module is pointed at nobg's
// base URL, everything else is the client's own code.
const assert = require("assert");
const fs = require("fs");
const path = require("path");
const unirest = require("unirest");

const { DROPIN_BASE: base, DROPIN_KEY: key, DROPIN_IMAGE: image, DROPIN_IMAGE_URL: imageUrl,
        DROPIN_WORK: work } = process.env;
const post = unirest.post;
unirest.post = (url, ...rest) => post(url.replace("https://api.remove.bg", base), ...rest);
const removebg = require("remove.bg");

(async () => {
  const b64 = fs.readFileSync(image).toString("base64");
  let r = await removebg.removeBackgroundFromImageBase64({
    base64img: b64, apiKey: key, size: "regular", type: "person", crop: true, crop_margin: "10px",
    outputFile: path.join(work, "node-b64.png"),
  });
  assert.ok(r.base64img.length > 100);
  assert.strictEqual(r.creditsCharged, "0");
  assert.strictEqual(r.detectedType, "other");
  assert.ok(Number(r.resultWidth) > 0 && Number(r.resultHeight) > 0);
  console.log("base64 + crop: ok", r.resultWidth, r.resultHeight);

  r = await removebg.removeBackgroundFromImageUrl({
    url: imageUrl, apiKey: key, size: "full", bg_color: "81d4fa", scale: "50%",
  });
  const out = Buffer.from(r.base64img, "base64");
  assert.deepStrictEqual([...out.subarray(0, 3)], [0xff, 0xd8, 0xff], "opaque -> JPEG");
  assert.strictEqual(r.resultWidth, "451");
  console.log("url + bg_color + scale: ok");

  r = await removebg.removeBackgroundFromImageFile({
    path: image, apiKey: key, size: "preview", channels: "alpha", roi: "0% 0% 50% 100%",
    crop: false, scale: "original", position: "original", crop_margin: "0",
    bg_color: "", bg_image_url: "", add_shadow: false,
  });
  assert.strictEqual(r.resultWidth, "451");
  console.log("file upload + channels=alpha + roi: ok");

  try {
    await removebg.removeBackgroundFromImageBase64({ base64img: b64, apiKey: key, size: "giant" });
    assert.fail("an invalid size was accepted");
  } catch (errors) {
    assert.ok(Array.isArray(errors), JSON.stringify(errors));
    assert.strictEqual(errors[0].code, "invalid_size");
  }
  console.log("invalid size -> errors[0].code: ok");
})().catch((e) => { console.error(e); process.exit(1); });
