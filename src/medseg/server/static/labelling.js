// Labels, saving, version history and export. Mixed into App (app.js); `this` is the App.
import { api, rleEncode } from "./api.js";
import { renderLabels, renderVersions } from "./panels.js";

const $ = (id) => document.getElementById(id);
// Label colours (as medseg/io/overlay.py PALETTE): the first, cyan, stays visible on gray
// CT/MR and on red/pink H&E slides alike; red comes late.
const PALETTE = ["#00e5ff", "#ffe119", "#3cb44b", "#f58231", "#4363d8", "#f032e6", "#bcf60c", "#e6194b", "#911eb4", "#fabebe"];
const labelsKey = (labels) => JSON.stringify(labels.map(({ value, name, color }) => [value, name, color]));

export const labelling = {
  // ---- labels -------------------------------------------------------------------------
  addLabel(select = true) {
    const value = this.labels.reduce((m, l) => Math.max(m, l.value), 0) + 1;
    if (value > 255) { this.status("at most 255 labels", true); return; }
    this.labels.push({ value, name: `label ${value}`, color: PALETTE[(value - 1) % PALETTE.length], visible: true });
    if (select || this.labels.length === 1) this.active = value;
    this.labelsChanged(false);
  },

  selectLabel(value) {
    this.accept();
    this.active = value;
    renderLabels(this);
  },

  labelsChanged(dirty = true) {
    if (dirty) this.markDirty();
    renderLabels(this);
    this.refreshOverlay();
  },

  setOpacity(v) {
    this.opacity = Math.max(0, Math.min(1, v));
    $("opacity").value = String(Math.round(this.opacity * 100));
    $("opacity-out").textContent = `${Math.round(this.opacity * 100)}%`;
    this.refreshOverlay();
  },

  setOutline(on) {
    this.outline = on;
    $("outline").checked = on;
    this.refreshOverlay();
  },

  setBrush(size) {
    this.brushSize = Math.max(1, Math.min(60, size));
    $("brush-size").value = String(this.brushSize);
    $("brush-size-out").textContent = String(this.brushSize);
    this.highlightTool();
  },

  // ---- save, versions, export ---------------------------------------------------------
  markDirty() {
    this.dirty = true;
    $("save").textContent = "Save version •";
  },

  // The labels as last loaded or saved are the clean state (kept to compare against).
  markClean() {
    this.dirty = false;
    $("save").textContent = "Save version";
    this.clean = { data: this.volume.data.slice(), labels: labelsKey(this.labels) };
  },

  // After a discard or undo: back to the saved labels -> no unsaved changes.
  settleDirty() {
    const c = this.clean;
    if (!this.dirty || !c || c.labels !== labelsKey(this.labels)) return;
    const data = this.volume.data;
    for (let i = 0; i < data.length; i++) if (data[i] !== c.data[i]) return;
    this.dirty = false;
    $("save").textContent = "Save version";
  },

  async save() {
    if (!this.image) return null;
    this.accept();
    const body = {
      labels: this.labels.map(({ value, name, color }) => ({ value, name, color })),
      data: rleEncode(this.volume.data, this.image.shape),
      note: $("note").value.trim(),
    };
    try {
      const v = await api("POST", `/api/images/${this.image.id}/labels`, body);
      this.markClean();
      $("note").value = "";
      renderVersions(this, await api("GET", `/api/images/${this.image.id}/labels`));
      this.status(`saved version ${v.version} (${v.file})`);
      return v;
    } catch (err) {
      this.status(`save failed: ${err.message}`, true);
      return null;
    }
  },

  async restoreVersion(version) {
    if (this.dirty && !window.confirm("Discard the unsaved changes and restore this version?")) return;
    const v = await api("POST", `/api/images/${this.image.id}/labels/${version}/restore`);
    this.accept();
    this.history.clear();
    await this.loadLatest();
    this.markClean();
    renderLabels(this);
    this.refreshOverlay();
    this.status(`restored version ${version} as version ${v.version}`);
  },

  async exportLabels() {
    if (!this.image) return;
    if (this.dirty && !(await this.save())) return;
    const format = $("export-format").value;
    const q = new URLSearchParams({ format });
    if (format === "png" && this.is3d) { q.set("view", this.view); q.set("index", String(this.indices[this.view])); }
    const url = `/api/images/${this.image.id}/labels/latest/export?${q}`;
    const response = await fetch(url, { credentials: "same-origin" });
    if (!response.ok) {
      let detail = response.statusText;
      try { detail = (await response.json()).detail; } catch (_) { /* keep */ }
      this.status(`export failed: ${detail}`, true);
      return;
    }
    const name = (response.headers.get("Content-Disposition") || "").match(/filename="([^"]+)"/);
    const a = document.createElement("a");
    a.href = URL.createObjectURL(await response.blob());
    a.download = name ? name[1] : "labels";
    a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
    this.status(`exported ${a.download}`);
  },
};
