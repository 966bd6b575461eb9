// Analyses: run an analysis of an approved project's cohort on the research mart and read its result as
// charts and tables. The cohort is a generated cohort (its id) and/or mart filters (the shared filter editor);
// the analyses come from a small registry below, one entry each: {name, path, init(variables) → form state,
// fields(form, ctx) → nodes, body(form) → the request's own part, render(container, result, ctx), and optionally
// failed(error) (an error the entry shows by its own fields, e.g. a rule file's 422)}. ctx holds the mart's
// variables and, read when needed, the chosen project (ctx.project()) and cohort (ctx.cohort()). Requests
// are POST bodies (never data in the address); the API decides who may run what (403 with its reason).

import { api } from "../../js/api.js";
import { loadECharts } from "../../js/charts.js";
import { h, replace } from "../../js/dom.js";
import { t } from "../../js/i18n.js";
import { errorBox, progress } from "../../js/ui.js";
import { COMPARE } from "./analysis-compare.js";
import { CONFORMANCE } from "./analysis-conformance.js";
import { CONTROL_ARM } from "./analysis-control-arm.js";
import { GROUPS } from "./analysis-groups.js";
import { HYPOTHESES } from "./analysis-hypotheses.js";
import { PATHWAYS } from "./analysis-pathways.js";
import { PATTERNS } from "./analysis-patterns.js";
import { PREDICTION } from "./analysis-prediction.js";
import { SIMILAR } from "./analysis-similar.js";
import { SURVIVAL } from "./analysis-survival.js";
import { FilterEditor } from "./filters.js";
import { field, prepare } from "./govkit.js";

/** The analyses offered, in menu order: a new analysis is one more entry (its module exports it). */
export const ANALYSES = [SURVIVAL, COMPARE, PATHWAYS, CONFORMANCE, PREDICTION, SIMILAR, GROUPS, CONTROL_ARM, HYPOTHESES, PATTERNS];

/** Where the cohort dashboard leaves the cohort to analyse (session storage: never in the address). */
export const PRESET_KEY = "massalia.analyses.preset";
const TICK_MS = 500;

const state = {
  loaded: false, variables: [], projects: [], projectId: "", cohortId: "", analysis: ANALYSES[0].name,
  population: null, forms: {}, result: null, resultOf: null, error: null, seconds: null, controller: null,
};
let view = null;

function entry(name = state.analysis) {
  return ANALYSES.find((item) => item.name === name);
}

function form(name = state.analysis) {
  if (!state.forms[name]) state.forms[name] = entry(name).init(state.variables);
  return state.forms[name];
}

/** The preset the dashboard left (project, generated cohort), read once and removed. */
function takePreset() {
  let raw = null;
  try {
    raw = sessionStorage.getItem(PRESET_KEY);
    sessionStorage.removeItem(PRESET_KEY);
  } catch {
    return; // no session storage: nothing preset
  }
  if (!raw) return;
  let preset = {};
  try {
    preset = JSON.parse(raw) || {};
  } catch {
    return;
  }
  const id = (value) => (Number.isInteger(value) && value > 0 ? String(value) : "");
  if (id(preset.project_id) && state.projects.some((p) => String(p.id) === id(preset.project_id))) state.projectId = id(preset.project_id);
  if (id(preset.cohort_definition_id)) state.cohortId = id(preset.cohort_definition_id);
  state.result = null;
  state.error = null;
}

async function load() {
  const [variables, projects] = await Promise.all([
    api("GET", "/mart/variables"),
    api("GET", "/projects?limit=100").catch(() => ({ items: [] })),
  ]);
  state.variables = variables;
  state.projects = projects.items || [];
  const approved = state.projects.filter((p) => p.status === "approved");
  state.projectId = approved.length ? String(approved[0].id) : state.projects.length ? String(state.projects[0].id) : "";
  state.population = new FilterEditor(variables, { pickerId: "analyses-add", listId: "analyses-filter-list", emptyText: () => t("analyses.no_filter") });
  state.loaded = true;
}

function projectField() {
  const approved = state.projects.filter((p) => p.status === "approved");
  const others = state.projects.filter((p) => p.status !== "approved");
  const option = (p) => h("option", { value: String(p.id), selected: String(p.id) === state.projectId }, `${p.id} · ${p.title}`);
  const select = h("select", { onchange: (event) => { state.projectId = event.target.value; } },
    state.projects.length ? null : h("option", { value: "" }, t("analyses.no_project")),
    approved.length ? h("optgroup", { label: t("analyses.approved") }, approved.map(option)) : null,
    others.length ? h("optgroup", { label: t("analyses.not_approved") }, others.map((p) => h("option", { value: String(p.id), selected: String(p.id) === state.projectId }, `${p.id} · ${p.title} (${p.status})`))) : null);
  return h("div", {},
    field("analyses-project", t("analyses.project"), select, t("analyses.project_help")),
    approved.length ? null : h("p", { class: "alert alert-warn", id: "analyses-no-approved" }, t("analyses.no_approved")));
}

function cohortField() {
  const input = h("input", { type: "number", min: 1, step: 1, inputMode: "numeric", value: state.cohortId, oninput: (event) => { state.cohortId = event.target.value; } });
  return field("analyses-cohort", t("analyses.cohort"), input, t("analyses.cohort_help"));
}

function analysisPicker() {
  const select = h("select", {
    onchange: (event) => {
      state.analysis = event.target.value;
      replace(view.fields, entry().fields(form(), context()));
    },
  }, ANALYSES.map((item) => h("option", { value: item.name, selected: item.name === state.analysis }, t(`analyses.kind.${item.name}`))));
  return field("analyses-kind", t("analyses.kind"), select);
}

/** What an entry may read of the page: the variables, the project and cohort chosen when it asks. */
function context() {
  return { variables: state.variables, project: () => Number(state.projectId), cohort: () => request().filters };
}

/** The request: the project, the cohort (generated cohort and filters) and the analysis's own fields. */
function request() {
  const filters = state.population.spec();
  const cohort = Number(state.cohortId);
  if (state.cohortId !== "" && Number.isInteger(cohort) && cohort > 0) filters.cohort_definition_id = cohort;
  return { project_id: Number(state.projectId), filters, ...entry().body(form()) };
}

function explain(error) {
  if (error.status === 409) return h("p", {}, t("analyses.unbuilt"), " ", h("code", {}, "massalia mart build --home <MASSALIA_HOME>"));
  if (error.status === 422 && error.details?.length) {
    return h("ul", { class: "small" }, error.details.map((d) => h("li", {}, h("code", {}, (d.loc || []).join(".")), " ", d.msg)));
  }
  if (error.status === 403) return h("p", {}, t("analyses.refused_help"));
  return null;
}

async function showResult() {
  if (state.error) {
    replace(view.results, errorBox(state.error, explain(state.error)));
    view.results.dataset.state = "error";
    return;
  }
  if (!state.result) return;
  const shownEntry = entry(state.resultOf);
  const container = h("div", { id: "analysis-result" });
  replace(view.results,
    h("p", { class: "muted small", id: "analyses-timing" }, t("analyses.timing", { seconds: state.seconds.toFixed(1) })),
    container);
  await shownEntry.render(container, state.result, context());
  view.results.dataset.state = "done";
  view.results.dataset.analysis = state.resultOf;
}

async function run() {
  if (!state.projectId) {
    state.error = new Error(t("analyses.choose_project"));
    await showResult();
    return;
  }
  if (state.controller) state.controller.abort();
  const controller = new AbortController();
  state.controller = controller;
  // The status is announced once; the seconds tick beside it, hidden from screen readers (no chatter).
  const elapsed = h("span", { class: "muted small", id: "analysis-elapsed", "aria-hidden": "true" }, t("analyses.elapsed", { seconds: 0 }));
  const started = performance.now();
  const timer = setInterval(() => {
    elapsed.textContent = t("analyses.elapsed", { seconds: Math.floor((performance.now() - started) / 1000) });
  }, TICK_MS);
  replace(view.results, h("div", { class: "actions" }, progress(t("analyses.running")), elapsed));
  view.results.dataset.state = "running";
  view.results.setAttribute("aria-busy", "true");
  view.run.disabled = true;
  view.cancel.hidden = false;
  const name = state.analysis;
  try {
    state.result = await api("POST", entry(name).path, request(), { signal: controller.signal });
    state.resultOf = name;
    state.error = null;
    state.seconds = (performance.now() - started) / 1000;
  } catch (error) {
    if (error.name === "AbortError") {
      replace(view.results, h("p", { role: "status" }, t("analyses.cancelled")));
      view.results.dataset.state = "cancelled";
      return;
    }
    state.result = null;
    state.error = error;
    entry(name).failed?.(error);
  } finally {
    clearInterval(timer);
    if (state.controller === controller) state.controller = null;
    view.results.setAttribute("aria-busy", "false");
    view.run.disabled = false;
    view.cancel.hidden = true;
  }
  await showResult();
  document.dispatchEvent(new CustomEvent("massalia:analysed", { detail: { analysis: name, seconds: state.seconds } }));
}

export async function render(main) {
  loadECharts().catch(() => null); // fetched while the user fills the form
  await prepare();
  const heading = h("h1", {}, t("analyses.title"));
  if (!state.loaded) {
    replace(main, heading, progress(t("analyses.loading")));
    try {
      await load();
    } catch (error) {
      replace(main, heading, errorBox(error, explain(error)));
      return;
    }
  }
  takePreset();
  view = {
    fields: h("div", { id: "analysis-fields" }, entry().fields(form(), context())),
    results: h("div", { id: "analysis-results", "aria-live": "polite", "aria-busy": "false" }),
    run: h("button", { type: "button", class: "primary", id: "analysis-run", onclick: run }, t("analyses.run")),
    cancel: h("button", { type: "button", id: "analysis-cancel", hidden: true, onclick: () => state.controller?.abort() }, t("analyses.cancel")),
  };
  replace(main, heading, h("p", { class: "lead" }, t("analyses.lead")),
    h("div", { class: "gov analyses" },
      h("section", { class: "card", "aria-labelledby": "analyses-cohort-title" },
        h("h2", { id: "analyses-cohort-title" }, t("analyses.cohort_title")),
        h("div", { class: "form-grid" }, projectField(), cohortField()),
        h("h3", {}, t("analyses.filters")), state.population.element()),
      h("section", { class: "card", "aria-labelledby": "analyses-kind-title" },
        h("h2", { id: "analyses-kind-title" }, t("analyses.analysis")),
        analysisPicker(), view.fields,
        h("div", { class: "actions" }, view.run, view.cancel)),
      view.results));
  if (state.result || state.error) await showResult();
  main.dataset.ready = "true";
}
