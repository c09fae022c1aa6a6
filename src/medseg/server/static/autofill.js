// Automatic first masks (the Auto button; `medseg serve --auto-model MODEL_DIR`), then
// corrections. Mixed into App (app.js); `this` is the App.
//
// Auto: POST /api/sessions/{id}/auto returns one mask per class of the whole image. Each class
// fills the label of the same name (an unused default label is renamed, else one is added),
// replacing that label's voxels; voxels of other labels are kept. One undo step.
// Corrections: the first click or scribble on a slice of such a label is sent with the
// label's current mask on that slice (mask_input "mask"), so it corrects the automatic mask
// instead of starting a new object; later clicks refine the previous result as usual.
import { api, rleDecodeInto, rleEncode } from "./api.js";

export const autoFill = {
  async autoSegment() {
    if (!this.autoModel) {
      this.status("no automatic model: start medseg serve with --auto-model MODEL_DIR", true);
      return;
    }
    if (!this.ready || this.autoBusy) return;
    this.accept();
    this.autoBusy = true;
    this.busy(true, `running the automatic model ${this.autoModel.name}…`);
    const t0 = performance.now();
    try {
      const res = await api("POST", `/api/sessions/${this.sessionId}/auto`, { encoding: "rle" });
      this.applyAuto(res, performance.now() - t0);
    } catch (err) {
      this.status(`automatic segmentation failed: ${err.message}`, true);
    } finally {
      this.autoBusy = false;
      this.busy(false);
    }
  },

  applyAuto(res, rtt) {
    const next = this.volume.data.slice();
    const mask = new Uint8Array(next.length);
    const filled = [];
    let first = null;
    for (const c of res.classes) {
      const label = this.labelForClass(c.name);
      if (!label) break;
      label.auto = true;
      first = first || label;
      mask.fill(0);
      rleDecodeInto(c.mask, mask);
      const v = label.value;
      for (let i = 0; i < next.length; i++) {
        if (mask[i]) { if (next[i] === 0) next[i] = v; } else if (next[i] === v) next[i] = 0;
      }
      filled.push(`${c.name} ${c.voxels} px`);
    }
    const d = this.volume.writeAll(next);
    this.history.push({ diffs: d ? [d] : [], promptBefore: null, promptAfter: null });
    if (d) this.markDirty();
    if (first) this.active = first.value;
    this.labelsChanged(false);
    this.showLatency(res.model_ms, res.latency_ms, rtt);
    this.status(`auto ${res.model}: ${filled.join(", ") || "no classes"} — correct with clicks or scribbles`);
  },

  // The label for an automatic class: same name, else an empty default label, else a new one.
  labelForClass(name) {
    const same = this.labels.find((l) => l.name === name);
    if (same) return same;
    const counts = this.volume.counts();
    const unused = this.labels.find((l) => l.name === `label ${l.value}` && !counts.get(l.value));
    if (unused) { unused.name = name; return unused; }
    const n = this.labels.length;
    this.addLabel(false);
    if (this.labels.length === n) return null; // at most 255 labels
    const added = this.labels[this.labels.length - 1];
    added.name = name;
    return added;
  },

  // {seed, base} for a new prompt on an automatic label: the label's mask on the slice (RLE,
  // sent as the previous mask) and the slice without it (the result replaces that mask).
  seedFor(before, value) {
    const label = this.labels.find((l) => l.value === value);
    if (!label || !label.auto || !this.refine || !this.toolEnabled("previous_mask")) return {};
    const seed = new Uint8Array(before.length);
    const base = before.slice();
    let any = false;
    for (let i = 0; i < before.length; i++) {
      if (before[i] === value) { seed[i] = 1; base[i] = 0; any = true; }
    }
    if (!any) return {};
    const { rows, cols } = this.volume.dims(this.view);
    return { seed: rleEncode(seed, [rows, cols]), base };
  },
};
