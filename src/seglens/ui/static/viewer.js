// SegLens result viewer: the body of the `js_on_load` of the gr.HTML `#seg-viewer`
// (Gradio calls it with element, trigger, props, server, upload, watch).
//
// The page receives an image's candidate regions once (masks at display size as row-major
// runs, the coarse-mask overlaps merging uses, per-region class probabilities) through the
// server functions `view_regions` / `view_scores`, which proxy GET /images/{id}/regions.
// Thresholds, merging, strategy, mode, transparency and the legend / label / contour
// toggles are then recomputed and repainted here, with no request. `matchRegions` is a
// port of seglens/core/matching.py (`match_regions`); a browser test pins it to
// POST /query. After each paint `data-render` on #seg-viewer says what is shown.

const host = element.closest('#seg-viewer') || document.getElementById('seg-viewer') || element;
const canvas = element.querySelector('canvas.slv-canvas');
const status = element.querySelector('.slv-status');
const ctx2d = canvas.getContext('2d', { willReadFrequently: false });

// -- colours: seglens/core/render.py `keyword_colors` ------------------------------------
const PALETTE = [
  [230, 25, 75], [60, 180, 75], [0, 130, 200], [255, 225, 25],
  [245, 130, 48], [145, 30, 180], [70, 240, 240], [240, 50, 230],
  [210, 245, 60], [0, 128, 128], [170, 110, 40], [128, 0, 0],
];
function hsvToRgb(h, s, v) {
  // Python's colorsys.hsv_to_rgb
  if (s === 0) return [v, v, v];
  let i = Math.floor(h * 6);
  const f = h * 6 - i;
  const p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f));
  i %= 6;
  return [[v, t, p], [q, v, p], [p, v, t], [p, q, v], [t, p, v], [v, p, q]][i];
}
function roundHalfEven(x) {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}
function keywordColors(keywords) {
  const colors = new Map();
  keywords.forEach((kw, i) => {
    if (colors.has(kw)) return;
    if (i < PALETTE.length) { colors.set(kw, PALETTE[i]); return; }
    const j = i - PALETTE.length;
    const hue = (0.11 + j * 0.618033988749895) % 1.0;
    const rgb = hsvToRgb(hue, j % 2 === 0 ? 0.75 : 0.6, j % 3 !== 2 ? 0.95 : 0.75);
    colors.set(kw, rgb.map((c) => roundHalfEven(c * 255)));
  });
  return colors;
}

// -- decoding the route's arrays ---------------------------------------------------------
function bytesOf(b64) {
  const text = atob(b64);
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i);
  return out.buffer;
}
function arrayOf(field) {
  const buffer = bytesOf(field.data_base64);
  return field.dtype === 'float32' ? new Float32Array(buffer) : new Uint32Array(buffer);
}

// -- matching: a port of seglens/core/matching.py `match_regions` ---------------------------
// probabilities are float32 and numpy compares them with the threshold in float32 (a Python
// float is a "weak" scalar), hence Math.fround. IoU is inter / (a_i + a_j - inter) in
// float64, exactly `coarse_iou_matrix`.
function matchRegions(scores, overlaps, params) {
  const n = scores.n, c = scores.c, k = scores.k, e = scores.e, probs = scores.probs;
  const t = Math.fround(params.threshold);
  const bestKw = new Int32Array(n), bestP = new Float64Array(n);
  const isExcl = new Uint8Array(n);
  const excludedBy = new Set();
  const bestScores = {};
  scores.keywords.forEach((kw, i) => { bestScores[kw] = 0; });
  for (let r = 0; r < n; r++) {
    const row = r * c;
    let b = 0, bp = probs[row];
    for (let j = 1; j < k; j++) if (probs[row + j] > bp) { bp = probs[row + j]; b = j; }
    bestKw[r] = b; bestP[r] = bp;
    if (e) {
      let x = 0, xp = probs[row + k];
      for (let j = 1; j < e; j++) if (probs[row + k + j] > xp) { xp = probs[row + k + j]; x = j; }
      if (xp >= t && xp > bp) { isExcl[r] = 1; excludedBy.add(x); }
    }
  }
  for (let j = 0; j < k; j++) {
    let m = 0;
    for (let r = 0; r < n; r++) if (probs[r * c + j] > m) m = probs[r * c + j];
    if (n) bestScores[scores.keywords[j]] = m;
  }
  const matches = [];
  const position = new Int32Array(n).fill(-1);
  for (let kw = 0; kw < k; kw++) {
    const members = [];
    for (let r = 0; r < n; r++) if (bestKw[r] === kw && bestP[r] >= t && !isExcl[r]) members.push(r);
    if (!members.length) continue;
    // np.argsort(-p, kind="stable") over members in index order
    members.sort((a, b) => probs[b * c + kw] - probs[a * c + kw] || a - b);
    members.forEach((r, i) => { position[r] = i; });
    const taken = new Uint8Array(members.length);
    for (let s = 0; s < members.length; s++) {
      if (taken[s]) continue;
      const seed = members[s];
      const group = [s];
      taken[s] = 1;
      if (members.length > 1) {
        const adj = overlaps.neighbours(seed);
        for (let q = 0; q < adj.length; q += 2) {
          const pos = position[adj[q]];
          if (pos < 0 || taken[pos]) continue;
          if (overlaps.iou(seed, adj[q], adj[q + 1]) > params.merge_threshold) { taken[pos] = 1; group.push(pos); }
        }
      }
      const regions = params.merge_strategy === 'union'
        ? group.map((g) => members[g]).filter((r) => r !== seed).sort((a, b) => a - b)
        : [];
      matches.push({ keyword: scores.keywords[kw], kw, score: probs[seed * c + kw], region_indices: [seed, ...regions] });
    }
    members.forEach((r) => { position[r] = -1; });
  }
  matches.sort((a, b) => b.score - a.score);
  const found = new Set(matches.map((m) => m.keyword));
  const missing = scores.keywords.filter((kw) => !found.has(kw));
  let matched = params.mode === 'any' ? found.size > 0 : missing.length === 0;
  const excluded = [...excludedBy].sort((a, b) => a - b).map((j) => scores.exclusions[j]);
  matched = matched && excluded.length === 0;
  return { matches, image_matched: matched, missing_keywords: missing, excluded_by: excluded, best_scores: bestScores };
}

// -- loaded data -------------------------------------------------------------------------
function overlapIndex(n, o) {
  // CSR adjacency: for region i, pairs (j, inter) in adjacency[start[i]..start[i+1])
  const first = arrayOf(o.first), second = arrayOf(o.second), inter = arrayOf(o.intersection);
  const areas = arrayOf(o.areas);
  const degree = new Uint32Array(n + 1);
  for (let p = 0; p < first.length; p++) { degree[first[p] + 1]++; degree[second[p] + 1]++; }
  for (let i = 0; i < n; i++) degree[i + 1] += degree[i];
  const fill = degree.slice(0, n);
  const adjacency = new Uint32Array(2 * 2 * first.length);
  for (let p = 0; p < first.length; p++) {
    const a = first[p], b = second[p];
    adjacency[2 * fill[a]] = b; adjacency[2 * fill[a] + 1] = inter[p]; fill[a]++;
    adjacency[2 * fill[b]] = a; adjacency[2 * fill[b] + 1] = inter[p]; fill[b]++;
  }
  return {
    neighbours: (i) => adjacency.subarray(2 * degree[i], 2 * degree[i + 1]),
    iou: (i, j, x) => { const u = areas[i] + areas[j] - x; return u > 0 ? x / u : 0; },
    pairs: first.length,
  };
}

function regionBoxes(n, offsets, runs, w) {
  const boxes = new Int32Array(4 * n);
  for (let r = 0; r < n; r++) {
    let pos = 0, x0 = w, y0 = 1e9, x1 = -1, y1 = -1;
    for (let i = offsets[r]; i < offsets[r + 1]; i++) {
      const len = runs[i];
      if ((i - offsets[r]) & 1 && len) {
        const a = pos, b = pos + len - 1;
        const ya = (a / w) | 0, yb = (b / w) | 0;
        if (ya < y0) y0 = ya;
        if (yb > y1) y1 = yb;
        if (ya !== yb) { x0 = 0; x1 = w - 1; } else {
          if (a - ya * w < x0) x0 = a - ya * w;
          if (b - yb * w > x1) x1 = b - yb * w;
        }
      }
      pos += len;
    }
    boxes.set(x1 < 0 ? [0, 0, 0, 0] : [x0, y0, x1 + 1, y1 + 1], 4 * r);
  }
  return boxes;
}

async function decodePhoto(b64, w, h) {
  const blob = new Blob([bytesOf(b64)], { type: 'image/jpeg' });
  const bitmap = await createImageBitmap(blob);
  const scratch = new OffscreenCanvas(w, h);
  const g = scratch.getContext('2d');
  g.drawImage(bitmap, 0, 0, w, h);
  return g.getImageData(0, 0, w, h).data;
}

function loadScores(view) {
  const s = view.scores;
  const probs = arrayOf(s.probabilities);
  return {
    n: view.num_regions, c: s.classes.length, k: s.num_keywords, e: s.num_exclusions,
    probs, keywords: view.keywords, exclusions: view.exclusions, query: view.query,
  };
}

async function loadRegions(view) {
  const m = view.masks;
  const n = view.num_regions, w = m.width, h = m.height;
  const offsets = arrayOf(m.offsets), runs = arrayOf(m.runs);
  return {
    n, w, h, offsets, runs,
    boxes: regionBoxes(n, offsets, runs, w),
    overlaps: overlapIndex(n, view.overlaps),
    photo: await decodePhoto(m.photo_jpeg_base64, w, h),
    imageWh: [view.width, view.height],
  };
}

// -- painting ------------------------------------------------------------------------------
const state = {
  spec: null, regions: null, scores: null, result: null, resultKey: '', token: 0,
  pending: false, buffers: null,
};

function buffersFor(w, h) {
  if (state.buffers && state.buffers.w === w && state.buffers.h === h) return state.buffers;
  const size = w * h;
  const identity = new Int32Array(size + 1);
  for (let i = 0; i <= size; i++) identity[i] = i;
  state.buffers = {
    w, h, identity, next: new Int32Array(size + 1), label: new Int32Array(size),
    inner: new Uint8Array(size), kind: new Uint8Array(size), edge: new Uint8Array(size), image: new ImageData(w, h),
  };
  return state.buffers;
}

// Which match is on top at each pixel: matches in z-order (best on top; among equal
// scores, the later one, as render_overlay draws them), each pixel painted once by
// skipping covered pixels through a union-find "next uncovered pixel" array.
function labelPixels(regions, matches, buf) {
  const { offsets, runs } = regions;
  const next = buf.next, label = buf.label;
  next.set(buf.identity);
  label.fill(-1);
  const order = matches.map((_, i) => i);
  order.sort((a, b) => matches[a].score - matches[b].score || a - b);
  const size = regions.w * regions.h;
  let covered = 0;
  const find = (x) => {
    let root = x;
    while (next[root] !== root) root = next[root];
    while (next[x] !== root) { const up = next[x]; next[x] = root; x = up; }
    return root;
  };
  for (let o = order.length - 1; o >= 0 && covered < size; o--) {
    const mi = order[o];
    for (const r of matches[mi].region_indices) {
      let pos = 0;
      for (let i = offsets[r], end = offsets[r + 1]; i < end; i++) {
        const len = runs[i];
        if ((i - offsets[r]) & 1) {
          const stop = pos + len;
          let x = find(pos);
          while (x < stop) {
            label[x] = mi; next[x] = x + 1; covered++;
            x = find(x + 1);
          }
        }
        pos += len;
      }
    }
  }
}

function contourWidth(h, w) { return Math.max(2, Math.round(Math.min(h, w) / 400)); }

// Per pixel, once per new set of matches: its top match's colour (`kind`, 1-based index
// into `palette`, 0 for none) and whether it lies on that match's inner boundary (`edge`,
// within the contour width of a pixel of another match or of the image's edge).
function classify(regions, matches, palette, buf) {
  const { w, h } = regions;
  const label = buf.label, kind = buf.kind, edge = buf.edge, inner = buf.inner;
  const colourOf = new Uint8Array(matches.length);
  matches.forEach((m, i) => { colourOf[i] = palette.indexOf(m.keyword) + 1; });
  const size = w * h;
  for (let p = 0; p < size; p++) { const l = label[p]; kind[p] = l < 0 ? 0 : colourOf[l]; }
  inner.fill(0);
  for (let y = 1; y < h - 1; y++) {
    for (let x = 1, p = y * w + 1; x < w - 1; x++, p++) {
      const l = label[p];
      if (l >= 0 && label[p - 1] === l && label[p + 1] === l && label[p - w] === l && label[p + w] === l) inner[p] = 1;
    }
  }
  const wide = contourWidth(h, w) >= 2;
  for (let p = 0; p < size; p++) {
    if (!kind[p]) { edge[p] = 0; continue; }
    let interior = inner[p];
    if (interior && wide) {
      interior = inner[p - 1] & inner[p + 1] & inner[p - w] & inner[p + w];
    }
    edge[p] = interior ? 0 : 1;
  }
}

// The picture: the photo, each covered pixel blended once with its top match's colour at
// `alpha` (render.py `_blend_into`'s rounding, in float32 as numpy does it), contours opaque.
function composite(regions, palette, colors, alpha, contours, buf) {
  const { w, h, photo } = regions;
  const kind = buf.kind, edge = buf.edge, out = buf.image.data;
  out.set(photo);
  const tables = new Uint8Array((palette.length + 1) * 768);
  const solid = new Uint8Array((palette.length + 1) * 3);
  const keep = Math.fround(1 - alpha);
  palette.forEach((kw, i) => {
    const c = colors.get(kw), base = (i + 1) * 768;
    for (let ch = 0; ch < 3; ch++) {
      solid[(i + 1) * 3 + ch] = c[ch];
      const shade = Math.fround(c[ch] * Math.fround(alpha));
      for (let v = 0; v < 256; v++) tables[base + ch * 256 + v] = Math.floor(Math.fround(Math.fround(Math.fround(v * keep) + shade) + 0.5));
    }
  });
  for (let p = 0, q = 0, size = w * h; p < size; p++, q += 4) {
    const k = kind[p];
    if (k === 0) continue;
    if (contours && edge[p] === 1) {
      out[q] = solid[k * 3]; out[q + 1] = solid[k * 3 + 1]; out[q + 2] = solid[k * 3 + 2];
    } else {
      const t = k * 768;
      out[q] = tables[t + out[q]]; out[q + 1] = tables[t + 256 + out[q + 1]]; out[q + 2] = tables[t + 512 + out[q + 2]];
    }
  }
}

function textColorOn(c) { return 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2] > 140 ? '#000' : '#fff'; }
function fontPx(h, w) { return Math.max(12, Math.round(Math.min(h, w) / 40)); }
const MAX_LABELS = 60;

function drawLabels(g, regions, matches, colors, px, taken) {
  const { w, h, boxes } = regions;
  const pad = Math.max(2, Math.floor(px / 5));
  g.font = `${px}px sans-serif`;
  g.textBaseline = 'top';
  const placed = [];
  for (const m of matches.slice(0, MAX_LABELS)) {
    let x0 = w, y0 = h, x1 = 0, y1 = 0;
    for (const r of m.region_indices) {
      const b = boxes.subarray(4 * r, 4 * r + 4);
      if (b[2] <= b[0]) continue;
      x0 = Math.min(x0, b[0]); y0 = Math.min(y0, b[1]); x1 = Math.max(x1, b[2]); y1 = Math.max(y1, b[3]);
    }
    if (x1 <= x0 || y1 <= y0) continue;
    const text = `${m.keyword} ${m.score.toFixed(2)}`;
    const lw = Math.ceil(g.measureText(text).width) + 2 * pad, lh = px + 2 * pad;
    const lx = Math.min(Math.max(x0, 0), Math.max(0, w - lw));
    let y = y0 - lh < 0 ? y0 : y0 - lh;
    y = Math.min(Math.max(y, 0), Math.max(0, h - lh));
    let rect = [lx, y, lx + lw, y + lh];
    for (let i = 0; i < 8; i++) {
      const clash = taken.find((o) => o[0] < rect[2] && rect[0] < o[2] && o[1] < rect[3] && rect[1] < o[3]);
      if (!clash || clash[3] + lh > h) break;
      rect = [lx, clash[3], lx + lw, clash[3] + lh];
    }
    taken.push(rect);
    placed.push([rect, text, colors.get(m.keyword)]);
  }
  for (const [rect, text, color] of placed.reverse()) {
    g.fillStyle = `rgb(${color})`;
    g.fillRect(rect[0], rect[1], rect[2] - rect[0], rect[3] - rect[1]);
    g.fillStyle = textColorOn(color);
    g.fillText(text, rect[0] + pad, rect[1] + pad);
  }
}

function drawLegend(g, regions, keywords, matches, colors, px) {
  const pad = Math.max(4, Math.floor(px / 3)), sw = px;
  g.font = `${px}px sans-serif`;
  g.textBaseline = 'top';
  const counts = new Map();
  for (const m of matches) counts.set(m.keyword, (counts.get(m.keyword) || 0) + 1);
  const nameW = Math.max(...keywords.map((k) => g.measureText(k).width));
  const countW = Math.max(...keywords.map((k) => g.measureText(String(counts.get(k) || 0)).width));
  const panelW = Math.ceil(5 * pad + sw + nameW + countW), rowH = px + 2;
  const panelH = 2 * pad + keywords.length * rowH + (keywords.length - 1) * Math.floor(pad / 2);
  const x0 = Math.max(0, regions.w - pad - panelW);
  g.fillStyle = 'rgba(24, 24, 24, 0.75)';
  g.fillRect(x0, pad, panelW, panelH);
  let y = 2 * pad;
  for (const kw of keywords) {
    const n = counts.get(kw) || 0, c = colors.get(kw);
    g.strokeStyle = `rgb(${c})`; g.lineWidth = 2;
    g.strokeRect(x0 + pad + 1, y + 1, sw - 2, sw - 2);
    if (n) { g.fillStyle = `rgb(${c})`; g.fillRect(x0 + pad, y, sw, sw); }
    g.fillStyle = n ? '#fff' : 'rgb(150,150,150)';
    g.fillText(kw, x0 + 2 * pad + sw, y);
    const cw = g.measureText(String(n)).width;
    g.fillText(String(n), x0 + panelW - pad - cw, y);
    y += rowH + Math.floor(pad / 2);
  }
  return [x0, pad, x0 + panelW, pad + panelH];
}

function drawBanner(g, regions, text, px) {
  const pad = Math.max(3, Math.floor(px / 3)), stripH = Math.min(regions.h, px + 2 * pad);
  g.fillStyle = 'rgb(150, 0, 0)';
  g.fillRect(0, regions.h - stripH, regions.w, stripH);
  g.fillStyle = '#fff'; g.font = `${px}px sans-serif`; g.textBaseline = 'top';
  g.fillText(text, pad, regions.h - stripH + pad, regions.w - 2 * pad);
  return [0, regions.h - stripH, regions.w, regions.h];
}

function drawRefinement(g, regions, spec) {
  const { w, h } = regions;
  for (const mask of spec.refined || []) {
    if (mask.width !== w || mask.height !== h) continue;
    const image = g.getImageData(0, 0, w, h), d = image.data;
    const inside = new Uint8Array(w * h);
    let pos = 0;
    mask.runs.forEach((len, i) => { if (i & 1) inside.fill(1, pos, pos + len); pos += len; });
    for (let p = 0; p < w * h; p++) {
      if (!inside[p]) continue;
      const x = p % w, y = (p / w) | 0;
      const edge = x === 0 || y === 0 || x === w - 1 || y === h - 1 || !inside[p - 1] || !inside[p + 1] || !inside[p - w] || !inside[p + w];
      const q = 4 * p;
      if (edge) { d[q] = 0; d[q + 1] = 120; d[q + 2] = 255; } else {
        d[q] = Math.floor(0.45 * d[q]); d[q + 1] = Math.floor(0.45 * d[q + 1] + 0.55 * 220); d[q + 2] = Math.floor(0.45 * d[q + 2] + 0.55 * 255);
      }
    }
    g.putImageData(image, 0, 0);
  }
  const [iw, ih] = regions.imageWh, r = Math.max(4, Math.round(Math.min(w, h) / 80));
  for (const [px, py, lab] of spec.points || []) {
    const cx = (px * w) / iw, cy = (py * h) / ih;
    g.beginPath(); g.arc(cx, cy, r, 0, 2 * Math.PI);
    g.fillStyle = lab === 1 ? 'rgb(34,197,94)' : 'rgb(239,68,68)'; g.fill();
    g.strokeStyle = '#fff'; g.lineWidth = 2; g.stroke();
    g.beginPath(); g.moveTo(cx - r / 2, cy); g.lineTo(cx + r / 2, cy);
    if (lab === 1) { g.moveTo(cx, cy - r / 2); g.lineTo(cx, cy + r / 2); }
    g.stroke();
  }
}

// -- the controls, read from the page ------------------------------------------------------
function sliderValue(id, fallback) {
  const input = document.querySelector(`#${id} input[type=number]`) || document.querySelector(`#${id} input[type=range]`);
  const value = input ? parseFloat(input.value) : NaN;
  return Number.isFinite(value) ? Math.min(1, Math.max(0, value)) : fallback;
}
function radioValue(id, fallback) {
  const checked = document.querySelector(`#${id} input:checked`);
  return checked ? checked.value : fallback;
}
function toggle(name) {
  const box = element.querySelector(`input[data-toggle=${name}]`);
  return box ? box.checked : true;
}
function readParams() {
  return {
    threshold: sliderValue('threshold', 0.5),
    merge_threshold: sliderValue('merge', 0.7),
    alpha: sliderValue('alpha', 0.5),
    mode: radioValue('mode', 'any') === 'all' ? 'all' : 'any',
    merge_strategy: radioValue('merge-strategy', 'nms') === 'union' ? 'union' : 'nms',
  };
}

function paint() {
  state.pending = false;
  const { regions, scores, spec } = state;
  if (!regions || !scores || !spec) return;
  const params = readParams();
  const key = JSON.stringify([scores.query, params.threshold, params.merge_threshold, params.merge_strategy, params.mode]);
  if (key !== state.resultKey) {
    state.result = matchRegions(scores, regions.overlaps, params);
    state.resultKey = key;
  }
  const matches = state.result.matches;
  const buf = buffersFor(regions.w, regions.h);
  const colorKeys = [...scores.keywords, ...matches.map((m) => m.keyword)];
  const colors = keywordColors(colorKeys);
  const keywords = [...new Set(colorKeys)];
  if (state.labelledKey !== key) {
    labelPixels(regions, matches, buf);
    classify(regions, matches, keywords, buf);
    state.labelledKey = key;
  }
  composite(regions, keywords, colors, params.alpha, toggle('contours'), buf);
  state.painted = { matches, colors, alpha: params.alpha };
  if (canvas.width !== regions.w || canvas.height !== regions.h) { canvas.width = regions.w; canvas.height = regions.h; }
  ctx2d.putImageData(buf.image, 0, 0);
  const px = fontPx(regions.h, regions.w), taken = [];
  if (spec.banner) taken.push(drawBanner(ctx2d, regions, spec.banner, px));
  if (toggle('legend') && keywords.length) taken.push(drawLegend(ctx2d, regions, keywords, matches, colors, px));
  if (toggle('labels')) drawLabels(ctx2d, regions, matches, colors, px, taken);
  if ((spec.points && spec.points.length) || (spec.refined && spec.refined.length)) drawRefinement(ctx2d, regions, spec);
  state.painted.drawn = taken;
  const text = spec.text || {};
  const r = state.result;
  status.textContent = `${text.matches || 'matches'}: ${matches.length} · ${r.image_matched ? (text.image_matched || 'image matches') : (text.image_unmatched || 'image does not match')}`;
  host.dataset.render = JSON.stringify({
    image_id: spec.image_id, keywords: scores.keywords, exclusions: scores.exclusions,
    threshold: params.threshold, merge_threshold: params.merge_threshold, alpha: params.alpha,
    mode: params.mode, merge_strategy: params.merge_strategy,
    legend: toggle('legend'), labels: toggle('labels'), contours: toggle('contours'),
    matches: matches.length, image_matched: r.image_matched, seq: ++state.token,
  });
}

// A paint right after the current task (several input events of one task coalesce); a
// frame-aligned paint would add up to a frame of latency to every move.
function schedule() {
  if (state.pending) return;
  state.pending = true;
  setTimeout(paint, 0);
}

// The gallery thumbnails and the region list follow on the server once the controls rest.
const SETTLE_MS = 600;
let settleTimer = null;
function controlsMoved() {
  schedule();
  clearTimeout(settleTimer);
  settleTimer = setTimeout(() => { if (state.spec && state.spec.image_id) trigger('settled'); }, SETTLE_MS);
}

// -- loading -------------------------------------------------------------------------------
const regionCache = new Map();  // "image|pps|side" -> regions (the last few images)

function showError(message) {
  status.textContent = message;
  host.dataset.error = message;
}

async function fetchScores(spec, keywords, exclude) {
  const view = await server.view_scores({ image_id: spec.image_id, keywords, exclude, points_per_side: spec.points_per_side });
  if (!view || view.error) { if (view && view.error) showError(view.error); return null; }
  return loadScores(view);
}

async function show(spec) {
  state.spec = spec;
  if (!spec || !spec.image_id) {
    state.regions = null; state.scores = null;
    canvas.width = 0; canvas.height = 0;
    host.dataset.render = JSON.stringify({ image_id: null, matches: 0, seq: ++state.token });
    status.textContent = '';
    return;
  }
  const key = `${spec.image_id}|${spec.points_per_side}|${spec.max_side}`;
  let regions = regionCache.get(key);
  const needScores = !state.scores || state.scores.query !== spec.query || state.scoresImage !== spec.image_id;
  if (!regions || needScores) {
    host.dataset.loading = '1';
    const view = await server.view_regions({
      image_id: spec.image_id, query: spec.query, points_per_side: spec.points_per_side, max_side: spec.max_side, masks: !regions,
    });
    if (state.spec !== spec) return;  // a newer image was asked for meanwhile
    delete host.dataset.loading;
    if (!view || view.error) { showError(view ? view.error : 'no data'); return; }
    if (!regions) {
      regions = await loadRegions(view);
      regionCache.set(key, regions);
      while (regionCache.size > 4) regionCache.delete(regionCache.keys().next().value);
    }
    state.scores = loadScores(view);
    state.scoresImage = spec.image_id;
  }
  if (state.spec !== spec) return;
  delete host.dataset.error;
  const first = !state.regions;
  state.regions = regions;
  if (first) {
    const box = host.getBoundingClientRect();
    if (box.bottom < 0 || box.top > window.innerHeight) host.scrollIntoView({ block: 'nearest' });
  }
  state.resultKey = ''; state.labelledKey = '';
  schedule();
}

async function newKeywords() {
  const spec = state.spec;
  if (!spec || !spec.image_id) return;
  const keywords = (document.querySelector('#keywords input, #keywords textarea') || {}).value || '';
  const exclude = (document.querySelector('#exclude input, #exclude textarea') || {}).value || '';
  const scores = await fetchScores(spec, keywords, exclude);
  if (!scores || state.spec !== spec) return;
  state.scores = scores;
  state.scoresImage = spec.image_id;
  state.spec = { ...spec, query: scores.query };
  state.resultKey = ''; state.labelledKey = '';
  controlsMoved();  // repaint now; the gallery and region list follow once settled
}

// -- wiring ----------------------------------------------------------------------------------
const CONTROL_IDS = ['threshold', 'merge', 'alpha', 'mode', 'merge-strategy'];
document.addEventListener('input', (event) => {
  const target = event.target;
  if (target instanceof Element && CONTROL_IDS.some((id) => target.closest(`#${id}`))) controlsMoved();
}, true);
document.addEventListener('change', (event) => {
  const target = event.target;
  if (target instanceof Element && CONTROL_IDS.some((id) => target.closest(`#${id}`))) controlsMoved();
}, true);
document.addEventListener('keydown', (event) => {
  const target = event.target;
  if (event.key === 'Enter' && target instanceof Element && (target.closest('#keywords') || target.closest('#exclude'))) newKeywords();
}, true);
element.querySelectorAll('input[data-toggle]').forEach((box) => box.addEventListener('change', schedule));

canvas.addEventListener('click', (event) => {
  const regions = state.regions;
  if (!regions) return;
  const box = canvas.getBoundingClientRect();
  const x = ((event.clientX - box.left) / box.width) * regions.imageWh[0];
  const y = ((event.clientY - box.top) / box.height) * regions.imageWh[1];
  trigger('click', { x: Math.round(x * 10) / 10, y: Math.round(y * 10) / 10, shift: event.shiftKey });
});

function applyValue() {
  let spec = null;
  try { spec = props.value ? JSON.parse(props.value) : null; } catch (error) { spec = null; }
  const text = (spec && spec.text) || {};
  element.querySelectorAll('[data-text]').forEach((node) => { if (text[node.dataset.text]) node.textContent = text[node.dataset.text]; });
  const previous = state.spec;
  if (spec && previous && spec.image_id === previous.image_id && spec.query === previous.query
      && spec.points_per_side === previous.points_per_side && state.regions) {
    state.spec = spec;  // the same picture: new clicks, refinements or language
    schedule();
    return;
  }
  show(spec).catch((error) => showError(String(error)));
}

// The largest difference between a covered pixel on screen and the photo blended once
// with its top match's colour at `alpha` (tests: overlapping matches must not stack).
function blendError(alpha) {
  const { regions, painted, buffers } = state;
  if (!regions || !painted) return null;
  const shown = ctx2d.getImageData(0, 0, regions.w, regions.h).data;
  let worst = 0;
  const drawn = painted.drawn || [];
  for (let p = 0; p < regions.w * regions.h; p++) {
    const l = buffers.label[p];
    if (l < 0) continue;
    const x = p % regions.w, y = (p / regions.w) | 0;
    if (drawn.some((r) => r[0] <= x && x < r[2] && r[1] <= y && y < r[3])) continue;
    const c = painted.colors.get(painted.matches[l].keyword);
    for (let ch = 0; ch < 3; ch++) {
      const expected = regions.photo[4 * p + ch] * (1 - alpha) + c[ch] * alpha;
      worst = Math.max(worst, Math.abs(shown[4 * p + ch] - expected));
    }
  }
  return worst;
}

window.__slViewer = {
  repaint: schedule,
  internals: { matchRegions, labelPixels, classify, composite, overlapIndex, buffersFor, keywordColors },
  blendError,
  match: (params) => (state.scores && state.regions ? matchRegions(state.scores, state.regions.overlaps, params) : null),
  state: () => ({ image_id: state.spec && state.spec.image_id, regions: state.regions && state.regions.n, pairs: state.regions && state.regions.overlaps.pairs }),
};
watch('value', applyValue);
applyValue();
