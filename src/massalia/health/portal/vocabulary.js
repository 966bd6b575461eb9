// The vocabulary browser: the OMOP concepts by name, code or id, of a domain, vocabulary or class, standard or
// not, sorted and paged by the server (GET /vocabulary/concepts), and one concept with its ancestors,
// descendants and relationships (GET /vocabulary/concepts/{id}). Reference metadata: no person in it.

import { api } from "../../js/api.js";
import { h, replace } from "../../js/dom.js";
import { formatNumber, t } from "../../js/i18n.js";
import { definitionList, errorBox, progress } from "../../js/ui.js";
import { field, prepare, table } from "./govkit.js";

const EMPTY = { q: "", domain: "", vocabulary: "", concept_class: "", standard: false, sort: "concept_name", order: "asc" };
const state = { search: { ...EMPTY }, cursors: [null], page: null, error: null, detail: null, detailError: null };
let view = null;

function query() {
  const params = new URLSearchParams({ limit: "25" });
  for (const [key, value] of Object.entries(state.search)) if (value) params.set(key, value === true ? "true" : value);
  const cursor = state.cursors[state.cursors.length - 1];
  if (cursor) params.set("cursor", cursor);
  return params.toString();
}

async function search() {
  view.results.setAttribute("aria-busy", "true");
  try {
    state.page = await api("GET", `/vocabulary/concepts?${query()}`);
    state.error = null;
  } catch (error) {
    state.page = null;
    state.error = error;
  }
  drawResults();
}

async function openConcept(id) {
  replace(view.detail, progress(t("common.loading")));
  try {
    state.detail = await api("GET", `/vocabulary/concepts/${Number(id)}?limit=50`);
    state.detailError = null;
  } catch (error) {
    state.detail = null;
    state.detailError = error;
  }
  drawDetail();
  document.getElementById("concept-title")?.focus();
}

function conceptButton(concept) {
  return h("button", { type: "button", class: "link-button concept-link", dataset: { concept: String(concept.concept_id) },
    "aria-label": t("vocabulary.open_named", { name: concept.concept_name }), onclick: () => openConcept(concept.concept_id) }, concept.concept_name);
}

function drawResults() {
  const results = view.results;
  results.setAttribute("aria-busy", "false");
  if (state.error) {
    replace(results, errorBox(state.error));
    return;
  }
  if (!state.page) {
    replace(results, "");
    return;
  }
  const page = state.page;
  const cols = [{ label: t("vocabulary.id"), number: true }, { label: t("vocabulary.name") }, { label: t("vocabulary.domain") }, { label: t("vocabulary.vocabulary") },
    { label: t("vocabulary.class") }, { label: t("vocabulary.code") }, { label: t("vocabulary.standard") }];
  const rows = page.items.map((c) => [String(c.concept_id), conceptButton(c), c.domain_id, c.vocabulary_id, c.concept_class_id, c.concept_code, c.standard_concept || "—"]);
  replace(results,
    h("p", { id: "vocabulary-total", role: "status" }, t("vocabulary.total", { total: formatNumber(page.total), page: formatNumber(state.cursors.length) })),
    rows.length ? table("vocabulary-table", t("vocabulary.results"), cols, rows) : h("p", { class: "muted" }, t("vocabulary.none")),
    h("div", { class: "pager" },
      h("button", { type: "button", id: "vocabulary-prev", disabled: state.cursors.length <= 1, onclick: () => { state.cursors.pop(); search(); } }, t("audit.previous")),
      h("button", { type: "button", id: "vocabulary-next", disabled: !page.next, onclick: () => { state.cursors.push(page.next); search(); } }, t("audit.next"))));
}

function related(title, id, items, total, withLevels) {
  const cols = [{ label: t("vocabulary.id"), number: true }, { label: t("vocabulary.name") }, { label: t("vocabulary.vocabulary") }];
  if (withLevels) cols.push({ label: t("vocabulary.levels"), number: true });
  const rows = items.map((c) => {
    const cells = [String(c.concept_id), conceptButton(c), c.vocabulary_id || "—"];
    if (withLevels) cells.push(c.min_levels_of_separation === undefined ? "—" : `${c.min_levels_of_separation}–${c.max_levels_of_separation}`);
    return cells;
  });
  return h("section", { "aria-labelledby": id + "-title" },
    h("h3", { id: id + "-title" }, `${title} (${total === undefined ? formatNumber(items.length) : formatNumber(total)})`),
    rows.length ? table(id, title, cols, rows) : h("p", { class: "muted" }, t("vocabulary.none_related")));
}

function drawDetail() {
  if (state.detailError) {
    replace(view.detail, errorBox(state.detailError));
    return;
  }
  const d = state.detail;
  if (!d) {
    replace(view.detail, "");
    return;
  }
  const c = d.concept;
  const totals = d.totals || {};
  const relCols = [{ label: t("vocabulary.relationship") }, { label: t("vocabulary.id"), number: true }, { label: t("vocabulary.name") }, { label: t("vocabulary.vocabulary") }];
  const relRows = (d.relationships || []).map((r) => [r.relationship_id, String(r.concept_id), conceptButton(r), r.vocabulary_id || "—"]);
  replace(view.detail, h("section", { class: "card", id: "concept-detail", "aria-labelledby": "concept-title" },
    h("h2", { id: "concept-title", tabIndex: -1 }, `${c.concept_name} (${c.concept_id})`),
    definitionList([
      [t("vocabulary.domain"), c.domain_id], [t("vocabulary.vocabulary"), c.vocabulary_id], [t("vocabulary.class"), c.concept_class_id],
      [t("vocabulary.code"), c.concept_code], [t("vocabulary.standard"), c.standard_concept || "—"],
      [t("vocabulary.valid"), `${c.valid_start_date || "…"} → ${c.valid_end_date || "…"}${c.invalid_reason ? " (" + c.invalid_reason + ")" : ""}`],
    ]),
    related(t("vocabulary.ancestors"), "concept-ancestors", d.ancestors || [], totals.ancestors, true),
    related(t("vocabulary.descendants"), "concept-descendants", d.descendants || [], totals.descendants, true),
    h("section", { "aria-labelledby": "concept-relationships-title" },
      h("h3", { id: "concept-relationships-title" }, `${t("vocabulary.relationships")} (${formatNumber(totals.relationships ?? relRows.length)})`),
      relRows.length ? table("concept-relationships", t("vocabulary.relationships"), relCols, relRows) : h("p", { class: "muted" }, t("vocabulary.none_related")))));
}

function form() {
  const s = state.search;
  const text = (name) => h("input", { type: "text", name, value: s[name] });
  const controls = {
    q: h("input", { type: "search", name: "q", value: s.q }), domain: text("domain"), vocabulary: text("vocabulary"), concept_class: text("concept_class"),
    sort: h("select", { name: "sort" }, ["concept_name", "concept_id", "concept_code", "domain_id", "vocabulary_id"].map((v) => h("option", { value: v, selected: s.sort === v }, t(`vocabulary.sort.${v}`)))),
    order: h("select", { name: "order" }, ["asc", "desc"].map((v) => h("option", { value: v, selected: s.order === v }, t(`vocabulary.order.${v}`)))),
  };
  const standard = h("input", { type: "checkbox", id: "vocabulary-standard", checked: s.standard });
  return h("form", { id: "vocabulary-form", class: "card", role: "search", "aria-label": t("vocabulary.search"), onsubmit: (e) => {
    e.preventDefault();
    for (const [name, control] of Object.entries(controls)) state.search[name] = control.value.trim();
    state.search.standard = standard.checked;
    state.cursors = [null];
    search();
  } },
  h("div", { class: "filters" },
    field("vocabulary-q", t("vocabulary.q"), controls.q, t("vocabulary.q_help")),
    field("vocabulary-domain", t("vocabulary.domain"), controls.domain),
    field("vocabulary-vocabulary", t("vocabulary.vocabulary"), controls.vocabulary),
    field("vocabulary-class", t("vocabulary.class"), controls.concept_class),
    field("vocabulary-sort", t("vocabulary.sort"), controls.sort),
    field("vocabulary-order", t("vocabulary.order"), controls.order),
    h("div", { class: "field" }, h("label", { for: "vocabulary-standard" }, standard, " ", t("vocabulary.standard_only")))),
  h("div", { class: "actions" }, h("button", { type: "submit", class: "primary", id: "vocabulary-search" }, t("vocabulary.search"))));
}

export async function render(main) {
  await prepare();
  view = { results: h("section", { class: "card", id: "vocabulary-results", "aria-label": t("vocabulary.results"), "aria-busy": "false" }), detail: h("div", {}) };
  replace(main, h("div", { class: "gov" }, h("h1", {}, t("vocabulary.title")), h("p", { class: "lead" }, t("vocabulary.lead")), form(), h("div", { class: "vocabulary" }, view.results, view.detail)));
  if (state.page || state.error) drawResults();
  if (state.detail || state.detailError) drawDetail();
}
