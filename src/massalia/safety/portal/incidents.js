// The incident list (GET /safety/incidents: filtered, sorted and paginated by the server) and one incident's
// detail (GET /safety/incidents/{id}: its reports with every version, and why each report joined it). The API
// decides who reads what: narratives and parties are fetched only when the reader asks for them (each read is its
// own audited action) and a refusal is shown as the API words it. Every value is put in the page as text.

import { api } from "../../js/api.js";
import { h, replace } from "../../js/dom.js";
import { formatNumber } from "../../js/i18n.js";
import { errorBox } from "../../js/ui.js";
import { SOURCES, ZONES, field, prepare, queryString, select, t } from "./kit.js";

const PAGE_SIZE = 25;
const COLUMNS = [["occurred_at", "safety.when"], ["zone", "safety.zone"], ["type", "safety.type"],
  ["family", "safety.family"], ["source", "safety.source"]];
const RULES = ["new_incident", "same_place_time", "late_complaint", "same_address"];
let asked = 0; // the latest list request: an older answer arriving late is dropped
const state = { form: { zone: "", family: "", source: "", start: "", end: "" }, sort: "occurred_at", order: "desc",
  offset: 0, result: null, error: null, families: [], detail: null, detailError: null, personal: {} };
let view = null;

const when = (value) => (value || "—").replace("T", " ").slice(0, 16);

async function list() {
  view.list.setAttribute("aria-busy", "true");
  const filter = { ...state.form };
  const mine = ++asked;
  try {
    const result = await api("GET", `/safety/incidents?${queryString(filter, { sort: state.sort, order: state.order, limit: PAGE_SIZE, offset: state.offset })}`);
    if (mine !== asked) return;
    state.result = result;
    state.error = null;
  } catch (error) {
    if (mine !== asked) return;
    state.result = null;
    state.error = error;
  }
  drawList();
}

async function open(id, include = null) {
  view.detail.setAttribute("aria-busy", "true");
  try {
    const query = include ? `?include=${include}` : "";
    const detail = await api("GET", `/safety/incidents/${encodeURIComponent(id)}${query}`);
    if (include) state.personal[include] = { reports: detail.reports, error: null };
    else { state.detail = detail; state.personal = {}; }
    state.detailError = null;
  } catch (error) {
    if (include) state.personal[include] = { reports: null, error };
    else { state.detail = null; state.detailError = error; }
  }
  drawDetail();
  if (!include) view.detail.querySelector("h2")?.focus();
}

function sortButton(key, label) {
  const active = state.sort === key;
  const next = active && state.order === "desc" ? "asc" : "desc";
  return h("th", { scope: "col", "aria-sort": active ? (state.order === "desc" ? "descending" : "ascending") : "none" },
    h("button", { type: "button", class: "link-button", dataset: { sort: key }, onclick: () => {
      state.sort = key; state.order = active ? next : "asc"; state.offset = 0; list();
    } }, t(label), active ? (state.order === "desc" ? " ▼" : " ▲") : ""));
}

function drawList() {
  const box = view.list;
  box.setAttribute("aria-busy", "false");
  if (state.error) return replace(box, errorBox(state.error));
  const result = state.result;
  if (!result) return replace(box, "");
  const first = result.total ? result.offset + 1 : 0;
  const last = Math.min(result.offset + result.incidents.length, result.total);
  const rows = result.incidents.map((row) => h("tr", { dataset: { incident: String(row.incident_id) } },
    h("td", {}, h("button", { type: "button", class: "link-button", dataset: { open: String(row.incident_id) },
      onclick: () => open(row.incident_id) }, `#${row.incident_id}`)),
    h("td", {}, when(row.occurred_at)), h("td", {}, row.zone || "—"), h("td", {}, row.type_code || "—"),
    h("td", {}, row.family || "—"), h("td", {}, (row.sources || []).join(", ") || "—")));
  replace(box,
    h("p", { id: "safety-incidents-total", role: "status" }, t("safety.incidents_total", { first: formatNumber(first), last: formatNumber(last), total: formatNumber(result.total) })),
    h("div", { class: "table-wrap", role: "region", "aria-label": t("safety.incidents_title"), tabIndex: 0 },
      h("table", { class: "table", id: "safety-incidents" }, h("caption", { class: "sr-only" }, t("safety.incidents_title")),
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, t("safety.incident")), COLUMNS.map(([key, label]) => sortButton(key, label)))),
        h("tbody", {}, rows))),
    h("div", { class: "pager" },
      h("button", { type: "button", id: "safety-incidents-prev", disabled: result.offset <= 0, onclick: () => { state.offset = Math.max(0, state.offset - PAGE_SIZE); list(); } }, t("safety.page_previous")),
      h("button", { type: "button", id: "safety-incidents-next", disabled: last >= result.total, onclick: () => { state.offset += PAGE_SIZE; list(); } }, t("safety.next"))));
}

function personalCell(include, report) {
  const got = state.personal[include];
  if (!got || !got.reports) return null;
  const match = got.reports.find((r) => r.report_id === report.report_id);
  return match ? match[include] ?? "—" : "—";
}

function drawDetail() {
  const box = view.detail;
  box.setAttribute("aria-busy", "false");
  if (state.detailError) return replace(box, errorBox(state.detailError));
  const detail = state.detail;
  if (!detail) return replace(box, "");
  const incident = detail.incident;
  const shownFields = ["narrative", "parties"].filter((f) => state.personal[f]?.reports);
  const reports = detail.reports.map((r) => h("tr", { dataset: { report: String(r.report_id) } },
    h("td", {}, String(r.report_id)), h("td", {}, r.source), h("td", {}, r.source_id), h("td", {}, String(r.version)), h("td", {}, when(r.occurred_at)),
    h("td", {}, r.type_code || "—"), h("td", {}, r.status || "—"), h("td", {}, `${(r.source_file || "—").split("/").pop()}:${r.source_line ?? "—"}`),
    shownFields.map((f) => h("td", { class: `personal ${f}` }, personalCell(f, r)))));
  const links = detail.links.map((l) => h("li", { dataset: { rule: l.rule } },
    t(RULES.includes(l.rule) ? `safety.rule.${l.rule}` : "safety.rule.other", {
      report: String(l.report_id), matched: String(l.matched_report_id), rule: l.rule,
      minutes: l.minutes_apart === null ? "—" : formatNumber(l.minutes_apart),
      metres: l.metres_apart === null ? "—" : formatNumber(Math.round(l.metres_apart)) })));
  const refusals = ["narrative", "parties"].filter((f) => state.personal[f]?.error)
    .map((f) => h("div", { class: "refusal", dataset: { refused: f } }, errorBox(state.personal[f].error)));
  replace(box,
    h("h2", { tabIndex: -1, id: "safety-incident-title" }, t("safety.incident_title", { id: String(incident.incident_id) })),
    h("dl", { class: "facts", id: "safety-incident-facts" },
      [["safety.when", when(incident.occurred_at)], ["safety.zone", incident.zone], ["safety.type", incident.type_code],
        ["safety.family", incident.family], ["safety.source", incident.first_source]]
        .map(([key, value]) => [h("dt", {}, t(key)), h("dd", {}, value ?? "—")])),
    h("h3", {}, t("safety.history")), h("p", { class: "muted" }, t("safety.history_why")),
    h("div", { class: "table-wrap", role: "region", "aria-label": t("safety.history"), tabIndex: 0 },
      h("table", { class: "table", id: "safety-reports" }, h("caption", { class: "sr-only" }, t("safety.history")),
        h("thead", {}, h("tr", {}, ["safety.report", "safety.source", "safety.source_id", "safety.version", "safety.when", "safety.type", "safety.status", "safety.origin"]
          .map((key) => h("th", { scope: "col" }, t(key))), shownFields.map((f) => h("th", { scope: "col" }, t(`safety.field.${f}`))))),
        h("tbody", {}, reports))),
    h("h3", {}, t("safety.merged")),
    links.length ? h("ul", { id: "safety-links" }, links) : h("p", { class: "muted", id: "safety-links-none" }, t("safety.merged_none")),
    h("h3", {}, t("safety.personal")), h("p", { class: "muted" }, t("safety.personal_why")),
    h("div", { class: "actions" }, ["narrative", "parties"].map((f) => h("button", { type: "button", id: `safety-show-${f}`,
      onclick: () => open(incident.incident_id, f) }, t(`safety.show.${f}`)))),
    refusals);
}

function drawForm() {
  const f = state.form;
  const controls = {
    zone: select("zone", ZONES, f.zone, t("safety.all")),
    family: select("family", state.families, f.family, t("safety.all")),
    source: select("source", SOURCES, f.source, t("safety.all")),
    start: h("input", { type: "date", name: "start", value: f.start }),
    end: h("input", { type: "date", name: "end", value: f.end }),
  };
  replace(view.form, h("form", { id: "safety-incidents-form", class: "card", "aria-label": t("safety.filters"), onsubmit: (e) => {
    e.preventDefault();
    for (const [name, control] of Object.entries(controls)) state.form[name] = control.value.trim();
    state.offset = 0;
    list();
  } },
  h("div", { class: "filters" },
    field("safety-i-zone", t("safety.zone"), controls.zone),
    field("safety-i-family", t("safety.family"), controls.family),
    field("safety-i-source", t("safety.source"), controls.source),
    field("safety-i-start", t("safety.from"), controls.start),
    field("safety-i-end", t("safety.to"), controls.end),
    h("button", { type: "submit", class: "primary", id: "safety-i-apply" }, t("safety.apply")))));
}

export async function render(main) {
  await prepare();
  try {
    state.families = Object.keys((await api("GET", "/safety/catalogue")).families || {}).sort();
  } catch {
    state.families = [];
  }
  view = { form: h("div", {}),
    list: h("section", { class: "card", id: "safety-incidents-list", "aria-label": t("safety.incidents_title"), "aria-busy": "false" }),
    detail: h("section", { class: "card", id: "safety-incident", "aria-label": t("safety.incident"), "aria-live": "polite", "aria-busy": "false" }) };
  replace(main, h("div", { class: "safety" }, h("h1", {}, t("safety.incidents_title")), h("p", { class: "lead" }, t("safety.incidents_lead")),
    view.form, view.list, view.detail));
  drawForm();
  await list();
}
