// Shared pieces of the safety pages: the catalogue, the incident filter form, SVG nodes, query strings.

import { h } from "../../js/dom.js";
import { addCatalogue, t } from "../../js/i18n.js";

const HERE = new URL(".", import.meta.url).pathname;
const SVG = "http://www.w3.org/2000/svg";
export const ZONES = Array.from({ length: 16 }, (_, i) => `D${String(i + 1).padStart(2, "0")}`);
export const SOURCES = ["mc", "csu", "dtp"];

/** Load the pages' catalogue (fr/en) and stylesheet once. */
export async function prepare() {
  if (!document.getElementById("safety-css")) {
    document.head.append(h("link", { rel: "stylesheet", id: "safety-css", href: HERE + "safety.css" }));
  }
  await addCatalogue(HERE + "i18n");
}

/** An SVG element (attributes set as attributes: no inline style, the CSP allows none). */
export function s(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === "") continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** A labelled control. */
export function field(id, label, control) {
  control.id = id;
  return h("div", { class: "field" }, h("label", { for: id }, label), control);
}

/** A select of codes with an "all" first option. */
export function select(name, values, chosen, allLabel) {
  return h("select", { name }, h("option", { value: "" }, allLabel),
    values.map((v) => h("option", { value: v, selected: v === chosen }, v)));
}

/** The filter as the API's query string (GET routes: codes and dates only, never a free text). */
export function queryString(filter, extra = {}) {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries({ ...filter, ...extra })) if (value) params.append(key, value);
  return params.toString();
}

/** A count as released: a number, or "<threshold" when masked. */
export function shown(value, threshold, format) {
  if (value === null || value === undefined) return threshold ? `<${threshold}` : "—";
  return format(value);
}

export { t };
