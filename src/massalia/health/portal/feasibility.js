// Feasibility, quick mode: filters on the research mart's variables (grouped as the catalogue groups them),
// a live count (debounced) and a breakdown chart, each number shown exactly as the API released it for
// this user: exact for members of an approved project, otherwise noisy and rounded, or suppressed, with
// the privacy budget it cost. Data comes only from the API: GET /mart/variables, GET /projects,
// POST /mart/count and POST /mart/breakdown.

import { api } from "../../js/api.js";
import { barChart } from "../../js/charts.js";
import { debounce, h, replace } from "../../js/dom.js";
import { addCatalogue, formatNumber, t } from "../../js/i18n.js";
import { errorBox, progress } from "../../js/ui.js";
import { FilterEditor, groupLabel, valueLabel, variableGroups, variableLabel as label } from "./filters.js";

const CATALOGUE = new URL("./i18n", import.meta.url).pathname;
const DEBOUNCE_MS = 350;
const PROGRESS_AFTER_MS = 150;
const PREFERRED_BREAKDOWNS = ["primary_site", "age_group_at_diagnosis", "sex"];

// The page's state outlives a re-render (a language switch keeps the filters, held by the shared editor).
const state = {
  variables: null,
  projects: [],
  editor: null,
  projectId: "",
  by: null,
  controller: null,
  sequence: 0,
  lastCount: null,
  lastBreakdown: null,
  lastError: null,
  timing: null,
};
let view = null;

function variableNamed(name) {
  return state.variables.find((variable) => variable.name === name);
}

function groups() {
  return variableGroups(state.variables);
}

function filterSpec() {
  return state.editor.spec();
}

function changed() {
  scheduleRefresh();
}

function projectPicker() {
  const id = "feasibility-project";
  const approved = state.projects.filter((project) => project.status === "approved");
  const select = h(
    "select",
    { id, onchange: (event) => { state.projectId = event.target.value; changed(); } },
    h("option", { value: "" }, t("feasibility.no_project")),
    approved.map((project) => h("option", { value: String(project.id), selected: String(project.id) === state.projectId }, `${project.id} · ${project.title}`)),
  );
  return h("div", { class: "field" }, h("label", { for: id }, t("feasibility.project")), select,
    h("p", { class: "muted small" }, t("feasibility.project_help")));
}

function catalogueDetails() {
  return h(
    "details",
    { class: "catalogue" },
    h("summary", {}, t("feasibility.catalogue")),
    [...groups()].map(([group, variables]) =>
      h("div", { class: "catalogue-group" }, h("h3", {}, groupLabel(group)),
        h("ul", {}, variables.map((variable) => h("li", {},
          h("strong", {}, label(variable)), ` — ${variable.definition}`,
          variable.unit ? ` (${variable.unit})` : null,
          variable.type === "date" ? ` · ${t(`feasibility.grain.${variable.date_grain || "year"}`)}` : null))))),
  );
}

// -- results ------------------------------------------------------------------------------------

function releaseBadge(count, release) {
  if (release.mode === "exact") return h("span", { class: "badge badge-exact", id: "release-mode" }, t("feasibility.exact"));
  if (count === null) return h("span", { class: "badge badge-suppressed", id: "release-mode" }, t("feasibility.suppressed", { threshold: release.threshold }));
  return h("span", { class: "badge badge-noisy", id: "release-mode" }, t("feasibility.noisy", { base: release.rounding_base }));
}

function releaseFacts(release) {
  if (release.mode === "exact") return h("p", { class: "muted small" }, t("feasibility.exact_help"));
  const digits = { maximumFractionDigits: 3 };
  const cost = release.repeated ? t("feasibility.repeated") : t("feasibility.charged", { epsilon: formatNumber(release.charged ?? 0, digits) });
  return h("p", { class: "muted small", id: "release-facts" }, cost, " · ",
    t("feasibility.budget_left", { epsilon: formatNumber(release.budget_remaining ?? 0, digits) }));
}

function renderCount() {
  const box = view.countBody;
  if (state.lastError) {
    replace(box, errorBox(state.lastError, unbuiltHelp(state.lastError)));
    return;
  }
  const result = state.lastCount;
  if (!result) return;
  replace(
    box,
    h("p", { class: "count", id: "count-value" }, result.shown),
    h("p", {}, releaseBadge(result.count, result.release)),
    releaseFacts(result.release),
    state.timing === null ? null : h("p", { class: "muted small", id: "count-timing" }, t("feasibility.timing", { ms: Math.round(state.timing) })),
  );
}

function unbuiltHelp(error) {
  if (error.status !== 409) return null;
  return h("p", {}, t("feasibility.unbuilt"), " ", h("code", {}, "massalia mart build --home <MASSALIA_HOME>"));
}

async function renderBreakdown() {
  const result = state.lastBreakdown;
  if (!result || state.lastError) {
    replace(view.breakdownTable);
    return;
  }
  const variable = variableNamed(result.variable);
  const bars = result.cells.map((cell) => ({ label: valueLabel(variable, cell.value), value: cell.count, shown: cell.shown }));
  const title = t("feasibility.breakdown_title", { variable: label(variable) });
  replace(
    view.breakdownTable,
    h("table", { class: "table", id: "breakdown-table" },
      h("caption", { class: "sr-only" }, title),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, label(variable)), h("th", { scope: "col", class: "number" }, t("feasibility.patients")))),
      h("tbody", {},
        bars.map((bar) => h("tr", {}, h("td", {}, bar.label), h("td", { class: "number" }, bar.shown))),
        h("tr", {}, h("th", { scope: "row" }, t("feasibility.total")), h("td", { class: "number" }, result.total_shown)))),
  );
  await barChart(view.chart, { bars, title, axisName: t("feasibility.patients") });
  view.chart.dataset.variable = result.variable;
}

function setBusy(busy) {
  view.results.setAttribute("aria-busy", busy ? "true" : "false");
  view.progress.hidden = !busy;
}

const scheduleRefresh = debounce(() => refresh(), DEBOUNCE_MS);

async function refresh() {
  if (state.controller) state.controller.abort();
  const controller = new AbortController();
  state.controller = controller;
  const sequence = ++state.sequence;
  const body = { filters: filterSpec() };
  if (state.projectId) body.project_id = Number(state.projectId);
  const timer = setTimeout(() => { if (sequence === state.sequence) setBusy(true); }, PROGRESS_AFTER_MS);
  const started = performance.now();
  try {
    const count = await api("POST", "/mart/count", body, { signal: controller.signal });
    if (sequence !== state.sequence) return;
    state.timing = performance.now() - started;
    state.lastCount = count;
    state.lastError = null;
    renderCount();
    const breakdown = await api("POST", "/mart/breakdown", { ...body, by: state.by }, { signal: controller.signal });
    if (sequence !== state.sequence) return;
    state.lastBreakdown = breakdown;
    await renderBreakdown();
  } catch (error) {
    if (error.name === "AbortError" || sequence !== state.sequence) return;
    state.lastError = error;
    state.lastCount = null;
    state.lastBreakdown = null;
    renderCount();
    await renderBreakdown();
  } finally {
    clearTimeout(timer);
    if (sequence === state.sequence) {
      setBusy(false);
      view.results.dataset.sequence = String(sequence);
      document.dispatchEvent(new CustomEvent("massalia:counted", { detail: { sequence, ms: state.timing } }));
    }
  }
}

function breakdownPicker() {
  const id = "feasibility-by";
  const options = state.variables.filter((variable) => (variable.type === "category" || variable.type === "boolean") && variable.disclosure !== "identifier");
  options.sort((a, b) => {
    const rank = (v) => (PREFERRED_BREAKDOWNS.includes(v.name) ? PREFERRED_BREAKDOWNS.indexOf(v.name) : 99);
    return rank(a) - rank(b);
  });
  if (!state.by) state.by = options.length ? options[0].name : null;
  const select = h("select", { id, onchange: (event) => { state.by = event.target.value; refresh(); } },
    options.map((variable) => h("option", { value: variable.name, selected: variable.name === state.by }, label(variable))));
  return h("div", { class: "field" }, h("label", { for: id }, t("feasibility.by")), select);
}

// -- the page -----------------------------------------------------------------------------------

async function load() {
  const [variables, projects] = await Promise.all([
    api("GET", "/mart/variables"),
    api("GET", "/projects?limit=100").catch(() => ({ items: [] })),
  ]);
  state.variables = variables;
  state.projects = projects.items || [];
}

export async function render(main, ctx) {
  await addCatalogue(CATALOGUE);
  const heading = h("h1", {}, t("feasibility.title"));
  if (!state.variables) {
    replace(main, heading, progress(t("feasibility.loading")));
    try {
      await load();
    } catch (error) {
      replace(main, heading, errorBox(error));
      return;
    }
  }
  if (!state.editor) state.editor = new FilterEditor(state.variables, { pickerId: "feasibility-add", listId: "filter-list", onChange: changed });
  view = {
    countBody: h("div", { id: "count-body", "aria-live": "polite" }),
    progress: progress(t("feasibility.counting")),
    chart: h("div", { class: "chart", id: "breakdown-chart" }),
    breakdownTable: h("div", {}),
    results: null,
  };
  view.progress.hidden = true;
  const clearAll = h("button", { type: "button", id: "clear-filters", onclick: () => state.editor.clear() }, t("feasibility.clear"));
  view.results = h(
    "div",
    { id: "results", "aria-busy": "false" },
    h("section", { class: "card count-box", "aria-labelledby": "count-title" }, h("h2", { id: "count-title" }, t("feasibility.patients")), view.progress, view.countBody),
    h("section", { class: "card", "aria-labelledby": "breakdown-title" },
      h("h2", { id: "breakdown-title" }, t("feasibility.breakdown")),
      h("div", { class: "chart-tools" }, breakdownPicker()),
      view.chart,
      h("details", {}, h("summary", {}, t("feasibility.as_table")), view.breakdownTable)),
  );
  replace(
    main,
    heading,
    h("p", { class: "lead" }, t("feasibility.lead")),
    h("div", { class: "feasibility" },
      h("section", { class: "card", "aria-labelledby": "filters-title" },
        h("h2", { id: "filters-title" }, t("feasibility.filters")),
        projectPicker(), state.editor.element(),
        h("div", { class: "actions" }, clearAll),
        catalogueDetails()),
      view.results),
  );
  if (state.lastCount || state.lastError) {
    // A re-render (a language switch): the released numbers are shown again, not asked again.
    renderCount();
    await renderBreakdown();
    return;
  }
  await refresh();
}
