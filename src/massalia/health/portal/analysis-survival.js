// The survival analysis in the Analyses page (an entry of its registry): the form (endpoint, groups, Cox
// covariates, competing risks) and the renderer of POST /analyses/survival's answer — Kaplan–Meier curves
// with 95 % bands by group, the numbers at risk under the chart, the log-rank test, the Cox model's hazard
// ratios, and the cumulative incidence when asked. Counts as released ("<10" under the threshold).

import { field } from "./govkit.js";
import { h } from "../../js/dom.js";
import { t } from "../../js/i18n.js";
import { chartBox, curveChart, decimal, pEquals, pValue, shown, table } from "./analysis-kit.js";
import { valueLabel, variableLabel } from "./filters.js";

export const ENDPOINTS = ["os", "pfs", "rfs", "relapse", "second_cancer"];
const DEFAULT_GROUP = "stage_group";
const DEFAULT_COVARIATES = ["stage_group", "age_at_diagnosis", "sex"];

/** A select of the endpoints (shared with compare). */
export function endpointField(id, form) {
  const select = h("select", { onchange: (event) => { form.endpoint = event.target.value; } },
    ENDPOINTS.map((name) => h("option", { value: name, selected: name === form.endpoint }, t(`analyses.endpoint.${name}`))));
  return field(id, t("analyses.endpoint"), select);
}

function groupable(variables) {
  return variables.filter((v) => (v.type === "category" || v.type === "boolean") && v.disclosure !== "identifier");
}

function covariable(variables) {
  return variables.filter((v) => ["category", "boolean", "integer", "number"].includes(v.type) && v.disclosure !== "identifier");
}

function init(variables) {
  const names = new Set(variables.map((v) => v.name));
  return {
    endpoint: "os",
    groupBy: names.has(DEFAULT_GROUP) ? DEFAULT_GROUP : "",
    covariates: new Set(DEFAULT_COVARIATES.filter((name) => names.has(name))),
    competing: false,
  };
}

function fields(form, { variables }) {
  const group = h("select", { onchange: (event) => { form.groupBy = event.target.value; } },
    h("option", { value: "" }, t("analyses.survival.no_group")),
    groupable(variables).map((v) => h("option", { value: v.name, selected: v.name === form.groupBy }, variableLabel(v))));
  const covariates = h("select", {
    multiple: true, size: 6,
    onchange: (event) => { form.covariates = new Set([...event.target.selectedOptions].map((o) => o.value)); },
  }, covariable(variables).map((v) => h("option", { value: v.name, selected: form.covariates.has(v.name) }, variableLabel(v))));
  const competing = h("input", {
    type: "checkbox", id: "survival-competing", checked: form.competing, "aria-describedby": "survival-competing-help",
    onchange: (event) => { form.competing = event.target.checked; },
  });
  return h("div", { class: "form-grid" },
    endpointField("survival-endpoint", form),
    field("survival-group", t("analyses.survival.group_by"), group),
    field("survival-covariates", t("analyses.survival.covariates"), covariates, t("analyses.survival.covariates_help")),
    h("div", { class: "field" }, h("label", { for: "survival-competing" }, competing, " ", t("analyses.survival.competing")),
      h("span", { class: "muted small", id: "survival-competing-help" }, t("analyses.survival.competing_help"))));
}

function body(form) {
  const request = { endpoint: form.endpoint, covariates: [...form.covariates] };
  if (form.groupBy) request.group_by = form.groupBy;
  if (form.competing) request.competing_risks = true; // the API says which endpoints have a competing event (422)
  return request;
}

/** Curves of the answer: every group when grouped, else the whole cohort. */
function curves(result, variables) {
  const groups = Object.entries(result.km.groups || {});
  if (!groups.length) return [{ key: "all", name: t("analyses.survival.everyone"), km: result.km.all }];
  const variable = variables.find((v) => v.name === result.provenance?.request?.group_by);
  return groups.map(([key, km]) => ({
    key, km, name: key === "missing" ? t("feasibility.no_value") : variable ? valueLabel(variable, key) : key,
  }));
}

/** Numbers at risk: one row per curve, one column per time of the request's grid. */
function atRiskTable(series, unit) {
  const times = (series[0]?.km.at_risk || []).map((cell) => cell.time);
  const columns = [{ label: t("analyses.group") }, ...times.map((time) => ({ label: `${decimal(time, 0)} ${unit}`, number: true }))];
  const rows = series.map((item) => [item.name, ...times.map((time) => shown((item.km.at_risk || []).find((c) => c.time === time)))]);
  return table("survival-at-risk", t("analyses.survival.at_risk"), columns, rows);
}

function summaryTable(series) {
  const columns = [t("analyses.group"), t("analyses.persons"), t("analyses.events"), t("analyses.survival.median")]
    .map((label, i) => ({ label, number: i > 0 }));
  const rows = series.map((item) => [item.name, shown(item.km.n), shown(item.km.events),
    item.km.median === null || item.km.median === undefined ? t("analyses.survival.not_reached") : decimal(item.km.median, 1)]);
  return table("survival-groups", t("analyses.survival.groups"), columns, rows);
}

function coxTable(cox) {
  const columns = [t("analyses.term"), "HR", t("analyses.ci"), "p", t("analyses.survival.ph_p")]
    .map((label, i) => ({ label, number: i > 0 }));
  const rows = cox.terms.map((term) => [term.term, decimal(term.hr), `${decimal(term.lower)} – ${decimal(term.upper)}`, pValue(term.p_value), pValue(term.ph_test_p)]);
  const references = Object.entries(cox.references || {}).map(([name, value]) => `${name} = ${value}`).join(", ");
  return h("div", {},
    table("survival-cox", t("analyses.survival.cox"), columns, rows),
    h("p", { class: "muted small" }, t("analyses.survival.cox_facts", {
      n: shown(cox.n), events: shown(cox.events), excluded: shown(cox.excluded_incomplete), concordance: decimal(cox.concordance),
    })),
    references ? h("p", { class: "muted small" }, t("analyses.survival.references", { references })) : null,
    cox.ph_violations?.length ? h("p", { class: "alert alert-warn" }, t("analyses.survival.ph_violations", { terms: cox.ph_violations.join(", ") })) : null);
}

async function render(container, result, { variables }) {
  const unit = t("analyses.months");
  const series = curves(result, variables);
  const kmChart = chartBox("survival-km-chart");
  const logrank = result.logrank;
  container.append(
    h("section", { class: "card", "aria-labelledby": "survival-km-title", dataset: { result: "survival" } },
      h("h2", { id: "survival-km-title" }, t("analyses.survival.km", { endpoint: t(`analyses.endpoint.${result.endpoint.name}`) })),
      kmChart,
      atRiskTable(series, unit),
      logrank ? h("p", { id: "survival-logrank" }, t("analyses.survival.logrank", { chi2: decimal(logrank.chi2), df: logrank.df ?? "—", p: pEquals(logrank.p_value) })) : null,
      summaryTable(series),
      h("p", { class: "muted small" }, t("analyses.survival.protected", { threshold: result.threshold }))),
    result.cox && result.cox.terms?.length
      ? h("section", { class: "card", "aria-labelledby": "survival-cox-title" }, h("h2", { id: "survival-cox-title" }, t("analyses.survival.cox")), coxTable(result.cox))
      : null);
  await curveChart(kmChart, { series: series.map((s) => ({ name: s.name, curve: s.km.curve })), title: t("analyses.survival.km_chart"), xName: unit, yName: t("analyses.survival.probability") });
  if (result.cumulative_incidence) {
    const incidence = result.cumulative_incidence;
    const chart = chartBox("survival-cif-chart");
    container.append(h("section", { class: "card", "aria-labelledby": "survival-cif-title" },
      h("h2", { id: "survival-cif-title" }, t("analyses.survival.cif")), chart,
      h("p", { class: "muted small" }, t("analyses.survival.cif_facts", { events: shown(incidence.events), competing: shown(incidence.competing_events) }))));
    await curveChart(chart, { series: [{ name: t("analyses.survival.cif"), curve: incidence.curve }], title: t("analyses.survival.cif"), xName: unit, yName: t("analyses.survival.incidence") });
  }
}

/** The registry entry (see analyses.js). */
export const SURVIVAL = { name: "survival", path: "/analyses/survival", init, fields, body, render };
