// nobg's web page: a queue of photos sent to this server's Runware REST API (`POST /v1`).
// Plain JavaScript, no build step, nothing loaded from elsewhere (the CSP forbids it).
"use strict";

const MAX_IN_FLIGHT = 3;
const MAX_ATTEMPTS = 8; // per photo, 429 answers included
const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 8000;

const $ = (id) => document.getElementById(id);
const queue = [];
let info = { models: [], air: [], apiKeyRequired: false };

// CSP violations are bugs of this page: count them so that tests (and people) can see them.
window.nobgCspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.nobgCspViolations.push(`${e.violatedDirective} ${e.blockedURI}`);
  console.error("CSP violation", e.violatedDirective, e.blockedURI);
});

async function loadInfo() {
  try {
    const res = await fetch("/info");
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    info = await res.json();
  } catch (err) {
    $("server-info").textContent = `The server does not answer (${err.message}).`;
    return;
  }
  const names = info.models.map((m) => (m.default ? `${m.name} (default)` : m.name));
  $("server-info").textContent = `nobg ${info.version} · models loaded: ${names.join(", ")}`;
  const select = $("model");
  select.replaceChildren();
  for (const air of info.air) {
    select.append(new Option(air, air));
  }
  $("key-row").hidden = !info.apiKeyRequired;
  const saved = sessionStorage.getItem("nobg-api-key");
  if (saved) $("api-key").value = saved;
}

function options() {
  const format = $("format").value;
  const quality = Math.min(99, Math.max(20, parseInt($("quality").value, 10) || 95));
  const settings = {};
  if ($("only-mask").checked) settings.returnOnlyMask = true;
  if ($("post-process").checked) settings.postProcessMask = true;
  if ($("matting").checked) settings.alphaMatting = true;
  let background = null;
  if ($("use-bg").checked) {
    const hex = $("bg-color").value;
    background = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
  }
  return {
    model: $("model").value || undefined,
    format,
    quality,
    settings,
    background,
    trim: $("trim").checked,
  };
}

function addFiles(files) {
  for (const file of files) {
    if (!file.type.startsWith("image/")) continue;
    const item = createItem(file, options());
    queue.push(item);
  }
  pump();
}

function createItem(file, opts) {
  const node = $("item-template").content.firstElementChild.cloneNode(true);
  const item = {
    file,
    opts,
    node,
    state: "queued",
    attempts: 0,
    rateLimited: 0,
    resultUrl: null,
    maskUrl: null,
    showingMask: false,
    beforeUrl: URL.createObjectURL(file),
  };
  node.querySelector(".name").textContent = file.name || "pasted image";
  node.querySelector(".before").src = item.beforeUrl;
  node.querySelector(".after").src = item.beforeUrl;
  const slider = node.querySelector(".slider");
  slider.addEventListener("input", () => setSplit(item, slider.value));
  setSplit(item, 50);
  node.querySelector(".retry").addEventListener("click", () => {
    item.attempts = 0;
    setState(item, "queued", "Queued");
    pump();
  });
  node.querySelector(".remove").addEventListener("click", () => {
    item.state = "removed";
    node.remove();
    for (const url of [item.beforeUrl, item.resultUrl, item.maskUrl]) {
      if (url) URL.revokeObjectURL(url);
    }
  });
  node.querySelector(".view-mask").addEventListener("click", () => toggleMask(item));
  setState(item, "queued", "Queued");
  $("queue").prepend(node);
  return item;
}

function setSplit(item, percent) {
  const clip = item.node.querySelector(".before-clip");
  clip.style.clipPath = `inset(0 ${100 - percent}% 0 0)`;
  item.node.querySelector(".handle").style.left = `${percent}%`;
}

function setState(item, state, text, progress) {
  item.state = state;
  item.node.dataset.state = state;
  item.node.querySelector(".status").textContent = text;
  const bar = item.node.querySelector("progress");
  if (progress === undefined) bar.removeAttribute("value");
  else bar.value = progress;
  item.node.querySelector(".retry").hidden = state !== "failed";
}

function pump() {
  let running = queue.filter((i) => i.state === "running").length;
  for (const item of queue) {
    if (running >= MAX_IN_FLIGHT) break;
    if (item.state !== "queued") continue;
    running += 1;
    run(item).finally(pump);
  }
}

async function run(item) {
  setState(item, "running", "Reading…", 0);
  let image;
  try {
    image = await readBase64(item.file);
  } catch (err) {
    setState(item, "failed", `Cannot read the file: ${err.message}`, 0);
    return;
  }
  const opts = item.opts;
  // Trimming needs the alpha channel: ask for a transparent PNG and finish in the browser.
  const wire = opts.trim && !opts.settings.returnOnlyMask
    ? { ...opts, format: "PNG", background: null }
    : opts;
  while (item.state === "running") {
    item.attempts += 1;
    const answer = await removeBackground(item, image, wire, opts.settings);
    if (answer.ok) {
      let blob = answer.blob;
      if (wire !== opts) blob = await trimAndFinish(blob, opts);
      showResult(item, blob, opts);
      return;
    }
    if (answer.status === 429 && item.attempts < MAX_ATTEMPTS) {
      item.rateLimited += 1;
      item.node.dataset.rateLimited = String(item.rateLimited);
      const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** (item.attempts - 1));
      const wait = delay / 2 + Math.random() * (delay / 2);
      setState(item, "running", `Server busy, retrying in ${(wait / 1000).toFixed(1)} s…`, 0);
      await sleep(wait);
      continue;
    }
    setState(item, "failed", answer.message, 0);
    return;
  }
}

// One `removeBackground` task; the upload's progress drives the bar.
function removeBackground(item, image, opts, settings) {
  const task = {
    taskType: "removeBackground",
    taskUUID: crypto.randomUUID(),
    inputImage: image,
    outputType: "base64Data",
    outputFormat: opts.format,
    outputQuality: opts.quality,
    settings: { ...settings },
  };
  if (opts.model) task.model = opts.model;
  if (opts.background) task.settings.rgba = [...opts.background, 255];
  return post([task], item).then((res) => {
    if (!res.ok) return res;
    const data = res.body.data && res.body.data[0];
    if (!data || !data.imageBase64Data) {
      return { ok: false, status: 500, message: "The server answered without an image." };
    }
    return { ok: true, blob: base64ToBlob(data.imageBase64Data, mime(opts.format)) };
  });
}

function post(tasks, item) {
  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/v1");
    xhr.setRequestHeader("Content-Type", "application/json");
    const key = $("api-key").value.trim();
    if (key) {
      xhr.setRequestHeader("Authorization", `Bearer ${key}`);
      sessionStorage.setItem("nobg-api-key", key);
    }
    xhr.responseType = "json";
    xhr.upload.onprogress = (e) => {
      if (item && e.lengthComputable) {
        setState(item, "running", "Uploading…", Math.round((60 * e.loaded) / e.total));
      }
    };
    xhr.upload.onload = () => {
      if (item) setState(item, "running", "Removing the background…", 60);
    };
    xhr.onload = () => {
      const body = xhr.response || {};
      if (xhr.status === 200 && !(body.errors && body.errors.length)) {
        resolve({ ok: true, status: 200, body });
        return;
      }
      const error = body.errors && body.errors[0];
      const status = xhr.status === 200 && error && error.status ? error.status : xhr.status;
      const message = error ? error.message : `HTTP ${xhr.status}`;
      resolve({ ok: false, status, message });
    };
    xhr.onerror = () => resolve({ ok: false, status: 0, message: "The server cannot be reached." });
    xhr.send(JSON.stringify(tasks));
  });
}

function showResult(item, blob, opts) {
  item.resultUrl = URL.createObjectURL(blob);
  item.resultBlob = blob;
  const node = item.node;
  node.querySelector(".after").src = item.resultUrl;
  const link = node.querySelector(".download");
  link.href = item.resultUrl;
  link.download = outputName(item.file.name, opts.format);
  link.hidden = false;
  node.querySelector(".view-mask").disabled = false;
  const kb = (blob.size / 1024).toFixed(0);
  const retried = item.rateLimited ? ` · ${item.rateLimited}× busy, retried` : "";
  setState(item, "done", `Done · ${opts.format} · ${kb} KB${retried}`, 100);
}

async function toggleMask(item) {
  const button = item.node.querySelector(".view-mask");
  if (!item.maskUrl) {
    button.disabled = true;
    const image = await readBase64(item.file);
    const opts = { ...item.opts, format: "PNG", background: null };
    const settings = { ...item.opts.settings, returnOnlyMask: true };
    const answer = await removeBackground(null, image, opts, settings);
    button.disabled = false;
    if (!answer.ok) {
      item.node.querySelector(".status").textContent = `Mask: ${answer.message}`;
      return;
    }
    item.maskUrl = URL.createObjectURL(answer.blob);
  }
  item.showingMask = !item.showingMask;
  item.node.querySelector(".after").src = item.showingMask ? item.maskUrl : item.resultUrl;
  button.textContent = item.showingMask ? "Cutout" : "Mask";
  item.node.classList.toggle("mask-view", item.showingMask);
}

// Crops a transparent PNG to its non-transparent pixels, then applies the background colour and
// output format that were asked for.
async function trimAndFinish(blob, opts) {
  const bitmap = await createImageBitmap(blob);
  const canvas = document.createElement("canvas");
  canvas.width = bitmap.width;
  canvas.height = bitmap.height;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(bitmap, 0, 0);
  const { data, width, height } = ctx.getImageData(0, 0, canvas.width, canvas.height);
  let x0 = width, y0 = height, x1 = -1, y1 = -1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (data[4 * (y * width + x) + 3] > 0) {
        if (x < x0) x0 = x;
        if (x > x1) x1 = x;
        if (y < y0) y0 = y;
        if (y > y1) y1 = y;
      }
    }
  }
  if (x1 < 0) return blob; // nothing kept: nothing to trim to
  const out = document.createElement("canvas");
  out.width = x1 - x0 + 1;
  out.height = y1 - y0 + 1;
  const octx = out.getContext("2d");
  if (opts.background) {
    octx.fillStyle = `rgb(${opts.background.join(",")})`;
    octx.fillRect(0, 0, out.width, out.height);
  }
  octx.drawImage(canvas, x0, y0, out.width, out.height, 0, 0, out.width, out.height);
  return new Promise((resolve) => {
    out.toBlob((b) => resolve(b || blob), mime(opts.format), opts.quality / 100);
  });
}

function readBase64(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).split(",", 2)[1]);
    reader.onerror = () => reject(reader.error || new Error("read failed"));
    reader.readAsDataURL(file);
  });
}

function base64ToBlob(b64, type) {
  const bin = atob(b64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return new Blob([bytes], { type });
}

function mime(format) {
  return { PNG: "image/png", JPG: "image/jpeg", WEBP: "image/webp" }[format] || "image/png";
}

function outputName(name, format) {
  const stem = (name || "image").replace(/\.[^.]+$/, "");
  return `${stem}-nobg.${format === "JPG" ? "jpg" : format.toLowerCase()}`;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function wireInputs() {
  const drop = $("drop");
  $("files").addEventListener("change", (e) => {
    addFiles(e.target.files);
    e.target.value = "";
  });
  for (const type of ["dragenter", "dragover"]) {
    drop.addEventListener(type, (e) => {
      e.preventDefault();
      drop.classList.add("over");
    });
  }
  for (const type of ["dragleave", "drop"]) {
    drop.addEventListener(type, () => drop.classList.remove("over"));
  }
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    addFiles(e.dataTransfer.files);
  });
  document.addEventListener("paste", (e) => {
    const files = [...(e.clipboardData ? e.clipboardData.files : [])];
    if (files.length) addFiles(files);
  });
  const quality = () => {
    $("quality").disabled = $("format").value === "PNG";
  };
  $("format").addEventListener("change", quality);
  quality();
}

wireInputs();
loadInfo();
