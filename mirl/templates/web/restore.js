// Restore an RGBA image with an onnxruntime-web session, tile by tile, exactly as
// `mirl restore --tile T --overlap O` does (mirl/restore.py): tiles of T px that share at least
// O px, each reflect-padded at the bottom/right to a multiple of 8 (replicate when the image is
// too small to reflect), blended with raised-cosine ramps, divided by the summed weights, then
// clamped to [0, 1] and rounded to 8 bits.

export const MULTIPLE = 8;
// Above this many tiles the page warns before restoring (hours on a laptop's CPU).
export const MAX_TILES = 1000;

// Start offsets of tiles of `tile` px covering `size` px with at least `overlap` px shared.
export function tileStarts(size, tile, overlap) {
  if (tile >= size) return [0];
  const stride = tile - overlap;
  if (stride <= 0) throw new Error(`the overlap (${overlap} px) must be smaller than the tile (${tile} px)`);
  const starts = [];
  for (let s = 0; s < size - tile; s += stride) starts.push(s);
  starts.push(size - tile);
  return [...new Set(starts)].sort((a, b) => a - b);
}

// 1-D blend weights: raised-cosine ramps over `overlap` px at sides shared with a neighbour.
export function ramp(length, overlap, left, right) {
  const w = new Float32Array(length).fill(1);
  const n = Math.min(overlap, length);
  if (n <= 0) return w;
  const r = new Float32Array(n);
  for (let k = 0; k < n; k++) r[k] = 0.5 - 0.5 * Math.cos(Math.PI * (k + 0.5) / n);
  for (let k = 0; k < n; k++) {
    if (left) w[k] = Math.min(w[k], r[k]);
    if (right) w[length - n + k] = Math.min(w[length - n + k], r[n - 1 - k]);
  }
  return w;
}

// The tiling plan for an image: tile height/width, start offsets, number of tiles.
export function plan(height, width, tile, overlap) {
  const whole = !tile || (tile >= height && tile >= width);
  const th = whole ? height : Math.min(tile, height);
  const tw = whole ? width : Math.min(tile, width);
  const ov = whole ? 0 : overlap;
  const ys = tileStarts(height, th, ov);
  const xs = tileStarts(width, tw, ov);
  return { th, tw, overlap: ov, ys, xs, count: ys.length * xs.length };
}

// The tile sizes the page offers: the usual ones and the export's, each more than twice the
// overlap (as mirl export --format web requires of its own).
export function tileChoices(defaultTile, overlap) {
  return [...new Set([128, 192, 256, 384, 512, defaultTile])].filter((s) => s > 2 * overlap).sort((a, b) => a - b);
}

// The warning for a plan of more than MAX_TILES tiles, else "".
export function tilingWarning(p, tile) {
  if (p.count <= MAX_TILES) return "";
  return `This photo needs ${p.count} tiles of ${tile} px, which may take hours. Pick a larger tile size ` +
         "(or \"whole image\" for a photo that fits in memory), or drop the same photo again to restore it anyway.";
}

// Source row/column of padded index i in a side of `size` px (reflect or replicate).
function padIndex(i, size, reflect) {
  if (i < size) return i;
  return reflect ? 2 * (size - 1) - i : size - 1;
}

// A [1, 3, H8, W8] float32 planar tensor of the patch (y0, x0, th, tw) of `rgba`, padded to multiples of 8.
export function patchTensor(rgba, width, y0, x0, th, tw) {
  const ph = (MULTIPLE - (th % MULTIPLE)) % MULTIPLE;
  const pw = (MULTIPLE - (tw % MULTIPLE)) % MULTIPLE;
  const reflect = ph < th && pw < tw;
  const H = th + ph, W = tw + pw, plane = H * W;
  const data = new Float32Array(3 * plane);
  for (let y = 0; y < H; y++) {
    const sy = y0 + padIndex(y, th, reflect);
    for (let x = 0; x < W; x++) {
      const sx = x0 + padIndex(x, tw, reflect);
      const s = (sy * width + sx) * 4, d = y * W + x;
      data[d] = rgba[s] / 255;
      data[plane + d] = rgba[s + 1] / 255;
      data[2 * plane + d] = rgba[s + 2] / 255;
    }
  }
  return { data, dims: [1, 3, H, W] };
}

// The network's output for a tile of `dims` ([1, 3, H, W]), refused as `mirl restore` refuses it
// when it holds NaN or infinite values (an image made from them would be black), or has another size.
export function checkOutput(out, dims) {
  const expected = dims[1] * dims[2] * dims[3];
  if (!out || out.length !== expected) {
    throw new Error(`the network's output has ${out ? out.length : 0} values where a ${dims[2]}×${dims[3]} tile needs ${expected}: ` +
                    "the model is not a restoration network for this page; re-export the page with mirl export --format web");
  }
  let bad = 0;
  for (let i = 0; i < out.length; i++) if (!Number.isFinite(out[i])) bad += 1;
  if (bad) {
    throw new Error(`the network's output holds NaN or infinite values (${bad.toLocaleString("en")} of ${out.length.toLocaleString("en")}): ` +
                    "no image is made from it; check the ticket's weights (mirl info) and re-export the page with mirl export --format web");
  }
  return out;
}

// Restore `rgba` (Uint8ClampedArray, width x height). `run(data, dims)` returns the network's
// output as a Float32Array [1, 3, H8, W8]. `onTile(done, total, region)` is called after each
// tile; `preview(region)` gives that region's current blend as RGBA for progressive display.
export async function restoreRGBA(run, rgba, width, height, { tile = 256, overlap = 32, onTile = null } = {}) {
  const p = plan(height, width, tile, overlap);
  const acc = new Float32Array(3 * height * width);
  const weight = new Float32Array(height * width);
  const plane = height * width;
  let done = 0;
  const toRGBA = (out, y0, x0, th, tw) => {
    for (let y = y0; y < y0 + th; y++) {
      for (let x = x0; x < x0 + tw; x++) {
        const i = y * width + x, wsum = weight[i];
        for (let c = 0; c < 3; c++) {
          let v = wsum > 0 ? acc[c * plane + i] / wsum : 0;
          v = Math.min(1, Math.max(0, v));
          out[i * 4 + c] = Math.round(v * 255);
        }
        out[i * 4 + 3] = rgba[i * 4 + 3];
      }
    }
  };
  const result = new Uint8ClampedArray(4 * plane);
  for (let i = 0; i < p.ys.length; i++) {
    const wy = ramp(p.th, p.overlap, i > 0, i < p.ys.length - 1);
    for (let j = 0; j < p.xs.length; j++) {
      const wx = ramp(p.tw, p.overlap, j > 0, j < p.xs.length - 1);
      const y0 = p.ys[i], x0 = p.xs[j];
      const { data, dims } = patchTensor(rgba, width, y0, x0, p.th, p.tw);
      const out = checkOutput(await run(data, dims), dims);
      const W = dims[3], P = dims[2] * dims[3];
      for (let y = 0; y < p.th; y++) {
        for (let x = 0; x < p.tw; x++) {
          const wt = Math.fround(wy[y] * wx[x]);
          const i2 = (y0 + y) * width + (x0 + x), s = y * W + x;
          acc[i2] += out[s] * wt;
          acc[plane + i2] += out[P + s] * wt;
          acc[2 * plane + i2] += out[2 * P + s] * wt;
          weight[i2] += wt;
        }
      }
      done += 1;
      toRGBA(result, y0, x0, p.th, p.tw);
      if (onTile) await onTile(done, p.count, { y0, x0, th: p.th, tw: p.tw, rgba: result });
    }
  }
  return { rgba: result, plan: p };
}
