// npm `@runware/sdk-js` 1.3.2 (WebSocket, sync and async) against nobg-server, a task error,
// and an invalid key refused. Exits non-zero on any failure.
import { Runware } from "@runware/sdk-js";
import fs from "node:fs";
import assert from "node:assert/strict";

const url = process.env.RW_WS_URL;
const key = process.env.RW_KEY;
const dataURI = "data:image/png;base64," + fs.readFileSync(process.env.RW_IMAGE).toString("base64");
const within = (p, ms, what) =>
  Promise.race([p, new Promise((_, rej) => setTimeout(() => rej(new Error(`${what}: timeout`)), ms))]);

async function main() {
  const runware = new Runware({ apiKey: key, url, timeoutDuration: 60000 });
  await within(runware.ensureConnection(), 30000, "connect");

  const r1 = await within(runware.removeBackground({ inputImage: dataURI, model: "runware:109@1",
    outputType: "URL", outputFormat: "PNG", includeCost: true, settings: { rgba: [255, 255, 255, 0] } }), 120000, "sync");
  assert.equal(r1.taskType, "removeBackground");
  assert.ok(r1.imageUUID && r1.inputImageUUID && r1.imageURL, JSON.stringify(r1));
  assert.equal(typeof r1.cost, "number");
  const png = Buffer.from(await (await fetch(r1.imageURL)).arrayBuffer());
  assert.equal(png.subarray(1, 4).toString(), "PNG");
  console.log("legacy js: sync ok");

  const r2 = await within(runware.removeBackground({ inputs: { image: dataURI }, model: "bria:2@1",
    outputType: "dataURI", outputFormat: "PNG", deliveryMethod: "async" }), 120000, "async");
  assert.equal(r2.status, "success", JSON.stringify(r2).slice(0, 200));
  assert.ok(r2.imageDataURI.startsWith("data:image/png;base64,"));
  console.log("legacy js: async ok");

  await assert.rejects(
    within(runware.removeBackground({ inputImage: dataURI, model: "nope:1@1" }), 60000, "task error"),
    (e) => e?.error?.code === "invalidModel" && !!e.error.taskUUID,
  );
  console.log("legacy js: task error ok");
  await runware.disconnect();

  const bad = new Runware({ apiKey: "not-the-key", url, timeoutDuration: 10000 });
  await assert.rejects(within(bad.ensureConnection(), 30000, "invalid key"), (e) => e?.error?.code === "invalidApiKey");
  console.log("legacy js: invalid key refused");
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error("legacy js FAILED:", e?.message ?? JSON.stringify(e));
    process.exit(1);
  },
);
