// The page: load the ticket (a gzipped ONNX graph and its compact weights, inflated by weights.js)
// into onnxruntime-web, restore dropped/picked/pasted photos tile by tile, show before/after, the
// time taken, and offer the PNG. Everything it fetches lies in this folder.
import * as ort from "./ort/ort.wasm.min.mjs";
import { plan, restoreRGBA, tileChoices, tilingWarning } from "./restore.js";
import { encodePNG } from "./png.js";
import { inflate } from "./weights.js";
import { checkFile, checkTicket, resultProblem } from "./check.js";

const $ = (id) => document.getElementById(id);
const MAX_PIXELS = 40e6; // accumulators need ~16 bytes per pixel
const page = { ticket: null, session: null, busy: false, last: null, threads: 1, warned: null, weights: null };
// For tests and benchmarks: resolves when the model is ready; `last` holds the last result.
window.mirlWeb = { page, ready: null, restoreFile: null };

function setState(state) { document.body.dataset.state = state; }
function status(text) { $("status").textContent = text; }
function showError(text) {
  const box = $("message");
  box.textContent = text;
  box.hidden = false;
}
function clearError() { $("message").hidden = true; $("message").textContent = ""; }
function bytes(n) {
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} MB`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(0)} kB`;
  return `${n} B`;
}
function pct(x) { return `${(100 * x).toFixed(x < 0.1 ? 2 : 1)}%`; }
function seconds(ms) { return ms >= 10000 ? `${(ms / 1000).toFixed(1)} s` : ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(0)} ms`; }

async function fetchBytes(url, what) {
  let response;
  try {
    response = await fetch(url);
  } catch (e) {
    throw new Error(`could not fetch ${what} (${url}): ${e.message}`);
  }
  if (!response.ok) throw new Error(`could not fetch ${what} (${url}): HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

// Gunzip in the browser; a server that already sent the file decompressed (Content-Encoding) is fine too.
async function gunzip(data) {
  if (data[0] !== 0x1f || data[1] !== 0x8b) return data;
  const stream = new Blob([data]).stream().pipeThrough(new DecompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function fact(term, value) {
  const dt = document.createElement("dt");
  dt.textContent = term;
  const dd = document.createElement("dd");
  dd.textContent = value;
  $("facts").append(dt, dd);
}

// The model's bytes as sent (the gzipped files the page fetches) next to the same network stored dense.
function downloadText(m) {
  const sent = m.sent_bytes ?? m.gzip_bytes;
  const dense = m.dense ? m.dense.sent_bytes : null;
  const than = dense && dense > sent ? `; stored dense (every weight, ${m.dtype}) it would be ${bytes(dense)}, ${(dense / sent).toFixed(1)}× more` : "";
  if (!m.weights) return `${bytes(sent)} as sent: ${m.file}, the whole ONNX file gzipped (${bytes(m.onnx_bytes)} unpacked, ${m.dtype} weights, zeros included)${than}`;
  const w = m.weights;
  return `${bytes(sent)} as sent: the graph ${m.file} (${bytes(m.gzip_bytes)}) and ${w.file} (${bytes(w.gzip_bytes)}: ` +
         `a bitmask of the kept positions and the kept values as ${w.values}, for ${w.tensors.toLocaleString("en")} tensors; ` +
         `${w.kept.toLocaleString("en")} of ${w.positions.toLocaleString("en")} values kept)${than}`;
}

// Narrowed tickets: ms per tile against the dense network, measured natively at export.
function speedText(s) {
  const threads = `${s.threads} thread${s.threads > 1 ? "s" : ""}`;
  return `${s.ms.toFixed(0)} ms per ${s.tile}×${s.tile} tile against ${s.dense_ms.toFixed(0)} ms for the dense network: ` +
         `${s.speedup.toFixed(1)}× faster (whole channels removed; ${(s.macs / 1e9).toFixed(1)} against ${(s.dense_macs / 1e9).toFixed(1)} G ` +
         `multiply-accumulates), measured at export with ${s.runtime}, ${threads}, on ${s.measured}. This page's own time per tile shows after a restoration.`;
}

function describeTicket(t) {
  const d = t.density;
  fact("network", `PromptIR, preset "${t.preset}" (${t.parameters.toLocaleString("en")} parameters), exported from the ${t.impl} implementation`);
  fact("density", `${pct(d.prunable)} of the prunable weights (${d.nonzero_prunable.toLocaleString("en")} of ${d.prunable_total.toLocaleString("en")}, ${d.rule} rule); ${pct(d.trainable)} of all trainable parameters`);
  fact("download", downloadText(t.model));
  if (t.speed) {
    fact("speed", speedText(t.speed));
    $("kind").textContent = "a lottery ticket found by mirl, cut down to the whole channels it keeps";
  }
  if (t.metrics) {
    const m = t.metrics;
    const where = m.demo_corpus ? "the built-in demo corpus (a demonstration, not a benchmark)" : `data set ${m.data}`;
    const gain = m.mean_psnr - m.mean_input_psnr;
    fact("scores", `mean PSNR ${m.mean_psnr.toFixed(2)} dB against ${m.mean_input_psnr.toFixed(2)} dB for the degraded input ` +
         `(${gain >= 0 ? "+" : ""}${gain.toFixed(2)} dB${gain < 0 ? ": this ticket makes images worse" : ""}), ` +
         `SSIM ${m.mean_ssim.toFixed(4)} on ${where}; ${m.convention} convention (${m.convention_text})`);
  } else {
    fact("scores", "none recorded (the source was not a level of a mirl study)");
  }
  const p = t.provenance;
  if (p.run) fact("study run", `${p.run} (settings hash ${p.settings_hash}), level ${p.level}`);
  else if (p.level !== null && p.level !== undefined) fact("level", String(p.level));
  fact("source", p.checkpoint);
  fact("tiling", `tiles of ${t.tiling.tile} px overlapping by ${t.tiling.overlap} px, as: ${t.restore_command}`);
  const rt = `onnxruntime-web ${t.runtime.version} (WebAssembly)`;
  fact("runtime", rt);
  $("runtime").textContent = rt;
}

function fillTileChoices(t) {
  const select = $("tile");
  for (const size of tileChoices(t.tiling.tile, t.tiling.overlap)) {
    const option = new Option(`${size} px`, String(size));
    if (size === t.tiling.tile) option.selected = true;
    select.append(option);
  }
  select.append(new Option("whole image", "0"));
  const hint = () => {
    const tile = Number(select.value);
    $("tiling-hint").textContent = tile
      ? `overlap ${t.tiling.overlap} px; same tiling as mirl restore --tile ${tile} --overlap ${t.tiling.overlap}`
      : "one pass over the whole photo (slow and memory-hungry for large photos)";
  };
  select.addEventListener("change", hint);
  hint();
}

function addExamples(t) {
  if (!t.examples || !t.examples.length) return;
  const box = $("examples");
  for (const ex of t.examples) {
    const button = document.createElement("button");
    button.type = "button";
    const img = document.createElement("img");
    img.src = ex.file;
    img.alt = "";
    button.append(img, document.createTextNode(ex.label));
    button.addEventListener("click", async () => {
      try {
        const data = await fetchBytes(ex.file, "the example photo");
        await restoreFile(new File([data], ex.file.split("/").pop(), { type: "image/png" }));
      } catch (e) {
        showError(e.message || String(e));
      }
    });
    box.append(button);
  }
  box.hidden = false;
}

async function loadModel() {
  if (location.protocol === "file:") {
    throw new Error("opened from file://: serve this folder over HTTP (python -m http.server, or mirl serve)");
  }
  const t0 = performance.now();
  const response = await fetch("ticket.json");
  if (!response.ok) throw new Error(`ticket.json is missing (HTTP ${response.status}); re-export the folder with mirl export --format web`);
  let t;
  try {
    t = await response.json();
  } catch (e) {
    throw new Error(`ticket.json is not valid JSON (${e.message}); re-export the page with mirl export --format web`);
  }
  checkTicket(t);
  page.ticket = t;
  describeTicket(t);
  fillTileChoices(t);
  addExamples(t);
  fetch("model_card.md").then((r) => (r.ok ? r.text() : "(no model card in this folder)")).then((text) => { $("card").textContent = text; });
  status(`Loading the model (${bytes(t.model.sent_bytes ?? t.model.gzip_bytes)}) and the runtime…`);
  ort.env.wasm.wasmPaths = new URL("./ort/", location.href).href;
  const w = t.model.weights;
  const [wasm, model, blob] = await Promise.all([
    fetchBytes(t.runtime.wasm, "the WebAssembly runtime").then(gunzip),
    fetchBytes(t.model.file, "the model").then(gunzip),
    w ? fetchBytes(w.file, "the model's weights").then(gunzip) : Promise.resolve(null),
  ]);
  // Nothing from a file runs before it matches what the export recorded in ticket.json.
  await checkFile(model, t.model.file, t.model.onnx_bytes, t.model.sha256);
  if (w) await checkFile(blob, w.file, w.bytes, w.sha256);
  ort.env.wasm.wasmBinary = wasm;
  const options = { executionProviders: ["wasm"], graphOptimizationLevel: "all" };
  if (blob) {
    // The graph's weights are external data: rebuild them from the bitmasks and values.
    const t1 = performance.now();
    const weights = inflate(blob);
    if (weights.data.length !== w.external_bytes || weights.tensors !== w.tensors) {
      throw new Error(`${w.file} rebuilds ${weights.tensors} tensors (${weights.data.length} bytes) where ticket.json records ${w.tensors} ` +
                      `(${w.external_bytes} bytes); re-export the page with mirl export --format web`);
    }
    page.weights = { ms: performance.now() - t1, bytes: weights.data.length, tensors: weights.tensors, values: weights.values };
    if (weights.tensors) options.externalData = [{ path: weights.header.external, data: weights.data }];
  }
  // Threads need a cross-origin isolated page (mirl serve sends the headers); otherwise one thread.
  page.threads = self.crossOriginIsolated ? Math.max(1, Math.min(navigator.hardwareConcurrency || 1, 8)) : 1;
  ort.env.wasm.numThreads = page.threads;
  ort.env.wasm.proxy = true; // run in a worker: the page stays responsive during a tile
  page.session = await ort.InferenceSession.create(model, options);
  page.loadMs = performance.now() - t0;
  const threads = page.threads > 1 ? `${page.threads} threads` : "1 thread" + (self.crossOriginIsolated ? "" : " (serve with mirl serve for all cores)");
  $("runtime").textContent += `, ${threads}`;
  status(`Ready: model loaded in ${seconds(page.loadMs)} (${threads}). Pick a photo.`);
  setState("ready");
}

async function decode(file) {
  try {
    return await createImageBitmap(file, { colorSpaceConversion: "none", premultiplyAlpha: "none", imageOrientation: "from-image" });
  } catch (e) {
    return null;
  }
}

// Show small photos larger (up to 720 px wide) and large ones fitted to the window.
function fitCompare(width, height) {
  const room = $("result").clientWidth || width;
  const shown = Math.min(room, Math.max(width, 720), 0.75 * window.innerHeight * width / height);
  $("compare").style.width = `${Math.round(shown)}px`;
}

function drawRGBA(canvas, rgba, width, height, region = null) {
  const ctx = canvas.getContext("2d");
  const image = new ImageData(rgba, width, height);
  if (region) ctx.putImageData(image, 0, 0, region.x0, region.y0, region.tw, region.th);
  else ctx.putImageData(image, 0, 0);
}

async function restoreFile(file) {
  if (!file) return;
  clearError();
  if (!page.session) {
    showError(document.body.dataset.state === "error" ? "The model could not be loaded; see the message above." : "The model is still loading; try again in a moment.");
    return;
  }
  if (page.busy) {
    showError("A photo is being restored; wait for it to finish.");
    return;
  }
  const bitmap = await decode(file);
  if (!bitmap) {
    const kind = file.type ? `type ${file.type}` : "unknown type";
    showError(`"${file.name}" is not an image this browser can read (${kind}). Pick a photo: PNG, JPEG, WebP, GIF, BMP or AVIF.`);
    setState(page.last ? "done" : "ready");
    return;
  }
  const { width, height } = bitmap;
  if (width * height > MAX_PIXELS) {
    showError(`"${file.name}" has ${(width * height / 1e6).toFixed(0)} megapixels; this page restores up to ${MAX_PIXELS / 1e6} megapixels. Shrink it first.`);
    return;
  }
  const tile = Number($("tile").value);
  const overlap = page.ticket.tiling.overlap;
  const p = plan(height, width, tile, overlap);
  const warning = tilingWarning(p, tile);
  const request = `${file.name} ${file.size} ${tile}`;
  if (warning && page.warned !== request) {  // the same photo and tile size again: restore anyway
    page.warned = request;
    bitmap.close();
    showError(warning);
    status(`Not started: ${file.name} (${width}×${height}).`);
    setState("tiles-warning");
    return;
  }
  page.busy = true;
  setState("restoring");
  try {
    const before = $("before"), after = $("after");
    for (const c of [before, after]) { c.width = width; c.height = height; }
    const bctx = before.getContext("2d", { willReadFrequently: true });
    bctx.drawImage(bitmap, 0, 0);
    bitmap.close();
    const input = bctx.getImageData(0, 0, width, height).data;
    after.getContext("2d").drawImage(before, 0, 0);
    $("result").hidden = false;
    fitCompare(width, height);
    $("download").hidden = true;
    $("timing").textContent = "";
    const bar = $("progress");
    bar.max = p.count;
    bar.value = 0;
    $("progress-row").hidden = false;
    $("progress-text").textContent = `tile 0 of ${p.count}`;
    status(`Restoring ${file.name} (${width}×${height}) in ${p.count} tile${p.count > 1 ? "s" : ""}…`);
    const inputName = page.session.inputNames[0], outputName = page.session.outputNames[0];
    const run = async (data, dims) => {
      const feeds = { [inputName]: new ort.Tensor("float32", data, dims) };
      const out = await page.session.run(feeds);
      return out[outputName].data;
    };
    const t0 = performance.now();
    const result = await restoreRGBA(run, input, width, height, {
      tile, overlap,
      onTile: async (done, total, region) => {
        bar.value = done;
        const elapsed = performance.now() - t0;
        const left = total > done ? `, about ${seconds(elapsed / done * (total - done))} left` : "";
        $("progress-text").textContent = `tile ${done} of ${total}${left}`;
        drawRGBA(after, region.rgba, width, height, region);
        await new Promise((resolve) => setTimeout(resolve, 0)); // let the page repaint
      },
    });
    const ms = performance.now() - t0;
    const problem = resultProblem(input, result.rgba);
    if (problem) throw new Error(problem);
    const png = await encodePNG(result.rgba, width, height);
    const link = $("download");
    if (link.href.startsWith("blob:")) URL.revokeObjectURL(link.href);
    link.href = URL.createObjectURL(png);
    const stem = file.name.replace(/\.[^.]+$/, "") || "photo";
    link.download = `${stem}_restored.png`;
    link.textContent = `Download PNG (${bytes(png.size)})`;
    link.hidden = false;
    const perTile = ms / p.count;
    $("timing").textContent = `Restored ${width}×${height} in ${seconds(ms)}: ${p.count} tile${p.count > 1 ? "s" : ""} of up to ${p.th}×${p.tw} px, ${seconds(perTile)} per tile, ${page.threads} thread${page.threads > 1 ? "s" : ""}.`;
    status(`Done: ${file.name}. Drag across the photo to compare before and after.`);
    page.last = { name: file.name, width, height, ms, tiles: p.count, perTileMs: perTile, tile, overlap, pngBytes: png.size, threads: page.threads };
    setState("done");
  } catch (e) {
    showError(`Restoring "${file.name}" failed: ${e.message || e}`);
    // nothing of a refused result stays on the page: no picture, no download
    $("download").hidden = true;
    $("result").hidden = true;
    $("progress-row").hidden = true;
    status(`Not restored: ${file.name}.`);
    setState("error-restore");
  } finally {
    page.busy = false;
  }
}
window.mirlWeb.restoreFile = restoreFile;

function wireInputs() {
  $("file").addEventListener("change", (e) => { restoreFile(e.target.files[0]); e.target.value = ""; });
  const drop = $("drop");
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); $("file").click(); } });
  for (const type of ["dragenter", "dragover"]) {
    document.addEventListener(type, (e) => { e.preventDefault(); drop.classList.add("dragging"); });
  }
  for (const type of ["dragleave", "drop"]) {
    document.addEventListener(type, (e) => { e.preventDefault(); drop.classList.remove("dragging"); });
  }
  document.addEventListener("drop", (e) => {
    const files = e.dataTransfer && e.dataTransfer.files;
    if (files && files.length) restoreFile(files[0]);
  });
  document.addEventListener("paste", (e) => {
    const item = [...(e.clipboardData ? e.clipboardData.items : [])].find((i) => i.kind === "file");
    if (item) restoreFile(item.getAsFile());
  });
  const split = $("split");
  split.addEventListener("input", () => $("compare").style.setProperty("--split", `${split.value}%`));
}

wireInputs();
window.mirlWeb.ready = loadModel().catch((e) => {
  showError(`The model could not be loaded: ${e.message || e}`);
  status("Not ready.");
  setState("error");
});
