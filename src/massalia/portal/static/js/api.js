// The portal's one way to data: the JSON API, with the session cookie and, on unsafe methods, the session's
// CSRF token in X-CSRF-Token (read from the massalia_csrf cookie the API set at sign-in). Errors arrive in
// the API's one shape {"error": {code, message, details, request_id}} and are thrown as ApiError.

const config = JSON.parse(document.getElementById("massalia-portal").textContent);
const UNSAFE = new Set(["POST", "PUT", "PATCH", "DELETE"]);
const CSRF_COOKIE = "massalia_csrf";

export class ApiError extends Error {
  constructor(status, code, message, details = [], requestId = null) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.details = details;
    this.requestId = requestId;
  }
}

/** The portal's configuration, as the server rendered it into the shell. */
export function portalConfig() {
  return config;
}

function cookie(name) {
  for (const part of document.cookie.split(";")) {
    const [key, ...rest] = part.trim().split("=");
    if (key === name) return decodeURIComponent(rest.join("="));
  }
  return null;
}

/**
 * Call the API: api("POST", "/mart/count", {filters}) → the decoded JSON (null for 204).
 * options.signal aborts the call (an AbortError is thrown, never an ApiError).
 */
export async function api(method, path, body = undefined, options = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (UNSAFE.has(method)) {
    const token = cookie(CSRF_COOKIE);
    if (token) headers["X-CSRF-Token"] = token;
  }
  let response;
  try {
    response = await fetch(config.api + path, {
      method,
      headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: options.signal,
      cache: "no-store",
    });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "network", String(error.message || error));
  }
  if (response.status === 204) return null;
  let payload = null;
  try {
    payload = await response.json();
  } catch {
    payload = null;
  }
  if (!response.ok) {
    const error = (payload && payload.error) || {};
    throw new ApiError(
      response.status,
      error.code || "http_" + response.status,
      error.message || response.statusText,
      error.details || [],
      error.request_id || response.headers.get("X-Request-ID"),
    );
  }
  return payload;
}
