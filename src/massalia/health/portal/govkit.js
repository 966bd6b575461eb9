// Shared pieces of health's governance pages (projects, requests, audit, timeline): the pages' stylesheet
// (a <link>, allowed by style-src 'self'), the catalogue, tables built with DOM calls and "more" paging.

import { h } from "../../js/dom.js";
import { addCatalogue, t } from "../../js/i18n.js";

const HERE = new URL(".", import.meta.url).pathname;

/** Load the pages' catalogue (fr/en) and stylesheet once. */
export async function prepare() {
  if (!document.getElementById("gov-css")) {
    document.head.append(h("link", { rel: "stylesheet", id: "gov-css", href: HERE + "governance.css" }));
  }
  await addCatalogue(HERE + "i18n");
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
  return h("div", { class: "table-wrap", role: "region", "aria-label": caption, tabIndex: 0 }, built); // scrollable: reachable by keyboard
}

/** A labelled control: h(label) + control, with the pair linked by id. */
export function field(id, label, control, help = null) {
  control.id = id;
  const parts = [h("label", { for: id }, label), control];
  if (help) {
    const helpId = id + "-help";
    control.setAttribute("aria-describedby", helpId);
    parts.push(h("span", { class: "muted small", id: helpId }, help));
  }
  return h("div", { class: "field" }, parts);
}

/** A status line (role=status, read out politely). */
export function status(id) {
  return h("div", { id, role: "status", "aria-live": "polite" });
}

/** A date/time as the API gave it, shortened to the minute for reading (the value itself is unchanged). */
export function when(value) {
  if (!value) return "—";
  return String(value).replace("T", " ").replace(/(\d\d:\d\d):\d\d(\.\d+)?/, "$1").replace(/\+00:00$|Z$/, " UTC");
}

/** Roles of the signed-in user. */
export function hasRole(ctx, ...roles) {
  return (ctx.user.roles || []).some((role) => roles.includes(role));
}

/** Text of the catalogue for a key, or the raw value when the catalogue has no entry. */
export function tOr(key, fallback) {
  const text = t(key);
  return text === key ? fallback : text;
}
