// What the page trusts from its folder, checked before it is used (mirl/export/web.py's
// check_record holds the same rules for ticket.json):
// * ticket.json: every field the page reads has its type and range (tile a multiple of 8,
//   0 <= 2 * overlap < tile, sizes whole numbers, file names the export's own);
// * the model and its weights: their sizes and SHA-256 equal what ticket.json records (a file
//   damaged or replaced after the export is refused, never run);
// * the result: an output of one colour, or clipped to 0 or 255 nearly everywhere, from a photo that
//   is neither, or the photo unchanged to the last 8-bit level, comes from damaged weights (PromptIR
//   adds its correction to the photo: zero weights return it as it was).

export const FORMAT = "mirl.web";
export const VERSION = 1;
export const MODEL_FILE = "model.onnx.gz";
export const WEIGHTS_FILE = "weights.bin.gz";
export const WASM_FILE = "ort/ort-wasm-simd-threaded.wasm.gz";
const REEXPORT = "re-export the page with mirl export --format web";

const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
const isCount = (v) => Number.isSafeInteger(v) && v >= 0;
const isPositive = (v) => Number.isSafeInteger(v) && v > 0;
const isNumber = (v) => typeof v === "number" && Number.isFinite(v);
const isFraction = (v) => isNumber(v) && v >= 0 && v <= 1;
const isText = (v) => typeof v === "string";
const isHash = (v) => typeof v === "string" && /^[0-9a-f]{64}$/.test(v);
const orNull = (test) => (v) => v === null || v === undefined || test(v);
const oneOf = (...values) => (v) => values.includes(v);

// [path, test, what it must be] for the fields of ticket.json the page reads.
const RULES = [
  ["format", oneOf(FORMAT), `"${FORMAT}"`],
  ["version", oneOf(VERSION), String(VERSION)],
  ["title", isText, "a string"],
  ["preset", isText, "a string"],
  ["impl", isText, "a string"],
  ["parameters", isPositive, "a whole number above 0"],
  ["restore_command", isText, "a string"],
  ["density", isObject, "an object"],
  ["density.prunable", isFraction, "a number from 0 to 1"],
  ["density.trainable", isFraction, "a number from 0 to 1"],
  ["density.nonzero_prunable", isCount, "a whole number of 0 or more"],
  ["density.prunable_total", isCount, "a whole number of 0 or more"],
  ["density.rule", isText, "a string"],
  ["model", isObject, "an object"],
  ["model.file", oneOf(MODEL_FILE), `"${MODEL_FILE}"`],
  ["model.dtype", oneOf("float32", "float16"), '"float32" or "float16"'],
  ["model.sha256", isHash, "64 lowercase hex digits (the SHA-256 of the gunzipped model)"],
  ["model.onnx_bytes", isPositive, "a whole number above 0"],
  ["model.gzip_bytes", isPositive, "a whole number above 0"],
  ["model.sent_bytes", isPositive, "a whole number above 0"],
  ["model.dense", isObject, "an object"],
  ["model.dense.sent_bytes", isPositive, "a whole number above 0"],
  ["model.dense.onnx_bytes", isPositive, "a whole number above 0"],
  ["model.weights", orNull(isObject), "an object or null"],
  ["tiling", isObject, "an object"],
  ["tiling.tile", (v) => isPositive(v) && v % 8 === 0, "a multiple of 8 above 0"],
  ["tiling.overlap", isCount, "a whole number of 0 or more"],
  ["metrics", orNull(isObject), "an object or null"],
  ["provenance", isObject, "an object"],
  ["provenance.checkpoint", isText, "a string"],
  ["provenance.run", orNull(isText), "a string or null"],
  ["provenance.level", orNull(isCount), "a whole number or null"],
  ["runtime", isObject, "an object"],
  ["runtime.version", isText, "a string"],
  ["runtime.wasm", oneOf(WASM_FILE), `"${WASM_FILE}"`],
  ["examples", Array.isArray, "a list"],
];
const WEIGHT_RULES = [
  ["model.weights.file", oneOf(WEIGHTS_FILE), `"${WEIGHTS_FILE}"`],
  ["model.weights.format", oneOf("mirl.web.weights"), '"mirl.web.weights"'],
  ["model.weights.version", oneOf(1), "1"],
  ["model.weights.sha256", isHash, "64 lowercase hex digits (the SHA-256 of the gunzipped weights)"],
  ["model.weights.bytes", isPositive, "a whole number above 0"],
  ["model.weights.gzip_bytes", isPositive, "a whole number above 0"],
  ["model.weights.values", oneOf("float16", "float32"), '"float16" or "float32"'],
  ["model.weights.external", isText, "a string"],
  ["model.weights.external_bytes", isCount, "a whole number of 0 or more"],
  ["model.weights.tensors", isCount, "a whole number of 0 or more"],
  ["model.weights.kept", isCount, "a whole number of 0 or more"],
  ["model.weights.positions", isCount, "a whole number of 0 or more"],
];
const METRIC_RULES = [
  ["metrics.mean_psnr", isNumber, "a number"],
  ["metrics.mean_ssim", isNumber, "a number"],
  ["metrics.mean_input_psnr", isNumber, "a number"],
  ["metrics.convention", isText, "a string"],
  ["metrics.convention_text", isText, "a string"],
];
const SPEED_RULES = ["ms", "dense_ms", "speedup", "macs", "dense_macs"].map((k) => [`speed.${k}`, (v) => isNumber(v) && v > 0, "a number above 0"])
  .concat([["speed.tile", isPositive, "a whole number above 0"], ["speed.threads", isPositive, "a whole number above 0"],
           ["speed.runtime", isText, "a string"], ["speed.measured", isText, "a string"]]);

function at(record, path) {
  return path.split(".").reduce((v, key) => (isObject(v) ? v[key] : undefined), record);
}

// The first thing wrong with ticket.json `t`, as one sentence, or "" when it is sound.
export function ticketProblem(t) {
  if (!isObject(t)) return "ticket.json is not a JSON object";
  const rules = [...RULES];
  if (isObject(at(t, "model.weights"))) rules.push(...WEIGHT_RULES);
  if (isObject(t.metrics)) rules.push(...METRIC_RULES);
  if (t.speed !== undefined && t.speed !== null) rules.push(["speed", isObject, "an object or null"], ...SPEED_RULES);
  for (const [path, test, what] of rules) {
    const value = at(t, path);
    if (!test(value)) return `ticket.json: ${path} is ${JSON.stringify(value) ?? "missing"}, it must be ${what}`;
  }
  const { tile, overlap } = t.tiling;
  if (2 * overlap >= tile) return `ticket.json: tiling.overlap is ${overlap}, it must be under half of tiling.tile (${tile})`;
  if (t.density.nonzero_prunable > t.density.prunable_total) return "ticket.json: density.nonzero_prunable is above density.prunable_total";
  const w = t.model.weights;
  if (w && w.kept > w.positions) return "ticket.json: model.weights.kept is above model.weights.positions";
  const sent = t.model.gzip_bytes + (w ? w.gzip_bytes : 0);
  if (t.model.sent_bytes !== sent) return `ticket.json: model.sent_bytes is ${t.model.sent_bytes}, the files it names add up to ${sent}`;
  for (const [i, ex] of t.examples.entries()) {
    if (!isObject(ex) || !isText(ex.label) || !isText(ex.file) || !/^examples\/[A-Za-z0-9_-]+\.png$/.test(ex.file)) {
      return `ticket.json: examples[${i}] must be {"file": "examples/<name>.png", "label": "..."}`;
    }
  }
  return "";
}

// Throw when ticket.json is not sound.
export function checkTicket(t) {
  const problem = ticketProblem(t);
  if (problem) throw new Error(`${problem}; ${REEXPORT}`);
}

const K = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01,
  0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc,
  0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
  0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08,
  0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
  0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

// SHA-256 in plain JavaScript, for pages served where crypto.subtle is absent (http on another host).
export function sha256Plain(bytes) {
  const n = bytes.length, total = Math.ceil((n + 9) / 64) * 64;
  const data = new Uint8Array(total);
  data.set(bytes);
  data[n] = 0x80;
  const view = new DataView(data.buffer);
  view.setUint32(total - 8, Math.floor(n / 2 ** 29));
  view.setUint32(total - 4, (n * 8) >>> 0);
  const h = new Uint32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
  const w = new Uint32Array(64);
  const rot = (x, r) => (x >>> r) | (x << (32 - r));
  for (let o = 0; o < total; o += 64) {
    for (let i = 0; i < 16; i++) w[i] = view.getUint32(o + 4 * i);
    for (let i = 16; i < 64; i++) {
      const s0 = rot(w[i - 15], 7) ^ rot(w[i - 15], 18) ^ (w[i - 15] >>> 3);
      const s1 = rot(w[i - 2], 17) ^ rot(w[i - 2], 19) ^ (w[i - 2] >>> 10);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    let [a, b, c, d, e, f, g, k] = h;
    for (let i = 0; i < 64; i++) {
      const t1 = (k + (rot(e, 6) ^ rot(e, 11) ^ rot(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i]) >>> 0;
      const t2 = ((rot(a, 2) ^ rot(a, 13) ^ rot(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) >>> 0;
      k = g; g = f; f = e; e = (d + t1) >>> 0; d = c; c = b; b = a; a = (t1 + t2) >>> 0;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += k;
  }
  return [...h].map((x) => x.toString(16).padStart(8, "0")).join("");
}

// The SHA-256 of `bytes` as 64 hex digits: the browser's own where it has one (secure contexts).
export async function sha256Hex(bytes) {
  const subtle = globalThis.crypto && globalThis.crypto.subtle;
  if (!subtle) return sha256Plain(bytes);
  const digest = new Uint8Array(await subtle.digest("SHA-256", bytes));
  return [...digest].map((x) => x.toString(16).padStart(2, "0")).join("");
}

// Throw unless `bytes` (a file as gunzipped) has the size and SHA-256 that ticket.json records.
export async function checkFile(bytes, name, size, hash) {
  if (bytes.length !== size) {
    throw new Error(`${name} holds ${bytes.length} bytes unpacked where ticket.json records ${size}: it is damaged or was replaced after the export; ${REEXPORT}`);
  }
  const got = await sha256Hex(bytes);
  if (got !== hash) {
    throw new Error(`${name} does not match the SHA-256 that ticket.json records (${got.slice(0, 12)}… against ${hash.slice(0, 12)}…): it is damaged or was replaced after the export; ${REEXPORT}`);
  }
}

// Why a restored RGBA image cannot be right, or "": one colour while the photo has several; nearly
// every value clipped to 0 or 255 while the photo's are not (what random weights give: the
// output runs to +-1e5); the photo unchanged to the last 8-bit level (zero weights return the input).
export const CLIPPED = 0.99;
export function resultProblem(input, output) {
  let varied = false, unchanged = true, constant = true, clippedIn = 0, clippedOut = 0;
  for (let i = 0; i < input.length; i += 4) {
    for (let c = 0; c < 3; c++) {
      const a = input[i + c], b = output[i + c];
      if (a !== input[c]) varied = true;
      if (b !== output[c]) constant = false;
      if (b !== a) unchanged = false;
      if (a === 0 || a === 255) clippedIn += 1;
      if (b === 0 || b === 255) clippedOut += 1;
    }
  }
  const values = (3 * input.length) / 4;
  if (!varied) return "";
  const advice = `the network's weights are damaged; check the ticket (mirl info) and ${REEXPORT}`;
  if (constant) return `every pixel came out rgb(${output[0]}, ${output[1]}, ${output[2]}) while the photo has many colours: ${advice}`;
  if (clippedOut >= CLIPPED * values && clippedIn < 0.5 * values) {
    return `${(100 * clippedOut / values).toFixed(1)}% of the restored values are clipped to 0 or 255 (the photo's: ${(100 * clippedIn / values).toFixed(1)}%): ${advice}`;
  }
  if (unchanged) return `the network returned the photo unchanged to the last 8-bit level (what zero weights give): ${advice}`;
  return "";
}
