// The JSON API of the hookline serving this page, with the API key as a Bearer header.

const KEY = "hookline.apiKey";

/** Where the API lives: the parent of /ui/, whatever prefix a proxy adds. */
export const apiRoot = new URL("../", document.baseURI);

/** An error answer of the API: {error: {code, message, details?}}. */
export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }

  /** A 404 from the router itself: the route does not exist on this server. */
  get routeMissing() {
    return this.status === 404 && this.code === "not_found" && this.message === "Not Found";
  }
}

export function storedKey() {
  return sessionStorage.getItem(KEY);
}

export function storeKey(key) {
  if (key) sessionStorage.setItem(KEY, key);
  else sessionStorage.removeItem(KEY);
}

/**
 * Call the API. Resolves to the parsed JSON (null for 204); rejects with ApiError.
 * A 401 also tells the page (the key is no longer good) through an "unauthorized" event.
 */
export async function request(method, path, { body, query, headers = {}, key } = {}) {
  const url = new URL(path.replace(/^\//, ""), apiRoot);
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, value);
  }
  const sent = { Accept: "application/json", ...headers };
  const token = key === undefined ? storedKey() : key;
  if (token) sent.Authorization = `Bearer ${token}`;
  let payload;
  if (body !== undefined) {
    sent["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, { method, headers: sent, body: payload, cache: "no-store" });
  } catch (exc) {
    throw new ApiError(0, "network_error", `hookline did not answer (${exc.message})`);
  }
  if (response.status === 204) return null;
  const type = response.headers.get("content-type") || "";
  const parsed = type.includes("json") ? await response.json() : await response.text();
  if (response.ok) return parsed;
  const error = parsed && parsed.error ? parsed.error : {};
  const failure = new ApiError(
    response.status,
    error.code || "error",
    error.message || `HTTP ${response.status}`,
    error.details,
  );
  if (response.status === 401 && key === undefined) {
    window.dispatchEvent(new CustomEvent("hookline:unauthorized", { detail: failure }));
  }
  throw failure;
}

export const get = (path, query) => request("GET", path, { query });
export const post = (path, body, options = {}) => request("POST", path, { body, ...options });
export const patch = (path, body) => request("PATCH", path, { body });
export const del = (path, query) => request("DELETE", path, { query });

/** A path segment, encoded. */
export const seg = encodeURIComponent;
