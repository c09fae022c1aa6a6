// Coordinates shown to the user: the 0-based array indices (x = column, y = row, z = slice
// of the array as stored) that `medseg segment --box/--point/--scribble/--slice` and the
// Python API take, whatever orientation a view shows (docs/server.md, "Coordinates").
// The app segments view pixels (the server's view images); LabelVolume.toArray converts.

// "CT · 512 × 512 × 120": modality, then width × height (× slices) of the array: x × y (× z).
// A volume without a modality whose values look like HU (CT windows offered) reads
// "CT (guessed)", as `medseg info` says.
export function sizeText(image) {
  const dims = [...image.shape].reverse().join(" × ");
  const known = image.modality && image.modality !== "unknown";
  const guessed = !known && image.windows && image.windows.includes("soft_tissue") ? "CT (guessed)" : null;
  return `${known ? image.modality : guessed || "unknown"} · ${dims}`;
}

// The view showing the array's own z slices (array[z]), the one the CLI's --slice means.
export function sliceView(image) {
  if (image.ndim !== 3) return "axial";
  return image.views.find((v) => image.view_axes[v].depth === 0) || "axial";
}

// "axial · z 9 (0–19)": the view and its slice as an index along an array axis.
export function sliceText(volume, image, view, index) {
  const depth = image.view_shapes[view][0];
  return `${view} · ${volume.depthAxis(view)} ${index} (0–${depth - 1})`;
}

// A view pixel [col, row] as integer array indices [x, y] (2D) or [x, y, z].
function arrayIndex(volume, view, index, pt) {
  return volume.toArray(view, Math.floor(pt[0]), Math.floor(pt[1]), index);
}

const quote = (s) => `"${String(s).replace(/(["\\$`])/g, "\\$1")}"`;

// The `medseg segment` options of prompt `p` (box, clicks, scribbles, text on one view
// slice): {text} on success, {why} when the CLI cannot express it (a slice that is not
// an array z slice).
export function cliOptions(volume, image, p) {
  const is3d = image.ndim === 3;
  if (is3d && image.view_axes[p.view].depth !== 0) {
    return { why: `${p.view} slices are array ${volume.depthAxis(p.view)} planes; medseg segment takes prompts on z slices (the ${sliceView(image)} view)` };
  }
  const at = (pt) => arrayIndex(volume, p.view, p.index, pt);
  const parts = [];
  if (p.text) parts.push(`--text ${quote(p.text)}`);
  if (p.box) {
    const a = at([p.box[0], p.box[1]]);
    const b = at([p.box[2], p.box[3]]);
    parts.push(`--box ${Math.min(a[0], b[0])},${Math.min(a[1], b[1])},${Math.max(a[0], b[0])},${Math.max(a[1], b[1])}`);
  }
  p.points.forEach((pt, i) => {
    const [x, y] = at(pt);
    parts.push(`--point ${x},${y}:${p.labels[i]}`);
  });
  for (const s of p.scribbles) {
    const xy = s.points.map((pt) => at(pt).slice(0, 2).join(","));
    parts.push(`--scribble ${quote(`${xy.join(";")}:${s.label}`)}`);
  }
  if (is3d) parts.push(`--slice ${p.index}`);
  return { text: parts.join(" ") };
}

// The whole command for prompt `p` on the open image (output "seg": the input's format).
export function cliCommand(app, p) {
  const opts = cliOptions(app.volume, app.image, p);
  if (!opts.text) return opts;
  const model = app.model && app.model.name ? ` --model ${app.model.name}` : "";
  return { text: `medseg segment ${quote(app.image.name)} -o seg${model} ${opts.text}` };
}

// Export default: the image's own format (DICOM -> DICOM-SEG, a PNG/JPEG/TIFF -> PNG).
export function exportFormat(image) {
  if (image.dicom || image.format === "dicom") return "dicom-seg";
  return image.ndim === 2 && ["png", "jpeg", "tiff", "bmp"].includes(image.format) ? "png" : "nifti";
}

const $ = (id) => document.getElementById(id);

// Mixed into App (app.js); `this` is the App. `this.sent` is the last prompt sent.
export const cliPanel = {
  // The "copy as CLI" line: the last prompt sent, in the array indices medseg segment takes.
  updateCli() {
    const line = $("cli-line");
    const p = this.sent;
    const cmd = p && this.volume ? cliCommand(this, p) : null;
    line.textContent = cmd ? cmd.text || cmd.why : "draw a prompt: its medseg segment command shows here";
    line.classList.toggle("muted", !cmd || !cmd.text);
    $("cli-copy").disabled = !(cmd && cmd.text);
  },

  async copyCli() {
    const text = $("cli-line").textContent;
    try {
      await navigator.clipboard.writeText(text);
      this.status("copied the medseg segment command (array indices)");
    } catch (_) {
      const range = document.createRange();
      range.selectNodeContents($("cli-line"));
      window.getSelection().removeAllRanges();
      window.getSelection().addRange(range);
      this.status("no clipboard here: the medseg segment command is selected, copy it with Ctrl+C");
    }
  },
};

// Snap a view position to its pixel index (what the app sends and the CLI line shows).
export const pixel = (v) => Math.floor(v);
