// Shared pieces of the pages: error messages from the API's error shape, status lines, progress.

import { h } from "./dom.js";
import { has, t } from "./i18n.js";

/** A readable message for an error: the catalogue's text for known API codes, else the API's own message. */
export function describeError(error) {
  if (!error) return "";
  if (error.name === "ApiError") {
    const key = `error.${error.code}`;
    const base = has(key) ? t(key) : error.message;
    const detail = error.code !== "unauthenticated" && has(key) && error.message ? ` (${error.message})` : "";
    return base + detail;
  }
  return String(error.message || error);
}

/** An alert box (role="alert": read out at once) for an error, with the request id for support. */
export function errorBox(error, extra = null) {
  const box = h("div", { class: "alert alert-error", role: "alert" }, h("p", {}, describeError(error)));
  if (extra) box.append(extra);
  if (error && error.requestId) box.append(h("p", { class: "muted small" }, t("error.request_id", { id: error.requestId })));
  return box;
}

/** An indeterminate progress indicator with its text, for operations that take a moment. */
export function progress(label) {
  return h("div", { class: "progress", role: "status" }, h("progress", { "aria-label": label }), h("span", {}, label));
}

/** A <dl> of [term, value] pairs. */
export function definitionList(pairs) {
  const list = h("dl", { class: "facts" });
  for (const [term, value] of pairs) list.append(h("dt", {}, term), h("dd", {}, value));
  return list;
}
