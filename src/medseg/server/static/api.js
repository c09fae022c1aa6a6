// REST client and mask codecs of the medseg browser app.
// The access token travels in the HttpOnly cookie the server sets from /?token=...,
// so requests here need no Authorization header.

export class ApiError extends Error {
  constructor(status, detail) {
    super(typeof detail === "string" ? detail : JSON.stringify(detail));
    this.status = status;
  }
}

function errorText(body) {
  if (!body) return "";
  if (typeof body.detail === "string") return body.detail;
  if (Array.isArray(body.detail)) {
    return body.detail.map((d) => `${(d.loc || []).slice(1).join(".")}: ${d.msg}`).join("; ");
  }
  return JSON.stringify(body);
}

export async function api(method, path, body = undefined) {
  const init = { method, credentials: "same-origin", headers: {} };
  if (body instanceof FormData) {
    init.body = body;
  } else if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = errorText(await response.json()) || detail; } catch (_) { /* not JSON */ }
    throw new ApiError(response.status, detail);
  }
  return response.status === 204 ? null : response.json();
}

export async function fetchBitmap(url, signal) {
  const response = await fetch(url, { credentials: "same-origin", signal });
  if (!response.ok) throw new ApiError(response.status, response.statusText);
  return createImageBitmap(await response.blob());
}

// Run-length codec (see medseg/server/encoding.py): values[i] repeated counts[i] times,
// C order (last axis fastest).
export function rleDecodeInto(mask, out) {
  if (mask.encoding !== "rle") throw new Error(`unsupported mask encoding ${mask.encoding}`);
  let pos = 0;
  const { values, counts } = mask;
  for (let i = 0; i < values.length; i++) {
    const n = counts[i];
    if (values[i]) out.fill(values[i], pos, pos + n);
    pos += n;
  }
  if (pos !== out.length) throw new Error(`mask has ${pos} pixels, expected ${out.length}`);
  return out;
}

export function rleEncode(arr, shape) {
  const values = [];
  const counts = [];
  let n = arr.length;
  if (n === 0) return { encoding: "rle", shape, values, counts };
  let current = arr[0];
  let run = 0;
  for (let i = 0; i < n; i++) {
    const v = arr[i];
    if (v === current) { run++; continue; }
    values.push(current); counts.push(run);
    current = v; run = 1;
  }
  values.push(current); counts.push(run);
  return { encoding: "rle", shape, values, counts };
}

export function sliceUrl(imageId, view, index, win) {
  const q = new URLSearchParams({ view, index: String(index) });
  if (win.custom) {
    q.set("level", String(win.level));
    q.set("width", String(win.width));
  } else {
    q.set("window", win.name);
  }
  return `/api/images/${imageId}/slice?${q}`;
}
