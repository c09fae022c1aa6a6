// medseg browser app: plain ES modules, no build step (see docs/server.md).
import { api, ApiError, fetchBitmap, rleDecodeInto, sliceUrl } from "./api.js";
import { annotate } from "./annotate.js";
import { autoFill } from "./autofill.js";
import { cliPanel, exportFormat, sizeText, sliceText } from "./coords.js";
import { labelling } from "./labelling.js";
import { hexToRgb, installShortcuts, renderVersions, setupDialogs } from "./panels.js";
import { installTools } from "./tools.js";
import { History, LabelVolume } from "./volume.js";
import { Viewer } from "./viewer.js";

const $ = (id) => document.getElementById(id);
const VIEWS = ["axial", "coronal", "sagittal"];
const BITMAPS_KEPT = 96;

class App {
  constructor() {
    this.viewer = new Viewer($("canvas"));
    Object.assign(this, {
      tool: "box", ready: false, model: null, autoModel: null, image: null, sessionId: null, volume: null,
      view: "axial", indices: { axial: 0, coronal: 0, sagittal: 0 }, labels: [], active: 1,
      opacity: 0.45, outline: false, brushSize: 8, refine: false, prompt: null, applied: null,
      history: new History(), dirty: false, bitmaps: new Map(), win: { name: "auto", custom: false },
    });
  }

  get is3d() { return Boolean(this.image && this.image.ndim === 3); }
  get brushRadius() { return this.brushSize / 2; }

  async start() {
    setupDialogs();
    installTools($("canvas"), this.viewer, this);
    installShortcuts(this);
    this.wireControls();
    window.addEventListener("beforeunload", (e) => { if (this.dirty) e.preventDefault(); });
    try {
      const info = await api("GET", "/api/info");
      this.model = info.model;
      this.autoModel = info.auto_model || null;
      $("model-name").textContent = info.model.name + (this.autoModel ? ` + auto ${this.autoModel.name}` : "");
      $("auto").hidden = !this.autoModel;
      this.setupTools();
      await this.refreshImages();
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) { $("login").hidden = false; return; }
      this.status(err.message, true);
    }
  }

  wireControls() {
    document.querySelectorAll("[data-tool]").forEach((b) => b.addEventListener("click", () => this.setTool(b.dataset.tool)));
    document.querySelectorAll("[data-view]").forEach((b) => b.addEventListener("click", () => this.setView(b.dataset.view)));
    $("image-select").addEventListener("change", (e) => this.openImage(e.target.value));
    $("upload-btn").addEventListener("click", () => $("upload-input").click());
    $("upload-input").addEventListener("change", (e) => this.upload(e.target.files));
    $("slice").addEventListener("input", (e) => this.setIndex(Number(e.target.value)));
    $("window-select").addEventListener("change", (e) => this.setWindow(e.target.value));
    for (const id of ["level", "width"]) $(id).addEventListener("change", () => this.setCustomWindow(Number($("level").value), Number($("width").value)));
    $("zoom-in").addEventListener("click", () => this.viewer.zoomAt(1.25));
    $("zoom-out").addEventListener("click", () => this.viewer.zoomAt(0.8));
    $("zoom-fit").addEventListener("click", () => this.viewer.fit());
    $("undo").addEventListener("click", () => this.undo());
    $("redo").addEventListener("click", () => this.redo());
    $("accept").addEventListener("click", () => this.accept());
    $("discard").addEventListener("click", () => this.discard());
    $("propagate").addEventListener("click", () => this.propagate());
    $("auto").addEventListener("click", () => this.autoSegment());
    $("refine").addEventListener("change", (e) => { this.refine = e.target.checked; });
    $("text-form").addEventListener("submit", (e) => { e.preventDefault(); this.onText($("text-prompt").value.trim()); });
    $("brush-size").addEventListener("input", (e) => this.setBrush(Number(e.target.value)));
    $("opacity").addEventListener("input", (e) => this.setOpacity(Number(e.target.value) / 100));
    $("outline").addEventListener("change", (e) => this.setOutline(e.target.checked));
    $("add-label").addEventListener("click", () => this.addLabel());
    $("save").addEventListener("click", () => this.save());
    $("export").addEventListener("click", () => this.exportLabels());
    $("cli-copy").addEventListener("click", () => this.copyCli());
  }

  // Tool buttons: unsupported ones stay visible, greyed out, with the reason as tooltip.
  setupTools() {
    document.querySelectorAll("[data-tool], #propagate").forEach((b) => {
      const tool = b.dataset.tool || "propagate";
      if (!b.dataset.help) b.dataset.help = b.title;
      const why = this.toolReason(tool);
      b.setAttribute("aria-disabled", String(Boolean(why)));
      b.title = why ? `${b.dataset.help.split(":")[0].split(" (")[0]}: not available — ${why}` : b.dataset.help;
    });
    const refine = $("refine");
    refine.disabled = !this.model.tools.previous_mask.enabled;
    refine.checked = this.refine = !refine.disabled && Boolean(this.model.refine_default);
    if (refine.disabled) refine.parentElement.title = this.model.tools.previous_mask.reason;
    const text = this.model.tools.text;
    $("text-prompt").disabled = !(text && text.enabled);
    if (text && !text.enabled) $("text-form").title = `find by name: not available — ${text.reason}`;
    if (!this.toolEnabled(this.tool)) this.tool = "box";
    this.highlightTool();
  }

  setTool(tool) {
    if (!this.checkTool(tool)) return;
    this.tool = tool;
    this.highlightTool();
  }

  highlightTool() {
    document.querySelectorAll("[data-tool]").forEach((b) => b.classList.toggle("active", b.dataset.tool === this.tool));
    const c = $("canvas");
    c.classList.toggle("pan", this.tool === "pan");
    c.classList.toggle("paint", this.tool === "brush" || this.tool === "eraser");
    this.viewer.brushRadius = c.classList.contains("paint") ? this.brushRadius : 0;
    if (!this.viewer.brushRadius) this.viewer.cursor = null;
    this.viewer.draw();
  }

  // ---- images -------------------------------------------------------------------------
  async refreshImages(selectId = null) {
    const images = await api("GET", "/api/images");
    const sel = $("image-select");
    sel.replaceChildren(...images.map((im) => {
      const o = document.createElement("option");
      o.value = im.id;
      o.textContent = `${im.name}${im.versions ? `  (${im.versions} saved)` : ""}`;
      return o;
    }));
    if (!images.length) { this.status("the datastore has no images yet: upload one"); return; }
    const fromHash = new URLSearchParams(window.location.hash.slice(1)).get("image");
    const known = (i) => i && images.some((im) => im.id === i);
    const id = [selectId, this.image && this.image.id, fromHash].find(known) || images[0].id;
    sel.value = id;
    if (!this.image || this.image.id !== id) await this.openImage(id);
  }

  async openImage(id) {
    if (this.dirty && !window.confirm("Discard the unsaved changes of this image?")) {
      $("image-select").value = this.image.id;
      this.status(`kept ${this.image.name} open: save the changes (Ctrl+S) or undo them first`);
      return;
    }
    this.ready = false;
    if (this.sessionId) api("DELETE", `/api/sessions/${this.sessionId}`).catch(() => {});
    this.sessionId = null;
    this.status("opening…");
    const image = await api("GET", `/api/images/${id}`);
    window.history.replaceState(null, "", `#image=${id}`);
    Object.assign(this, { image, view: "axial", prompt: null, applied: null, sent: null, dirty: false });
    this.viewer.prompt = null;
    this.history.clear();
    this.bitmaps.clear();
    this.volume = new LabelVolume(image.shape, image.view_axes);
    for (const v of image.views) this.indices[v] = Math.floor(image.view_shapes[v][0] / 2);
    this.setupWindows();
    $("export-format").value = exportFormat(image);
    this.labels = [];
    this.setupTools();
    this.setView("axial", true);
    await this.loadLatest();
    if (!this.labels.length) this.addLabel(false);
    this.labelsChanged(false);
    this.markClean();
    this.busy(true, "computing the image embedding…");
    try {
      const s = await api("POST", "/api/sessions", { image_id: id, view: "axial", slice_index: this.is3d ? this.indices.axial : null });
      if (this.image.id !== id) return;
      this.sessionId = s.session_id;
      this.ready = true;
      this.status(`ready: ${image.name} — ${sizeText(image)} (embedding ${Math.round(s.embed_ms)} ms)`);
    } finally {
      this.busy(false);
    }
  }

  async loadLatest() {
    const versions = await api("GET", `/api/images/${this.image.id}/labels`);
    renderVersions(this, versions);
    if (!versions.length) return;
    const latest = await api("GET", `/api/images/${this.image.id}/labels/latest`);
    this.volume.data.fill(0);
    rleDecodeInto(latest.data, this.volume.data);
    this.labels = latest.version.labels.map((l) => ({ ...l, visible: true }));
    this.active = this.labels.length ? this.labels[0].value : 1;
  }

  async upload(files) {
    if (!files || !files.length) return;
    const form = new FormData();
    for (const f of files) form.append("files", f, f.name);
    this.busy(true, `uploading ${files.length} file(s)…`);
    try {
      const entry = await api("POST", "/api/images", form);
      this.status(`uploaded ${entry.name}`);
      await this.refreshImages(entry.id);
    } catch (err) {
      this.status(`upload refused: ${err.message}`, true);
    } finally {
      this.busy(false);
      $("upload-input").value = "";
    }
  }

  // ---- views, slices, window ----------------------------------------------------------
  setView(view, force = false) {
    if (!this.image || !this.image.views.includes(view)) return;
    if (view === this.view && !force) return;
    this.accept();
    this.view = view;
    document.querySelectorAll("[data-view]").forEach((b) => {
      b.classList.toggle("active", b.dataset.view === view);
      b.setAttribute("aria-disabled", String(!this.image.views.includes(b.dataset.view)));
    });
    const [depth, rows, cols] = this.image.view_shapes[view];
    const ax = this.image.view_axes[view];
    const sp = this.image.spacing;
    this.viewer.setGeometry(rows, cols, sp[ax.rows] / sp[ax.cols]);
    $("slice-bar").hidden = !this.is3d;
    $("slice").max = String(depth - 1);
    this.showSlice();
  }

  nextView() {
    if (!this.is3d) return;
    this.setView(VIEWS[(VIEWS.indexOf(this.view) + 1) % 3]);
  }

  changeSlice(delta) {
    if (this.is3d) this.setIndex(this.indices[this.view] + delta);
  }

  setIndex(index) {
    const depth = this.image.view_shapes[this.view][0];
    const i = Math.max(0, Math.min(depth - 1, index));
    if (i === this.indices[this.view]) return;
    this.indices[this.view] = i;
    this.showSlice();
    clearTimeout(this.prepareTimer);
    this.prepareTimer = setTimeout(() => this.prepare(), 300);
  }

  prepare() {
    if (!this.sessionId || !this.is3d) return;
    api("POST", `/api/sessions/${this.sessionId}/prepare`, { view: this.view, slice_index: this.indices[this.view] }).catch(() => {});
  }

  setupWindows() {
    const sel = $("window-select");
    sel.replaceChildren(...this.image.windows.map((w) => {
      const o = document.createElement("option");
      o.value = w;
      o.textContent = w.replace("_", " ");
      return o;
    }));
    this.setWindow(this.image.default_window, false);
  }

  setWindow(name, show = true) {
    const preset = this.image.window_presets[name];
    this.win = { name, custom: false, level: preset ? preset[0] : 0, width: preset ? preset[1] : 0 };
    $("window-select").value = name;
    $("level").value = preset ? String(+preset[0].toFixed(1)) : "";
    $("width").value = preset ? String(+preset[1].toFixed(1)) : "";
    if (show) this.showSlice();
  }

  nextWindow() {
    const names = this.image.windows;
    this.setWindow(names[(names.indexOf(this.win.name) + 1) % names.length]);
  }

  setCustomWindow(level, width) {
    if (!Number.isFinite(level) || !Number.isFinite(width) || width <= 0) return;
    this.win = { name: "custom", custom: true, level, width };
    $("level").value = String(+level.toFixed(1));
    $("width").value = String(+width.toFixed(1));
    this.showSlice();
  }

  adjustWindow(dx, dy, begin) {
    if (!this.image || this.image.rgb) return;
    if (begin) {
      const auto = this.image.auto_window;
      this.winStart = { level: this.win.level || auto[0], width: this.win.width || auto[1] };
      this.winDrag = { dx: 0, dy: 0 };
      return;
    }
    this.winDrag.dx += dx;
    this.winDrag.dy += dy;
    const span = Math.max(this.image.value_range[1] - this.image.value_range[0], 1e-6);
    const width = Math.max(span / 1000, this.winStart.width * Math.exp(this.winDrag.dx / 200));
    this.setCustomWindow(this.winStart.level - this.winDrag.dy * span / 800, width);
  }

  async showSlice() {
    const index = this.indices[this.view];
    $("slice").value = String(index);
    $("slice-label").textContent = this.is3d ? sliceText(this.volume, this.image, this.view, index) : "";
    const url = sliceUrl(this.image.id, this.view, index, this.win);
    this.wanted = url;
    this.refreshOverlay();
    const bitmap = await this.bitmap(url);
    if (bitmap && this.wanted === url) {
      this.viewer.bitmap = bitmap;
      this.viewer.draw();
    }
    if (this.is3d) {
      for (const d of [1, -1, 2]) {
        const j = index + d;
        if (j >= 0 && j < this.image.view_shapes[this.view][0]) this.bitmap(sliceUrl(this.image.id, this.view, j, this.win));
      }
    }
  }

  async bitmap(url) {
    if (this.bitmaps.has(url)) {
      const b = this.bitmaps.get(url);
      this.bitmaps.delete(url);
      this.bitmaps.set(url, b);
      return b;
    }
    const pending = fetchBitmap(url).catch((err) => {
      this.bitmaps.delete(url);
      this.status(err.message, true);
      return null;
    });
    this.bitmaps.set(url, pending);
    while (this.bitmaps.size > BITMAPS_KEPT) this.bitmaps.delete(this.bitmaps.keys().next().value);
    return pending;
  }

  updateCorners() {
    const im = this.image;
    if (!im) return;
    const wl = this.win.custom || this.image.window_presets[this.win.name]
      ? `W ${Math.round(this.win.width)}  L ${Math.round(this.win.level)}` : this.win.name;
    const left = [im.name, sizeText(im)];
    if (this.is3d) left.push(sliceText(this.volume, im, this.view, this.indices[this.view]));
    this.viewer.corners = { left, right: [wl] };
  }

  refreshOverlay() {
    if (!this.volume || !this.viewer.rows) return;
    const colors = new Map(this.labels.filter((l) => l.visible).map((l) => [l.value, hexToRgb(l.color)]));
    const slice = this.volume.getSlice(this.view, this.indices[this.view]);
    this.viewer.renderOverlay(slice, colors, this.opacity, this.outline);
    this.viewer.prompt = this.prompt && this.prompt.view === this.view && this.prompt.index === this.indices[this.view] ? this.prompt : null;
    this.updateCorners();
    this.updateCli();
    this.viewer.draw();
  }

  // ---- feedback -----------------------------------------------------------------------
  status(text, error = false) {
    const s = $("status-msg");
    s.textContent = text;
    s.classList.toggle("error", error);
  }

  showLatency(modelMs, serverMs, rtt) {
    const l = $("latency");
    l.textContent = `${Math.round(serverMs)} ms`;
    l.title = `last interaction: model ${Math.round(modelMs)} ms, server ${Math.round(serverMs)} ms, round trip ${Math.round(rtt)} ms`;
  }

  busy(on, text = "working…") {
    $("busy").hidden = !on;
    $("busy-text").textContent = text;
  }

  // Cursor readout in array indices (x, y[, z]), as medseg segment and the Python API take them.
  onCursor(p) {
    if (!p || !this.volume) { $("cursor").textContent = ""; return; }
    const xyz = this.volume.toArray(this.view, Math.floor(p.x), Math.floor(p.y), this.indices[this.view]);
    $("cursor").textContent = xyz.map((v, i) => `${"xyz"[i]} ${v}`).join("  ");
  }
}

Object.assign(App.prototype, annotate, labelling, autoFill, cliPanel);

const app = new App();
window.medsegApp = app;
app.start();
