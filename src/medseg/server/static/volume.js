// The label map being edited (client side) and its undo/redo history.
//
// Labels are kept in one Uint8Array in the image's array order: (Z, Y, X) for volumes,
// (H, W) for 2D images. How each view's slices map to the array comes from the server
// (`view_axes`, see medseg/io/orientation.py): slice i of a view is index i along its `depth`
// axis; its rows and columns run along the `rows` and `cols` axes, backwards when flipped.
// `toArray` turns a view pixel into the 0-based array indices (x, y[, z]) that
// `medseg segment` and the Python API take (medseg/io/orientation.py, `view_to_array`).

export class LabelVolume {
  constructor(shape, viewAxes) {
    this.shape = shape.slice();
    this.viewAxes = viewAxes;
    this.strides = shape.length === 3 ? [shape[1] * shape[2], shape[2], 1] : [shape[1], 1];
    this.data = new Uint8Array(shape.reduce((a, b) => a * b, 1));
  }

  dims(view) {
    const ax = this.viewAxes[view];
    const depth = ax.depth === null ? 1 : this.shape[ax.depth];
    return { depth, rows: this.shape[ax.rows], cols: this.shape[ax.cols] };
  }

  // Array indices [x, y] (2D) or [x, y, z] of view pixel (col, row) on slice `index`;
  // col and row are integer pixel indices (a reversed axis maps k to n - 1 - k).
  toArray(view, col, row, index = 0) {
    const ax = this.viewAxes[view];
    const idx = new Array(this.shape.length).fill(0);
    if (ax.depth !== null) idx[ax.depth] = index;
    idx[ax.rows] = ax.flip_rows ? this.shape[ax.rows] - 1 - row : row;
    idx[ax.cols] = ax.flip_cols ? this.shape[ax.cols] - 1 - col : col;
    return idx.reverse();
  }

  // The array axis letter ("x", "y" or "z") a view's slices run along (null for 2D).
  depthAxis(view) {
    const d = this.viewAxes[view].depth;
    return d === null ? null : "zyx"[d];
  }

  // Flat indices of the voxels of one view slice, row-major over (rows, cols).
  sliceIndices(view, index) {
    const ax = this.viewAxes[view];
    const { rows, cols } = this.dims(view);
    const base = ax.depth === null ? 0 : index * this.strides[ax.depth];
    const rs = this.strides[ax.rows];
    const cs = this.strides[ax.cols];
    const out = new Int32Array(rows * cols);
    let k = 0;
    for (let r = 0; r < rows; r++) {
      const rr = ax.flip_rows ? rows - 1 - r : r;
      const rowBase = base + rr * rs;
      if (ax.flip_cols) {
        for (let c = cols - 1; c >= 0; c--) out[k++] = rowBase + c * cs;
      } else {
        for (let c = 0; c < cols; c++) out[k++] = rowBase + c * cs;
      }
    }
    return out;
  }

  getSlice(view, index) {
    const idx = this.sliceIndices(view, index);
    const out = new Uint8Array(idx.length);
    for (let i = 0; i < idx.length; i++) out[i] = this.data[idx[i]];
    return out;
  }

  // Write a whole slice; returns the change as {idx, before, after} (null if unchanged).
  writeSlice(view, index, values) {
    const idx = this.sliceIndices(view, index);
    const changed = [];
    for (let i = 0; i < idx.length; i++) if (this.data[idx[i]] !== values[i]) changed.push(i);
    if (!changed.length) return null;
    const diff = {
      idx: new Int32Array(changed.length),
      before: new Uint8Array(changed.length),
      after: new Uint8Array(changed.length),
    };
    changed.forEach((i, k) => {
      diff.idx[k] = idx[i];
      diff.before[k] = this.data[idx[i]];
      diff.after[k] = values[i];
      this.data[idx[i]] = values[i];
    });
    return diff;
  }

  // Replace the whole label map; returns the change like writeSlice (null if unchanged).
  writeAll(values) {
    const changed = [];
    for (let i = 0; i < values.length; i++) if (this.data[i] !== values[i]) changed.push(i);
    if (!changed.length) return null;
    const idx = Int32Array.from(changed);
    const diff = { idx, before: new Uint8Array(idx.length), after: new Uint8Array(idx.length) };
    idx.forEach((j, k) => {
      diff.before[k] = this.data[j];
      diff.after[k] = values[j];
      this.data[j] = values[j];
    });
    return diff;
  }

  applyDiffs(diffs, which) {
    for (const d of diffs) {
      const values = d[which];
      for (let i = 0; i < d.idx.length; i++) this.data[d.idx[i]] = values[i];
    }
  }

  counts() {
    const counts = new Map();
    for (const v of this.data) if (v) counts.set(v, (counts.get(v) || 0) + 1);
    return counts;
  }
}

// Undo/redo of label edits. Each entry holds voxel diffs plus the interactive prompt state
// before and after, so undoing a click also takes the click back.
export class History {
  constructor(limit = 100) {
    this.limit = limit;
    this.done = [];
    this.undone = [];
  }

  push(entry) {
    if (!entry.diffs.length && entry.promptBefore === entry.promptAfter) return;
    this.done.push(entry);
    if (this.done.length > this.limit) this.done.shift();
    this.undone = [];
  }

  undo(volume) {
    const entry = this.done.pop();
    if (!entry) return null;
    volume.applyDiffs([...entry.diffs].reverse(), "before");
    this.undone.push(entry);
    return entry;
  }

  redo(volume) {
    const entry = this.undone.pop();
    if (!entry) return null;
    volume.applyDiffs(entry.diffs, "after");
    this.done.push(entry);
    return entry;
  }

  clear() {
    this.done = [];
    this.undone = [];
  }
}
