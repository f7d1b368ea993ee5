// The read API from the browser: same origin, the session cookie, JSON.
// Every call is a read the archive records in its access log.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code || ("HTTP " + status));
    this.status = status;
    this.code = code;
  }
}

// onUnauthorized is called when a call answers 401 (no or expired session).
let onUnauthorized = () => {};
export function setUnauthorizedHandler(f) { onUnauthorized = f; }

// query builds "?a=b&..." from an object, leaving out empty values.
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  }
  const s = q.toString();
  return s ? "?" + s : "";
}

async function call(method, path, body) {
  const init = { method, credentials: "same-origin", headers: { "Accept": "application/json" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const r = await fetch(path, init);
  if (r.status === 204) return null;
  let data = null;
  const ct = r.headers.get("Content-Type") || "";
  if (ct.startsWith("application/json")) data = await r.json();
  if (!r.ok) {
    const err = new ApiError(r.status, data && data.error, data && data.message);
    if (r.status === 401 && path !== "/v1/session") onUnauthorized(err);
    throw err;
  }
  return data;
}

export const get = (path, params) => call("GET", path + query(params));
export const signIn = (user, password) => call("POST", "/v1/session", { user, password });
export const session = () => call("GET", "/v1/session");
export const signOut = () => call("DELETE", "/v1/session");

// exportPath is the API path of one export of a device ("site/name").
export function exportPath(device, id) {
  const [site, ...rest] = device.split("/");
  return "/v1/exports/" + encodeURIComponent(site) + "/" + encodeURIComponent(rest.join("/")) + "/" + encodeURIComponent(id);
}

// fetchFile GETs a file (a decrypted payload) past every cache (the
// API answers Cache-Control: no-store): its bytes as a Blob and its
// headers. A failed call throws ApiError as the JSON calls do.
export async function fetchFile(path, params) {
  const r = await fetch(path + query(params), { method: "GET", credentials: "same-origin", cache: "no-store" });
  if (!r.ok) {
    let data = null;
    if ((r.headers.get("Content-Type") || "").startsWith("application/json")) {
      try { data = await r.json(); } catch (e) { data = null; }
    }
    const err = new ApiError(r.status, data && data.error, data && data.message);
    if (r.status === 401) onUnauthorized(err);
    throw err;
  }
  return { blob: await r.blob(), headers: r.headers };
}

// status answers the HTTP status of a GET without reading its body
// (to learn whether an optional endpoint exists).
export async function status(path) {
  const r = await fetch(path, { method: "GET", credentials: "same-origin", headers: { "Accept": "application/json" } });
  try { await r.body.cancel(); } catch (e) { /* nothing to cancel */ }
  return r.status;
}
