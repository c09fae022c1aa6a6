// Mouse / pen interaction on the viewer canvas; the app object does the work:
//   app.tool, app.is3d, app.onBox(box), app.onClick(point, positive),
//   app.onScribble(points, positive), app.beginPaint(erase), app.paintAt(p), app.endPaint(),
//   app.adjustWindow(dx, dy, begin), app.changeSlice(delta), app.onCursor(p).

const SEGMENT_TOOLS = new Set(["box", "positive_click", "negative_click", "scribble"]);

export function installTools(canvas, viewer, app) {
  let drag = null;
  let spaceDown = false;

  const local = (e) => {
    const r = canvas.getBoundingClientRect();
    return { sx: e.clientX - r.left, sy: e.clientY - r.top };
  };
  const clampToImage = (p) => ({
    x: Math.min(Math.max(p.x, 0), viewer.cols - 1e-3),
    y: Math.min(Math.max(p.y, 0), viewer.rows - 1e-3),
  });

  window.addEventListener("keydown", (e) => { if (e.code === "Space" && e.target === canvas) { spaceDown = true; e.preventDefault(); } });
  window.addEventListener("keyup", (e) => { if (e.code === "Space") spaceDown = false; });
  canvas.addEventListener("contextmenu", (e) => e.preventDefault());

  canvas.addEventListener("pointerdown", (e) => {
    canvas.focus();
    const { sx, sy } = local(e);
    const p = viewer.toImage(sx, sy);
    const negative = e.button === 2 || e.altKey;
    canvas.setPointerCapture(e.pointerId);
    if (e.button === 1 || spaceDown || (app.tool === "pan" && e.button === 0)) {
      drag = { kind: "pan", sx, sy };
      canvas.classList.add("panning");
    } else if (e.shiftKey && e.button === 0) {
      drag = { kind: "window", sx, sy };
      app.adjustWindow(0, 0, true);
    } else if (!app.ready || !viewer.inside(p)) {
      drag = null;
    } else if (app.tool === "box" && e.button === 0 && !e.altKey) {
      drag = { kind: "box", start: clampToImage(p), sx, sy };
    } else if (app.tool === "scribble") {
      drag = { kind: "scribble", negative, points: [[p.x, p.y]] };
      viewer.stroke = { points: drag.points, color: negative ? "#ff9800" : "#ba68c8" };
    } else if (SEGMENT_TOOLS.has(app.tool)) {
      const positive = app.tool === "negative_click" ? false : !negative;
      app.onClick(clampToImage(p), positive);
      drag = null;
    } else if ((app.tool === "brush" || app.tool === "eraser") && e.button === 0) {
      drag = { kind: "paint", last: p };
      app.beginPaint(app.tool === "eraser");
      app.paintAt(p);
    }
    e.preventDefault();
  });

  canvas.addEventListener("pointermove", (e) => {
    const { sx, sy } = local(e);
    const p = viewer.toImage(sx, sy);
    app.onCursor(viewer.inside(p) ? p : null);
    if (app.tool === "brush" || app.tool === "eraser") {
      viewer.cursor = { x: p.x, y: p.y, erase: app.tool === "eraser" };
      viewer.draw();
    }
    if (!drag) return;
    if (drag.kind === "pan") {
      viewer.panBy(sx - drag.sx, sy - drag.sy);
      Object.assign(drag, { sx, sy });
    } else if (drag.kind === "window") {
      app.adjustWindow(sx - drag.sx, sy - drag.sy, false);
      Object.assign(drag, { sx, sy });
    } else if (drag.kind === "box") {
      const q = clampToImage(p);
      viewer.dragBox = [Math.min(drag.start.x, q.x), Math.min(drag.start.y, q.y),
        Math.max(drag.start.x, q.x), Math.max(drag.start.y, q.y)];
      viewer.draw();
    } else if (drag.kind === "scribble") {
      drag.points.push([clampToImage(p).x, clampToImage(p).y]);
      viewer.draw();
    } else if (drag.kind === "paint") {
      const step = Math.max(0.5, app.brushRadius / 2);
      const dist = Math.hypot(p.x - drag.last.x, p.y - drag.last.y);
      const n = Math.ceil(dist / step);
      for (let i = 1; i <= n; i++) {
        app.paintAt({ x: drag.last.x + (p.x - drag.last.x) * i / n, y: drag.last.y + (p.y - drag.last.y) * i / n });
      }
      drag.last = p;
    }
  });

  const finish = (e) => {
    if (!drag) return;
    const d = drag;
    drag = null;
    canvas.classList.remove("panning");
    if (d.kind === "box") {
      const box = viewer.dragBox;
      viewer.dragBox = null;
      const { sx, sy } = local(e);
      const moved = Math.hypot(sx - d.sx, sy - d.sy);
      if (box && moved > 4 && box[2] - box[0] >= 1 && box[3] - box[1] >= 1) app.onBox(box);
      else if (moved <= 4) app.onClick(d.start, true);
      viewer.draw();
    } else if (d.kind === "scribble") {
      viewer.stroke = null;
      if (d.points.length > 1) app.onScribble(d.points, !d.negative);
      viewer.draw();
    } else if (d.kind === "paint") {
      app.endPaint();
    }
  };
  canvas.addEventListener("pointerup", finish);
  canvas.addEventListener("pointercancel", finish);
  canvas.addEventListener("pointerleave", () => {
    viewer.cursor = null;
    app.onCursor(null);
    viewer.draw();
  });

  canvas.addEventListener("wheel", (e) => {
    e.preventDefault();
    const { sx, sy } = local(e);
    if (e.ctrlKey || e.metaKey || !app.is3d) {
      viewer.zoomAt(Math.exp(-e.deltaY * (e.deltaMode ? 0.05 : 0.0015)), sx, sy);
    } else {
      app.changeSlice(e.deltaY > 0 ? 1 : -1);
    }
  }, { passive: false });
}
