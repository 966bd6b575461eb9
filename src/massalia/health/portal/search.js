// Full-text search of the clinical notes (POST /documents/search; the query travels in the body, never in a
// URL). What comes back is the API's decision: a clinician's own site with highlighted snippets, an approved
// project's scope by pseudonym (no text), else a noisy count of persons. Note text is shown as text nodes,
// its highlights as <mark> spans built from offsets: nothing from a note is ever parsed as HTML.

import { api } from "../../js/api.js";
import { h, replace } from "../../js/dom.js";
import { formatNumber, t } from "../../js/i18n.js";
import { errorBox } from "../../js/ui.js";
import { field, prepare, table } from "./govkit.js";

const PAGE_SIZE = 20;
const EMPTY = { query: "", site: "", note_type: "", date_from: "", date_to: "", project: "" };
const state = { form: { ...EMPTY }, page: 1, result: null, error: null, projects: [] };
let view = null;

async function loadProjects() {
  try {
    const page = await api("GET", "/projects?limit=500");
    state.projects = page.items.filter((p) => p.status === "approved");
  } catch {
    state.projects = []; // not every role lists projects
  }
}

function body() {
  const f = state.form;
  const out = { query: f.query, page: state.page, page_size: PAGE_SIZE };
  for (const key of ["site", "note_type", "date_from", "date_to"]) if (f[key]) out[key] = f[key];
  if (f.project) out.project_id = Number(f.project);
  return out;
}

async function search() {
  view.results.setAttribute("aria-busy", "true");
  try {
    state.result = await api("POST", "/documents/search", body());
    state.error = null;
  } catch (error) {
    state.result = null;
    state.error = error;
  }
  draw();
}

function highlighted(snippet) {
  if (!snippet) return "";
  const parts = [];
  let at = 0;
  for (const [start, end] of snippet.highlights) {
    if (start > at) parts.push(snippet.fragment.slice(at, start));
    parts.push(h("mark", {}, snippet.fragment.slice(start, end)));
    at = end;
  }
  parts.push(snippet.fragment.slice(at));
  return h("span", { class: "snippet" }, parts);
}

function facets(result) {
  const groups = Object.entries(result.facets || {}).filter(([, counts]) => Object.keys(counts).length);
  if (!groups.length) return "";
  return h("div", { class: "facets", id: "search-facets" }, groups.map(([name, counts]) =>
    h("section", { "aria-label": t(`search.facet.${name}`) }, h("h3", {}, t(`search.facet.${name}`)),
      h("ul", {}, Object.entries(counts).map(([value, n]) => h("li", {},
        h("button", { type: "button", class: "link-button", dataset: { facet: name, value },
          onclick: () => { state.form[name] = value; state.page = 1; drawForm(); search(); } }, value),
        ` ${formatNumber(n)}`))))));
}

function hitsTable(result) {
  if (result.mode === "identified") {
    const cols = [{ label: t("search.date") }, { label: t("search.site") }, { label: t("search.type") },
      { label: t("search.person"), number: true }, { label: t("search.snippet") }];
    const rows = result.hits.map((hit) => [hit.note_date || "—", hit.site || "—", hit.note_type || "—", String(hit.person_id),
      highlighted((hit.snippets || {}).note_text || (hit.snippets || {}).note_title)]);
    return table("search-hits", t("search.results"), cols, rows);
  }
  const cols = [{ label: t("search.pseudonym") }, { label: t("search.note") }, { label: t("search.shifted_date") },
    { label: t("search.deidentified_snippet") }];
  const rows = result.hits.map((hit) => [hit.person, hit.note, hit.note_date || "—",
    (hit.snippets || {}).note_text ? highlighted(hit.snippets.note_text) : "—"]);
  return table("search-hits", t("search.results"), cols, rows);
}

function draw() {
  const results = view.results;
  results.setAttribute("aria-busy", "false");
  if (state.error) {
    replace(results, errorBox(state.error));
    return;
  }
  const result = state.result;
  if (!result) {
    replace(results, "");
    return;
  }
  if (result.mode === "count") {
    const persons = result.persons === null ? t("search.below_threshold") : formatNumber(result.persons);
    replace(results, h("p", { id: "search-total", role: "status" }, t("search.count_only", { persons })),
      h("p", { class: "muted" }, t("search.count_why")));
    return;
  }
  const pages = Math.max(1, Math.ceil(result.total / result.page_size));
  replace(results,
    h("p", { id: "search-total", role: "status" }, t("search.total", { total: formatNumber(result.total), page: formatNumber(result.page), pages: formatNumber(pages) })),
    result.withheld.includes("raw_text") ? h("p", { class: "muted", id: "search-withheld" }, t("search.no_text")) : "",
    facets(result),
    result.hits.length ? hitsTable(result) : h("p", { class: "muted" }, t("search.none")),
    h("div", { class: "pager" },
      h("button", { type: "button", id: "search-prev", disabled: result.page <= 1, onclick: () => { state.page -= 1; search(); } }, t("audit.previous")),
      h("button", { type: "button", id: "search-next", disabled: result.page >= pages, onclick: () => { state.page += 1; search(); } }, t("audit.next"))));
}

function drawForm() {
  const f = state.form;
  const controls = {
    query: h("input", { type: "search", name: "query", value: f.query, required: true, maxLength: 500 }),
    site: h("input", { type: "text", name: "site", value: f.site, maxLength: 64 }),
    note_type: h("input", { type: "text", name: "note_type", value: f.note_type, maxLength: 100 }),
    date_from: h("input", { type: "date", name: "date_from", value: f.date_from }),
    date_to: h("input", { type: "date", name: "date_to", value: f.date_to }),
    project: h("select", { name: "project" }, h("option", { value: "" }, t("search.no_project")),
      state.projects.map((p) => h("option", { value: String(p.id), selected: String(p.id) === f.project }, `${p.id} · ${p.title}`))),
  };
  replace(view.form, h("form", { id: "search-form", class: "card", role: "search", "aria-label": t("search.search"), onsubmit: (e) => {
    e.preventDefault();
    for (const [name, control] of Object.entries(controls)) state.form[name] = control.value.trim();
    state.page = 1;
    search();
  } },
  h("div", { class: "filters" },
    field("search-q", t("search.query"), controls.query, t("search.query_help")),
    field("search-site", t("search.site"), controls.site),
    field("search-type", t("search.type"), controls.note_type),
    field("search-from", t("search.from"), controls.date_from),
    field("search-to", t("search.to"), controls.date_to),
    field("search-project", t("search.project"), controls.project)),
  h("div", { class: "actions" }, h("button", { type: "submit", class: "primary", id: "search-submit" }, t("search.search")))));
}

export async function render(main) {
  await prepare();
  await loadProjects();
  view = { form: h("div", {}), results: h("section", { class: "card", id: "search-results", "aria-label": t("search.results"), "aria-busy": "false" }) };
  replace(main, h("div", { class: "gov" }, h("h1", {}, t("search.title")), h("p", { class: "lead" }, t("search.lead")), view.form, view.results));
  drawForm();
  if (state.result || state.error) draw();
}
