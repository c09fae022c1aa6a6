// Annotation actions of the app: prompts -> predict -> label map, brush/eraser, undo/redo,
// propagation. Mixed into App (app.js); `this` is the App. Prompts are sent as integer pixel
// indices of the view, so that the "copy as CLI" line (coords.js) is the same prompt.
import { api, rleDecodeInto } from "./api.js";
import { pixel } from "./coords.js";
import { paintDisc } from "./viewer.js";

function snapshot(p) {
  return p && { ...p, points: p.points.slice(), labels: p.labels.slice(), scribbles: p.scribbles.slice() };
}

export const annotate = {
  toolEnabled(tool) {
    if (!this.model) return false;
    const t = this.model.tools[tool];
    if (!t) return true; // viewer tools (pan) need no model support
    return t.enabled && (tool !== "propagate" || this.is3d);
  },

  // Why a tool is unavailable for the open image ("" when it is available).
  toolReason(tool) {
    const t = this.model && this.model.tools[tool];
    if (t && !t.enabled) return t.reason;
    if (tool === "propagate" && !this.is3d) return "propagation needs a 3D volume";
    return this.model ? "" : "the model is not ready";
  },

  // Start a new object (committing the current one) unless the prompt continues it.
  promptFor(newObject) {
    const index = this.indices[this.view];
    const p = this.prompt;
    if (!newObject && p && p.view === this.view && p.index === index && p.label === this.active) return p;
    this.accept();
    const before = this.volume.getSlice(this.view, index);
    this.prompt = {
      view: this.view, index, label: this.active, box: null, points: [], labels: [], scribbles: [],
      before, prevValid: false, ...(newObject ? {} : this.seedFor(before, this.active)),
    };
    return this.prompt;
  },

  onBox(box) {
    if (!this.checkTool("box")) return;
    const p = this.promptFor(true);
    p.box = box.map(pixel);
    this.requestPredict();
  },

  // Text box: a new object from a structure's name; clicks then correct it.
  onText(text) {
    if (!text || !this.checkTool("text")) return;
    const p = this.promptFor(true);
    p.text = text;
    this.requestPredict();
  },

  onClick(pt, positive) {
    if (!this.checkTool(positive ? "positive_click" : "negative_click")) return;
    const p = this.promptFor(false);
    p.points.push([pixel(pt.x), pixel(pt.y)]);
    p.labels.push(positive ? 1 : 0);
    this.requestPredict();
  },

  onScribble(points, positive) {
    if (!this.checkTool("scribble")) return;
    const p = this.promptFor(false);
    const px = points.map(([x, y]) => [pixel(x), pixel(y)])
      .filter((q, i, all) => i === 0 || q[0] !== all[i - 1][0] || q[1] !== all[i - 1][1]);
    p.scribbles.push({ points: px, label: positive ? 1 : 0 });
    this.requestPredict();
  },

  checkTool(tool) {
    if (this.toolEnabled(tool)) return true;
    this.status(`${tool.replace("_", " ")} is not available: ${this.toolReason(tool)}`, true);
    return false;
  },

  // One predict request at a time; clicks made meanwhile are sent together afterwards.
  requestPredict(propagate = false) {
    this.viewer.prompt = this.prompt;
    this.viewer.draw();
    if (this.inflight) { this.pending = this.pending || (propagate ? "propagate" : "predict"); return; }
    this.runPredict(propagate);
  },

  async runPredict(propagate) {
    this.inflight = true;
    try {
      await this.predictOnce(propagate);
    } catch (err) {
      this.status(err.message, true);
    } finally {
      this.inflight = false;
      this.busy(false);
      const next = this.pending;
      this.pending = null;
      if (next && this.prompt) this.runPredict(next === "propagate");
    }
  },

  async predictOnce(propagate) {
    const p = this.prompt;
    if (!p || (!p.box && !p.points.length && !p.scribbles.length && !p.text)) return;
    const sent = snapshot(p);
    // A text object is found once; its corrections always refine the text mask.
    const fromText = Boolean(p.text) && !p.prevValid;
    const refine = (this.refine || Boolean(p.text)) && p.prevValid && this.toolEnabled("previous_mask");
    // Corrections of an automatic mask start from it (autofill.js): sent as `mask`.
    const seeded = !refine && p.seed;
    const body = {
      view: p.view, slice_index: this.is3d ? p.index : null, box: p.box, points: p.points,
      point_labels: p.labels, scribbles: p.scribbles,
      mask_input: refine ? "previous" : seeded ? "mask" : "none", label: p.label, propagate,
    };
    if (seeded) body.mask = p.seed;
    if (fromText) { body.text = p.text; body.mask_input = "none"; }
    const t0 = performance.now();
    const timer = setTimeout(() => this.busy(true, propagate ? "propagating through the volume…" : "segmenting…"), 250);
    let res;
    try {
      res = await api("POST", `/api/sessions/${this.sessionId}/predict`, body);
    } finally {
      clearTimeout(timer);
    }
    const rtt = performance.now() - t0;
    if (this.prompt !== p) return; // discarded or replaced meanwhile
    if (res.found === false) { // nothing drawn; a click then starts the object afresh
      this.status(`"${p.text}" not found in this image (presence ${res.score.toFixed(2)}): click on it to segment it`, true);
      p.text = null;
      return;
    }
    p.prevValid = true;
    const diffs = this.applyResult(p, res);
    this.history.push({ diffs, promptBefore: this.applied, promptAfter: sent });
    this.applied = sent;
    this.sent = sent;
    if (propagate) this.accept();
    this.markDirty();
    this.showLatency(res.model_ms, res.latency_ms, rtt);
    const extent = res.propagated ? ` · slices ${res.propagated.start}–${res.propagated.stop}` : "";
    this.status(`mask: ${res.area} px, score ${res.score.toFixed(2)}${extent} — model ${Math.round(res.model_ms)} ms, round trip ${Math.round(rtt)} ms`);
    this.refreshOverlay();
  },

  applyResult(p, res) {
    const { rows, cols } = this.volume.dims(p.view);
    const mask = rleDecodeInto(res.mask, new Uint8Array(rows * cols));
    const next = (p.base || p.before).slice();
    for (let i = 0; i < mask.length; i++) if (mask[i]) next[i] = p.label;
    const diffs = [];
    const d = this.volume.writeSlice(p.view, p.index, next);
    if (d) diffs.push(d);
    if (res.propagated) {
      const { start, stop } = res.propagated;
      const block = rleDecodeInto(res.propagated.mask, new Uint8Array((stop - start + 1) * rows * cols));
      for (let z = start; z <= stop; z++) {
        if (z === p.index) continue;
        const slice = this.volume.getSlice(p.view, z);
        const off = (z - start) * rows * cols;
        let any = false;
        for (let i = 0; i < rows * cols; i++) if (block[off + i]) { slice[i] = p.label; any = true; }
        const dz = any && this.volume.writeSlice(p.view, z, slice);
        if (dz) diffs.push(dz);
      }
    }
    return diffs;
  },

  propagate() {
    if (!this.checkTool("propagate")) return;
    if (!this.prompt) { this.status("draw a box on a slice first, then propagate", true); return; }
    this.requestPredict(true);
  },

  accept() {
    if (!this.prompt) return;
    this.prompt = null;
    this.applied = null;
    this.viewer.prompt = null;
    this.viewer.draw();
  },

  discard() {
    const p = this.prompt;
    if (!p) return;
    const d = this.volume.writeSlice(p.view, p.index, p.before);
    this.history.push({ diffs: d ? [d] : [], promptBefore: this.applied, promptAfter: null });
    this.accept();
    this.sent = null;
    this.settleDirty();
    this.refreshOverlay();
    this.status("object discarded");
  },

  undo() { this.stepHistory("undo"); },
  redo() { this.stepHistory("redo"); },

  stepHistory(which) {
    const entry = which === "undo" ? this.history.undo(this.volume) : this.history.redo(this.volume);
    if (!entry) { this.status(`nothing to ${which}`); return; }
    const restored = which === "undo" ? entry.promptBefore : entry.promptAfter;
    this.prompt = restored ? { ...snapshot(restored), prevValid: false } : null;
    this.applied = restored;
    this.sent = restored;
    this.viewer.prompt = this.prompt;
    this.markDirty();
    this.settleDirty();
    this.refreshOverlay();
    this.status(which === "undo" ? "undone" : "redone");
  },

  // ---- brush and eraser -----------------------------------------------------------------
  beginPaint(erase) {
    this.accept();
    const index = this.indices[this.view];
    const original = this.volume.getSlice(this.view, index);
    this.painting = { view: this.view, index, original, slice: original.slice(), erase };
  },

  paintAt(p) {
    const s = this.painting;
    if (!s) return;
    const { rows, cols } = this.volume.dims(s.view);
    const value = s.erase ? 0 : this.active;
    if (paintDisc(s.slice, rows, cols, p.x, p.y, this.brushRadius, value, s.erase ? this.active : 0)) {
      this.volume.writeSlice(s.view, s.index, s.slice);
      this.refreshOverlay();
    }
  },

  endPaint() {
    const s = this.painting;
    this.painting = null;
    if (!s) return;
    this.volume.writeSlice(s.view, s.index, s.original);
    const d = this.volume.writeSlice(s.view, s.index, s.slice);
    if (d) {
      this.history.push({ diffs: [d], promptBefore: null, promptAfter: null });
      this.markDirty();
    }
    this.refreshOverlay();
  },
};
