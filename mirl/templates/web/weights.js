// Inflate the page's compact weights (weights.bin.gz, written by mirl/export/compact.py) into the
// external-data buffer that the ONNX graph (model.onnx.gz) points at; onnxruntime-web receives it
// with the session option `externalData`. The blob, little-endian:
//   "MIRLWT01" | uint32 header length | header (JSON) | bitmasks | float16 values | float32 values
// Each header row [offset, count, type, values, masked] is one tensor of the buffer: `count`
// elements of `type` (float32 or float16) at byte `offset`; when `masked`, a bitmask of ceil(count/8)
// bytes (bit j of byte i, least significant first, = element 8i+j kept) says which elements take
// the next kept values, the others stay zero. Values are stored as byte planes (all low bytes,
// then all high bytes), which gzip packs better than interleaved bytes.

export const MAGIC = "MIRLWT01";
export const FORMAT = "mirl.web.weights";
export const VERSION = 1;

let halfTable = null;

// float16 bit pattern -> float32 value, for all 65536 patterns (exact: float32 holds every float16).
export function halfToFloat() {
  if (halfTable) return halfTable;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1, exponent = (h >> 10) & 0x1f, mantissa = h & 0x3ff;
    if (exponent === 0) t[h] = sign * mantissa * 2 ** -24;
    else if (exponent === 31) t[h] = mantissa ? NaN : sign * Infinity;
    else t[h] = sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
  }
  halfTable = t;
  return t;
}

// The blob's header and the offset where its bitmasks start.
export function readHeader(blob) {
  const magic = new TextDecoder().decode(blob.subarray(0, 8));
  if (blob.length < 12 || magic !== MAGIC) {
    throw new Error(`weights.bin.gz is not a mirl weights blob (it starts with "${magic}", not "${MAGIC}"); re-export the page with mirl export --format web`);
  }
  const length = new DataView(blob.buffer, blob.byteOffset, blob.byteLength).getUint32(8, true);
  const header = JSON.parse(new TextDecoder().decode(blob.subarray(12, 12 + length)));
  if (header.format !== FORMAT || header.version !== VERSION) {
    throw new Error(`weights.bin.gz is ${header.format} version ${header.version}; this page reads ${FORMAT} version ${VERSION}: re-export it`);
  }
  return { header, start: 12 + length };
}

// Join `count` values of `size` bytes stored as byte planes at `offset` into little-endian bytes.
function unplane(blob, offset, count, size) {
  const out = new Uint8Array(count * size);
  for (let b = 0; b < size; b++) {
    const plane = blob.subarray(offset + b * count, offset + (b + 1) * count);
    for (let i = 0, j = b; i < count; i++, j += size) out[j] = plane[i];
  }
  return out;
}

// Write `count` elements into `dst`: element i takes the next value when its mask bit is set (all
// elements when `mask` is null), reading `source` from index `first`; returns how many it took.
function scatter(dst, count, mask, maskAt, source, first) {
  let k = first;
  if (mask === null) {
    for (let i = 0; i < count; i++) dst[i] = source[k++];
    return k - first;
  }
  const bytes = (count + 7) >> 3;
  for (let b = 0; b < bytes; b++) {
    const bits = mask[maskAt + b];
    if (bits === 0) continue;
    const base = b << 3;
    for (let j = 0; j < 8; j++) if ((bits >> j) & 1) dst[base + j] = source[k++];
  }
  return k - first;
}

// Rebuild the external-data buffer: { header, data: Uint8Array of header.external_bytes, tensors,
// values: how many values the blob held }.
export function inflate(blob) {
  const { header, start } = readHeader(blob);
  const counts = header.counts;
  const maskEnd = start + counts.mask_bytes;
  const halfEnd = maskEnd + 2 * counts.float16;
  const end = halfEnd + 4 * counts.float32;
  if (blob.length !== end) throw new Error(`weights.bin.gz holds ${blob.length} bytes where its header describes ${end}: it is damaged; re-export the page`);
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) throw new Error("this browser is big-endian; the page needs a little-endian one");
  const halves = new Uint16Array(unplane(blob, maskEnd, counts.float16, 2).buffer);
  const singles = new Float32Array(unplane(blob, halfEnd, counts.float32, 4).buffer);
  // float16 values of float32 tensors, converted once
  const table = halfToFloat();
  const halvesAsFloat = new Float32Array(halves.length);
  for (let i = 0; i < halves.length; i++) halvesAsFloat[i] = table[halves[i]];
  const data = new Uint8Array(header.external_bytes);
  let maskAt = start, atHalf = 0, atSingle = 0;
  for (const [offset, count, type, values, masked] of header.tensors) {
    if (offset + count * (type === "float16" ? 2 : 4) > data.length) throw new Error("weights.bin.gz: a tensor lies outside the buffer; re-export the page");
    const dst = type === "float16" ? new Uint16Array(data.buffer, offset, count) : new Float32Array(data.buffer, offset, count);
    const mask = masked ? blob : null;
    let taken;
    if (values === "float16") {
      if (type === "float16") taken = scatter(dst, count, mask, maskAt, halves, atHalf);
      else taken = scatter(dst, count, mask, maskAt, halvesAsFloat, atHalf);
      atHalf += taken;
    } else {
      if (type === "float16") throw new Error("weights.bin.gz stores float32 values for a float16 tensor; re-export the page");
      taken = scatter(dst, count, mask, maskAt, singles, atSingle);
      atSingle += taken;
    }
    if (masked) maskAt += (count + 7) >> 3;
  }
  if (maskAt !== maskEnd || atHalf !== counts.float16 || atSingle !== counts.float32) {
    throw new Error("weights.bin.gz: its bitmasks and values do not match its tensors; it is damaged: re-export the page");
  }
  return { header, data, tensors: header.tensors.length, values: atHalf + atSingle };
}
