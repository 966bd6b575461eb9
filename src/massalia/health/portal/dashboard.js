// Cohort dashboard: the research mart's panels (demographics, cancer sites, stage, biomarkers, treatment
// lines, vital status) for the whole mart or a generated cohort (its cohort_definition_id), as ECharts bar
// charts with their tables, every number exactly as POST /api/v1/mart/dashboard released it; a link opens the
// Analyses page (survival, treatment comparison) on the same project and cohort.

import { api } from "../../js/api.js";
import { barChart, loadECharts } from "../../js/charts.js";
import { h, replace } from "../../js/dom.js";
import { addCatalogue, currentLang, has, t } from "../../js/i18n.js";
import { errorBox, progress } from "../../js/ui.js";

const CATALOGUE = new URL("./i18n", import.meta.url).pathname;
const ANALYSES_PAGE = "/portal/health/analyses";
const ANALYSES_PRESET = "massalia.analyses.preset"; // read by analyses.js: the cohort goes in session storage, not the address

const state = {
  loaded: false, projects: [], projectId: "", cohortId: "", shownProject: "", shownCohort: "", result: null, error: null, timing: null,
};
let view = null;

function valueLabel(variable, value) {
  if (value === null) return t("dashboard.no_value");
  const key = `value.${variable}.${value}`;
  if (has(key)) return t(key);
  if (value === true) return t("dashboard.yes");
  if (value === false) return t("dashboard.no");
  return String(value);
}

function variableLabel(variable) {
  return currentLang() === "en" ? variable.label_en : variable.label_fr;
}

function releaseText(release) {
  if (!release) return "";
  if (release.mode === "exact") return t("dashboard.exact");
  return t("dashboard.noisy", { base: release.rounding_base, threshold: release.threshold });
}

const FIRST_PANELS = 2; // demographics and cancer sites: drawn first, the rest in the frames after

function panelSection(panel, charts) {
  return h("section", { class: "card", "aria-labelledby": `panel-${panel.name}`, dataset: { panel: panel.name } },
    h("h2", { id: `panel-${panel.name}` }, t(`dashboard.panel.${panel.name}`)),
    panel.withheld ? h("p", { class: "alert alert-warn" }, t("dashboard.withheld")) : null,
    h("div", { class: "grid" }, (panel.variables || []).map((variable) => {
      if (variable.withheld || !variable.cells) {
        return h("div", {}, h("h3", {}, variableLabel(variable)), h("p", { class: "muted" }, t("dashboard.withheld")));
      }
      const chart = h("div", { class: "chart", dataset: { variable: variable.variable } });
      const bars = variable.cells.map((cell) => ({ label: valueLabel(variable.variable, cell.value), value: cell.count, shown: cell.shown }));
      charts.push([chart, bars, variableLabel(variable)]);
      return h("div", {}, h("h3", {}, variableLabel(variable)), chart,
        h("details", {}, h("summary", {}, t("dashboard.as_table")),
          h("table", { class: "table" }, h("caption", { class: "sr-only" }, variableLabel(variable)),
            h("thead", {}, h("tr", {}, h("th", { scope: "col" }, variableLabel(variable)), h("th", { scope: "col", class: "number" }, t("dashboard.patients")))),
            h("tbody", {}, bars.map((bar) => h("tr", {}, h("td", {}, bar.label), h("td", { class: "number" }, bar.shown))),
              h("tr", {}, h("th", { scope: "row" }, t("dashboard.total")), h("td", { class: "number" }, variable.total_shown))))),
        h("p", { class: "muted small" }, releaseText(variable.release)));
    })));
}

/** Add panels to the page and draw their charts. */
async function appendPanels(panels) {
  const charts = [];
  view.panels.append(...panels.map((panel) => panelSection(panel, charts)));
  for (const [chart, bars, title] of charts) await barChart(chart, { bars, title, axisName: t("dashboard.patients") });
}

/** Open the Analyses page on the dashboard's project and cohort (the ones shown, not the inputs' later edits). */
function analyseLink() {
  const shown = { project_id: state.shownProject ? Number(state.shownProject) : null, cohort_definition_id: state.shownCohort ? Number(state.shownCohort) : null };
  const open = () => {
    try {
      sessionStorage.setItem(ANALYSES_PRESET, JSON.stringify(shown));
    } catch {
      // no session storage: the Analyses page opens with its own defaults
    }
  };
  return h("p", { class: "actions" },
    h("a", { href: ANALYSES_PAGE, id: "dashboard-analyse", class: "button", "aria-describedby": "dashboard-analyse-help", onclick: open }, t("dashboard.analyse")),
    h("span", { class: "muted small", id: "dashboard-analyse-help" }, t("dashboard.analyse_help")));
}

async function renderResult() {
  const result = state.result;
  if (state.error) {
    replace(view.body, errorBox(state.error));
    return;
  }
  if (!result) return;
  view.panels = h("div", {});
  replace(view.body,
    h("section", { class: "card count-box", "aria-labelledby": "dash-count" },
      h("h2", { id: "dash-count" }, t("dashboard.patients")),
      h("p", { class: "count", id: "dashboard-count" }, result.count.shown),
      h("p", { class: "muted small" }, releaseText(result.count.release)),
      state.timing === null ? null : h("p", { class: "muted small", id: "dashboard-timing" }, t("dashboard.timing", { ms: Math.round(state.timing) }))),
    analyseLink(),
    view.panels);
  // The first screenful first: its charts are drawn before the panels below the fold are built.
  await appendPanels(result.panels.slice(0, FIRST_PANELS));
  view.body.dataset.loaded = "first";
  await new Promise((done) => requestAnimationFrame(done));
  await appendPanels(result.panels.slice(FIRST_PANELS));
  view.body.dataset.loaded = "all";
}

/** One request for every panel: the server counts them in one scan and releases them in one transaction. */
async function refresh() {
  replace(view.body, progress(t("dashboard.loading")));
  delete view.body.dataset.loaded;
  const filters = { all: [] };
  if (state.cohortId) filters.cohort_definition_id = Number(state.cohortId);
  const body = { filters };
  if (state.projectId) body.project_id = Number(state.projectId);
  const started = performance.now();
  try {
    state.result = await api("POST", "/mart/dashboard", body);
    state.shownProject = state.projectId;
    state.shownCohort = state.cohortId;
    state.error = null;
    state.timing = performance.now() - started;
  } catch (error) {
    state.result = null;
    state.error = error;
  }
  await renderResult();
  view.body.dataset.loaded = "all";
}

export async function render(main, ctx) {
  loadECharts().catch(() => null); // fetched and parsed while the API answers (the charts wait for it)
  const projectsCall = state.loaded ? null : api("GET", "/projects?limit=100").catch(() => ({ items: [] }));
  await addCatalogue(CATALOGUE);
  const heading = h("h1", {}, t("dashboard.title"));
  if (!state.loaded) {
    replace(main, heading, progress(t("dashboard.loading")));
    const projects = await projectsCall;
    state.projects = (projects.items || []).filter((project) => project.status === "approved");
    if (state.projects.length) state.projectId = String(state.projects[0].id);
    state.loaded = true;
  }
  const project = h("select", { id: "dashboard-project", onchange: (event) => { state.projectId = event.target.value; } },
    h("option", { value: "" }, t("dashboard.no_project")),
    state.projects.map((p) => h("option", { value: String(p.id), selected: String(p.id) === state.projectId }, `${p.id} · ${p.title}`)));
  const cohort = h("input", { type: "number", id: "dashboard-cohort", min: 1, step: 1, value: state.cohortId, oninput: (event) => { state.cohortId = event.target.value; } });
  view = { body: h("div", { id: "dashboard-body", "aria-live": "polite" }), panels: null };
  replace(main, heading, h("p", { class: "lead" }, t("dashboard.lead")),
    h("section", { class: "card" },
      h("div", { class: "range" },
        h("label", { for: "dashboard-project" }, t("dashboard.project"), project),
        h("label", { for: "dashboard-cohort" }, t("dashboard.cohort"), cohort),
        h("button", { type: "button", class: "primary", id: "dashboard-show", onclick: refresh }, t("dashboard.show"))),
      h("p", { class: "muted small" }, t("dashboard.cohort_help"))),
    view.body);
  if (state.result || state.error) await renderResult();
  else await refresh();
}
