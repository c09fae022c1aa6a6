// Side panels (labels, versions), dialogs (help, login) and keyboard shortcuts.

const $ = (id) => document.getElementById(id);

export function hexToRgb(hex) {
  const n = parseInt(hex.slice(1), 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, props);
  for (const c of children) node.append(c);
  return node;
}

export function renderLabels(app) {
  const list = $("label-list");
  list.replaceChildren();
  app.labels.forEach((lab, i) => {
    const color = el("input", { type: "color", value: lab.color, title: "colour" });
    color.addEventListener("input", () => { lab.color = color.value; app.labelsChanged(); });
    const name = el("input", { type: "text", value: lab.name, maxLength: 64, title: "name", spellcheck: false });
    name.addEventListener("change", () => { lab.name = name.value.trim() || `label ${lab.value}`; app.labelsChanged(); });
    const eye = el("button", { className: "eye" + (lab.visible ? "" : " off"), textContent: "◉",
      title: lab.visible ? "hide" : "show" });
    eye.addEventListener("click", (e) => { e.stopPropagation(); lab.visible = !lab.visible; app.labelsChanged(false); });
    const li = el("li", { className: lab.value === app.active ? "active" : "" },
      el("span", { className: "num", textContent: i < 9 ? String(i + 1) : "" }), color, name, eye);
    li.dataset.value = String(lab.value);
    li.addEventListener("click", () => app.selectLabel(lab.value));
    list.append(li);
  });
}

export function renderVersions(app, versions) {
  const list = $("versions");
  list.replaceChildren();
  if (!versions.length) {
    list.append(el("li", { className: "empty", textContent: "no saved version yet" }));
    return;
  }
  for (const v of [...versions].reverse()) {
    const when = new Date(v.created).toLocaleString();
    const voxels = Object.values(v.voxels).reduce((a, b) => a + b, 0);
    const note = v.note ? ` · ${v.note}` : "";
    const restore = el("button", { textContent: "Restore", title: `restore version ${v.version} (saved again as a new version)` });
    restore.addEventListener("click", () => app.restoreVersion(v.version));
    const li = el("li", {},
      el("span", { className: "v", textContent: `v${v.version}` }),
      restore,
      el("span", { className: "meta", textContent: `${when} · ${voxels} px${note}` }));
    li.dataset.version = String(v.version);
    list.append(li);
  }
}

export function setupDialogs() {
  const help = $("help");
  $("help-btn").addEventListener("click", () => { help.hidden = false; });
  $("help-close").addEventListener("click", () => { help.hidden = true; });
  help.addEventListener("click", (e) => { if (e.target === help) help.hidden = true; });
  $("login-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const token = $("login-token").value.trim();
    if (token) window.location.href = `/?token=${encodeURIComponent(token)}`;
  });
}

const TOOL_KEYS = { b: "box", p: "positive_click", n: "negative_click", s: "scribble", d: "brush", e: "eraser", h: "pan" };

function typing(e) {
  const t = e.target;
  return t instanceof HTMLInputElement && t.type !== "range" && t.type !== "checkbox"
    || t instanceof HTMLSelectElement || t instanceof HTMLTextAreaElement;
}

export function installShortcuts(app) {
  window.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && !$("help").hidden) { $("help").hidden = true; return; }
    if (typing(e)) return;
    const k = e.key.toLowerCase();
    const ctrl = e.ctrlKey || e.metaKey;
    let handled = true;
    if (ctrl && k === "z") { if (e.shiftKey) app.redo(); else app.undo(); }
    else if (ctrl && k === "y") app.redo();
    else if (ctrl && k === "s") app.save();
    else if (ctrl) handled = false;
    else if (e.shiftKey && k === "p") app.propagate();
    else if (k === "a") app.autoSegment();
    else if (TOOL_KEYS[k]) app.setTool(TOOL_KEYS[k]);
    else if (e.key === "Enter") app.accept();
    else if (e.key === "Escape") app.discard();
    else if (e.key === "ArrowUp" || e.key === "ArrowRight") app.changeSlice(1);
    else if (e.key === "ArrowDown" || e.key === "ArrowLeft") app.changeSlice(-1);
    else if (e.key === "PageUp") app.changeSlice(10);
    else if (e.key === "PageDown") app.changeSlice(-10);
    else if (e.key === "+" || e.key === "=") app.viewer.zoomAt(1.25);
    else if (e.key === "-" || e.key === "_") app.viewer.zoomAt(0.8);
    else if (k === "r") app.viewer.fit();
    else if (k === "w") app.nextWindow();
    else if (k === "v") app.nextView();
    else if (k === "o") app.setOutline(!app.outline);
    else if (k === "l") app.addLabel();
    else if (e.key === ",") app.setOpacity(app.opacity - 0.1);
    else if (e.key === ".") app.setOpacity(app.opacity + 0.1);
    else if (e.key === "[") app.setBrush(app.brushSize - 2);
    else if (e.key === "]") app.setBrush(app.brushSize + 2);
    else if (e.key === "?") $("help").hidden = !$("help").hidden;
    else if (/^[1-9]$/.test(e.key) && app.labels[Number(e.key) - 1]) app.selectLabel(app.labels[Number(e.key) - 1].value);
    else handled = false;
    if (handled) e.preventDefault();
  });
}
