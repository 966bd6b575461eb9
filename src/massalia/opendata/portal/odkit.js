// Shared pieces of open data's pages: the stylesheet and catalogue, CKAN Action API calls (the same API CKAN
// clients use, through the portal's one api() so the session and CSRF rules stay the portal's), and tables.

import { api, ApiError, portalConfig } from "../../js/api.js";
import { h } from "../../js/dom.js";
import { addCatalogue } from "../../js/i18n.js";

const HERE = new URL(".", import.meta.url).pathname;
export const SITE = "/opendata";
export const ACTION = "/opendata/api/3/action/";

/** Load the pages' catalogue (fr/en) and stylesheet once. */
export async function prepare() {
  if (!document.getElementById("od-css")) {
    document.head.append(h("link", { rel: "stylesheet", id: "od-css", href: HERE + "opendata.css" }));
  }
  await addCatalogue(HERE + "i18n");
}

function ckanError(error) {
  // CKAN's envelope ({success: false, error: {__type, message | field: [messages]}}) read by api() as an ApiError:
  // say which fields were wrong rather than "Conflict".
  if (error instanceof ApiError && error.status === 409 && error.message === "Conflict") error.message = "invalid input";
  return error;
}

/** A read action by GET: its ``result``. */
export async function ckan(name, params = {}) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") query.set(key, typeof value === "string" ? value : JSON.stringify(value));
  }
  try {
    return (await api("GET", `${ACTION}${name}?${query}`)).result;
  } catch (error) {
    throw ckanError(error);
  }
}

/** A write action by POST (JSON body, CSRF header added by api()): its ``result``. */
export async function ckanPost(name, body) {
  try {
    return (await api("POST", `${ACTION}${name}`, body)).result;
  } catch (error) {
    throw ckanError(error);
  }
}

function cookie(name) {
  for (const part of document.cookie.split(";")) {
    const [key, ...rest] = part.trim().split("=");
    if (key === name) return decodeURIComponent(rest.join("="));
  }
  return null;
}

/** resource_create with a file (multipart, as CKAN clients send it), with the session's CSRF token. */
export async function uploadResource(packageId, name, file) {
  const form = new FormData();
  form.append("package_id", packageId);
  form.append("name", name || file.name);
  form.append("upload", file, file.name);
  const headers = { Accept: "application/json" };
  const token = cookie("massalia_csrf");
  if (token) headers["X-CSRF-Token"] = token;
  const response = await fetch(`${portalConfig().api}${ACTION}resource_create`, { method: "POST", body: form, headers, credentials: "same-origin" });
  const payload = await response.json().catch(() => null);
  if (!response.ok || !payload || !payload.success) {
    const error = (payload && payload.error) || {};
    const message = error.message || Object.entries(error).filter(([k]) => k !== "__type").map(([k, v]) => `${k}: ${v}`).join("; ");
    throw new ApiError(response.status, error.__type || "http_" + response.status, message || response.statusText);
  }
  return payload.result;
}

/** A table: columns [{label, number}], rows of cells (strings or nodes); caption for screen readers. */
export function table(id, caption, columns, rows) {
  const built = h(
    "table",
    { class: "table", id },
    h("caption", { class: "sr-only" }, caption),
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col", class: c.number ? "number" : null }, c.label)))),
    h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((cell, i) => h("td", { class: columns[i].number ? "number" : null }, cell))))),
  );
  return h("div", { class: "table-wrap", role: "region", "aria-label": caption, tabIndex: 0 }, built);
}

/** A labelled control, linked by id. */
export function field(id, label, control) {
  control.id = id;
  return h("div", { class: "field" }, h("label", { for: id }, label), control);
}

/** The address of a dataset's page. */
export function datasetHref(name) {
  return `/portal/opendata/dataset?name=${encodeURIComponent(name)}`;
}
