// Canvas viewer: one slice image, its label overlay, prompts; zoom and pan.
// Image coordinates are pixels of the slice: x = column, y = row (pixel (c, r) covers
// [c, c + 1) x [r, r + 1)). `aspect` is row spacing / column spacing, so anisotropic
// coronal and sagittal slices are shown with their true proportions.

export class Viewer {
  constructor(canvas) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.overlay = document.createElement("canvas");
    this.bitmap = null;
    this.rows = 0;
    this.cols = 0;
    this.aspect = 1;
    this.scale = 1;
    this.ox = 0;
    this.oy = 0;
    this.prompt = null;
    this.dragBox = null;
    this.stroke = null;
    this.cursor = null;
    this.brushRadius = 0;
    this.width = 0;
    this.height = 0;
    this.corners = {};
    new ResizeObserver(() => this.resize()).observe(canvas);
  }

  resize() {
    const dpr = window.devicePixelRatio || 1;
    const w = this.canvas.clientWidth;
    const h = this.canvas.clientHeight;
    if (!w || !h) return;
    const first = !this.width;
    this.canvas.width = Math.round(w * dpr);
    this.canvas.height = Math.round(h * dpr);
    this.ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    [this.width, this.height] = [w, h];
    if (first) this.fit();
    this.draw();
  }

  setGeometry(rows, cols, aspect, keepView = false) {
    const same = rows === this.rows && cols === this.cols && aspect === this.aspect;
    Object.assign(this, { rows, cols, aspect });
    this.overlay.width = cols;
    this.overlay.height = rows;
    if (!(same && keepView)) this.fit();
  }

  fit() {
    if (!this.rows || !this.width) return;
    const s = 0.94 * Math.min(this.width / this.cols, this.height / (this.rows * this.aspect));
    this.scale = s;
    this.ox = (this.width - this.cols * s) / 2;
    this.oy = (this.height - this.rows * s * this.aspect) / 2 - 8;
    this.draw();
  }

  zoomAt(factor, sx = this.width / 2, sy = this.height / 2) {
    const p = this.toImage(sx, sy);
    this.scale = Math.min(Math.max(this.scale * factor, 0.05), 200);
    this.ox = sx - p.x * this.scale;
    this.oy = sy - p.y * this.scale * this.aspect;
    this.draw();
  }

  panBy(dx, dy) {
    this.ox += dx;
    this.oy += dy;
    this.draw();
  }

  toImage(sx, sy) {
    return { x: (sx - this.ox) / this.scale, y: (sy - this.oy) / (this.scale * this.aspect) };
  }

  toScreen(x, y) {
    return { x: this.ox + x * this.scale, y: this.oy + y * this.scale * this.aspect };
  }

  inside(p) {
    return p.x >= 0 && p.y >= 0 && p.x < this.cols && p.y < this.rows;
  }

  // Colour the label slice: colors maps a label value to [r, g, b] (hidden labels absent).
  renderOverlay(slice, colors, opacity, outline) {
    const { rows, cols } = this;
    const octx = this.overlay.getContext("2d");
    const img = octx.createImageData(cols, rows);
    const px = img.data;
    const fill = Math.round(255 * opacity);
    const edge = Math.round(255 * Math.min(1, opacity + 0.45));
    for (let r = 0, i = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++, i++) {
        const v = slice[i];
        if (!v) continue;
        const rgb = colors.get(v);
        if (!rgb) continue;
        const border = (c === 0 || slice[i - 1] !== v) || (c === cols - 1 || slice[i + 1] !== v)
          || (r === 0 || slice[i - cols] !== v) || (r === rows - 1 || slice[i + cols] !== v);
        if (outline && !border) continue;
        const o = 4 * i;
        px[o] = rgb[0]; px[o + 1] = rgb[1]; px[o + 2] = rgb[2];
        px[o + 3] = border ? edge : fill;
      }
    }
    octx.putImageData(img, 0, 0);
  }

  draw() {
    const { ctx } = this;
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, this.width, this.height);
    if (!this.rows) return;
    const w = this.cols * this.scale;
    const h = this.rows * this.scale * this.aspect;
    if (this.bitmap) {
      ctx.imageSmoothingEnabled = this.scale < 4;
      ctx.drawImage(this.bitmap, this.ox, this.oy, w, h);
    }
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(this.overlay, this.ox, this.oy, w, h);
    this.drawPrompt();
    this.drawTransient();
    this.drawCorners();
  }

  drawPrompt() {
    const p = this.prompt;
    if (!p) return;
    const { ctx } = this;
    if (p.box) this.drawBox(p.box, "#ffd54f", []);
    for (const s of p.scribbles || []) this.drawStroke(s.points, s.label ? "#ba68c8" : "#ff9800");
    (p.points || []).forEach((pt, i) => {
      const s = this.toScreen(pt[0], pt[1]);
      const positive = Boolean(p.labels[i]);
      ctx.beginPath();
      ctx.arc(s.x, s.y, 7, 0, 2 * Math.PI);
      ctx.fillStyle = positive ? "#2e7d32" : "#c62828";
      ctx.fill();
      ctx.lineWidth = 2;
      ctx.strokeStyle = "#fff";
      ctx.stroke();
      ctx.beginPath(); // + or - glyph
      ctx.moveTo(s.x - 3.5, s.y);
      ctx.lineTo(s.x + 3.5, s.y);
      if (positive) { ctx.moveTo(s.x, s.y - 3.5); ctx.lineTo(s.x, s.y + 3.5); }
      ctx.lineWidth = 1.8;
      ctx.stroke();
    });
  }

  // Corner annotations, as in radiology viewers: lines of text per corner.
  drawCorners() {
    const { ctx } = this;
    ctx.font = "12px system-ui, sans-serif";
    ctx.textBaseline = "top";
    const pad = 10;
    const lh = 16;
    const corners = { ...this.corners };
    if (this.rows) corners.right = [...(corners.right || []), `zoom ${Math.round(this.scale * 100)}%`];
    for (const [corner, lines] of Object.entries(corners)) {
      const right = corner.endsWith("right");
      ctx.textAlign = right ? "right" : "left";
      lines.forEach((line, i) => {
        const x = right ? this.width - pad : pad;
        const y = pad + i * lh;
        ctx.fillStyle = "rgba(0,0,0,.7)";
        ctx.fillText(line, x + 1, y + 1);
        ctx.fillStyle = "#b8c4d2";
        ctx.fillText(line, x, y);
      });
    }
    ctx.textAlign = "left";
  }

  drawTransient() {
    if (this.dragBox) this.drawBox(this.dragBox, "#ffd54f", [5, 4]);
    if (this.stroke) this.drawStroke(this.stroke.points, this.stroke.color);
    if (this.cursor && this.brushRadius) {
      const s = this.toScreen(this.cursor.x, this.cursor.y);
      const { ctx } = this;
      ctx.beginPath();
      ctx.arc(s.x, s.y, Math.max(this.brushRadius * this.scale, 2), 0, 2 * Math.PI);
      ctx.setLineDash([3, 3]);
      ctx.lineWidth = 1.2;
      ctx.strokeStyle = this.cursor.erase ? "#ef9a9a" : "#e0f7fa";
      ctx.stroke();
      ctx.setLineDash([]);
    }
  }

  drawBox(box, color, dash) {
    const a = this.toScreen(box[0], box[1]);
    const b = this.toScreen(box[2], box[3]);
    const { ctx } = this;
    ctx.setLineDash(dash);
    ctx.lineWidth = 1.6;
    ctx.strokeStyle = "rgba(0,0,0,.6)";
    ctx.strokeRect(a.x + 1, a.y + 1, b.x - a.x, b.y - a.y);
    ctx.strokeStyle = color;
    ctx.strokeRect(a.x, a.y, b.x - a.x, b.y - a.y);
    ctx.setLineDash([]);
  }

  drawStroke(points, color) {
    if (!points.length) return;
    const { ctx } = this;
    ctx.beginPath();
    points.forEach((pt, i) => {
      const s = this.toScreen(pt[0], pt[1]);
      if (i) ctx.lineTo(s.x, s.y); else ctx.moveTo(s.x, s.y);
    });
    ctx.lineWidth = 2.5;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.strokeStyle = color;
    ctx.stroke();
  }
}

// Paint a disc of `radius` pixels (in slice pixels) into a label slice; returns whether
// anything changed. `value` 0 erases only `only` (the active label) when given.
export function paintDisc(slice, rows, cols, cx, cy, radius, value, only = 0) {
  let changed = false;
  const r2 = radius * radius;
  const y0 = Math.max(0, Math.floor(cy - radius));
  const y1 = Math.min(rows - 1, Math.ceil(cy + radius));
  const x0 = Math.max(0, Math.floor(cx - radius));
  const x1 = Math.min(cols - 1, Math.ceil(cx + radius));
  for (let y = y0; y <= y1; y++) {
    for (let x = x0; x <= x1; x++) {
      const dx = x + 0.5 - cx;
      const dy = y + 0.5 - cy;
      if (dx * dx + dy * dy > r2) continue;
      const i = y * cols + x;
      if (value === 0 && only && slice[i] !== only) continue;
      if (slice[i] !== value) { slice[i] = value; changed = true; }
    }
  }
  return changed;
}
