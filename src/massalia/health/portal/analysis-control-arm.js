// The synthetic control arm in the Analyses page (an entry of its registry): a single-arm trial compared with
// real-world persons of the cohort (the eligibility) who were not treated. Two modes, as the API has them:
// the trial's patients are in the warehouse (mart filters naming them; propensity ATT weighting), or only its
// published summary is known (its size, baseline table and reported survival, pasted as JSON; MAIC weights).
// The renderer of POST /analyses/control-arm's answer shows the arms and effective sample sizes, the balance
// before and after weighting, the weighted Kaplan–Meier curves beside the trial's, the hazard ratios or the
// survival at the trial's times, and the assumptions in plain words. Counts as released ("<10").

import { h, replace } from "../../js/dom.js";
import { t } from "../../js/i18n.js";
import { balanceChart, chartBox, curveChart, decimal, percent, pValue, shown, table } from "./analysis-kit.js";
import { endpointField } from "./analysis-survival.js";
import { FilterEditor } from "./filters.js";
import { field } from "./govkit.js";

const MODES = ["summary", "individual"];
/** A published trial's summary to start from (a lung-cancer single-arm trial, as papers report it). */
const EXAMPLE_SUMMARY = {
  n: 120,
  baseline: [
    { variable: "age_at_diagnosis", statistic: "mean", value: 63 },
    { variable: "sex", level: "male", statistic: "proportion", value: 0.6 },
  ],
  km: [{ months: 0, survival: 1 }, { months: 12, survival: 0.7 }, { months: 24, survival: 0.5 }],
  median_months: 24,
};

function init(variables) {
  const form = {
    mode: "summary", endpoint: "os", landmark: 0,
    summary: JSON.stringify(EXAMPLE_SUMMARY, null, 2),
    trial: new FilterEditor(variables, { pickerId: "control-trial-add", listId: "control-trial-list", label: () => t("analyses.control.trial") }),
    controls: new FilterEditor(variables, { pickerId: "control-controls-add", listId: "control-controls-list", label: () => t("analyses.control.controls") }),
  };
  if (variables.some((v) => v.name === "line1_modality")) form.trial.add("line1_modality", { values: ["chemotherapy"] });
  return form;
}

/** The mode's own fields: the summary as JSON, or the trial's and the controls' filters. */
function modeFields(form) {
  if (form.mode === "summary") {
    const area = h("textarea", { rows: 12, spellcheck: false, class: "code", oninput: (event) => { form.summary = event.target.value; } }, form.summary);
    return field("control-summary", t("analyses.control.summary"), area, t("analyses.control.summary_help"));
  }
  return h("div", { class: "form-grid" },
    ["trial", "controls"].map((arm) => h("fieldset", { id: `control-${arm}` }, h("legend", {}, t(`analyses.control.${arm}`)),
      h("p", { class: "muted small" }, t(`analyses.control.${arm}_help`)), form[arm].element())));
}

function fields(form) {
  const place = h("div", { id: "control-mode-fields" });
  const redraw = () => place.replaceChildren(modeFields(form));
  const mode = h("select", { onchange: (event) => { form.mode = event.target.value; redraw(); } },
    MODES.map((name) => h("option", { value: name, selected: name === form.mode }, t(`analyses.control.mode.${name}`))));
  const landmark = h("input", {
    type: "number", min: 0, max: 60, step: 1, inputMode: "decimal", value: String(form.landmark),
    oninput: (event) => { form.landmark = Number(event.target.value); },
  });
  redraw();
  return h("div", {},
    h("div", { class: "form-grid" },
      field("control-mode", t("analyses.control.mode"), mode, t("analyses.control.mode_help")),
      field("control-landmark", t("analyses.control.landmark"), landmark, t("analyses.control.landmark_help")),
      h("div", {}, endpointField("control-endpoint", form))),
    place);
}

/** The request's own part; a summary that is not JSON is sent as it is (the API's 422 names the problem). */
function body(form) {
  const common = { endpoint: form.endpoint, landmark_months: form.landmark };
  if (form.mode === "individual") {
    const controls = form.controls.spec();
    return { ...common, trial: form.trial.spec(), ...(controls.all.length ? { controls } : {}) };
  }
  let summary = form.summary;
  try {
    summary = JSON.parse(form.summary);
  } catch {
    // left as text: the API answers 422 at body.trial_summary, shown under the form
  }
  return { ...common, trial_summary: summary };
}

function counts(cells) {
  return cells.map(([label, cell]) => [label, shown(cell)]);
}

function assumptions(result) {
  return h("section", { class: "card", "aria-labelledby": "control-assumptions-title" },
    h("h2", { id: "control-assumptions-title" }, t("analyses.control.assumptions")),
    h("ul", { id: "control-assumptions" }, (result.assumptions || []).map((text) => h("li", {}, text))));
}

function withheldNote(result) {
  return result.weighted_outcome && result.weighted_outcome !== "shown"
    ? h("p", { class: "alert alert-warn", id: "control-withheld" }, result.weighted_outcome) : null;
}

async function renderSummary(container, result) {
  const charts = { km: chartBox("control-km-chart") };
  const sizes = table("control-arms", t("analyses.control.arms"), [{ label: "" }, { label: t("analyses.persons"), number: true }], [
    [t("analyses.control.trial_n"), String(result.trial_n)],
    ...counts([[t("analyses.control.real_world"), result.n], [t("analyses.control.ess"), result.effective_sample_size],
      [t("analyses.control.excluded_landmark"), result.excluded_before_landmark], [t("analyses.control.excluded_incomplete"), result.excluded_incomplete]]),
  ]);
  const balanceColumns = [t("analyses.control.covariate"), t("analyses.control.statistic"), t("analyses.control.trial"), t("analyses.control.before"), t("analyses.control.after")]
    .map((label, i) => ({ label, number: i > 1 }));
  const value = (row, key) => (row.statistic === "proportion" ? percent(row[key]) : decimal(row[key], 2));
  const survivalColumns = [t("analyses.control.months"), t("analyses.control.trial"), t("analyses.control.weighted"), t("analyses.ci"), t("analyses.control.unweighted")]
    .map((label, i) => ({ label, number: i > 0 }));
  replace(container,
    h("section", { class: "card", "aria-labelledby": "control-title", dataset: { result: "control-arm" } },
      h("h2", { id: "control-title" }, t("analyses.control.title_summary")),
      h("p", { class: "muted small" }, result.method),
      sizes,
      h("p", { class: "muted small", id: "control-weights" }, t("analyses.control.weights", { max: decimal(result.max_weight, 2), ratio: decimal(result.ess_versus_trial, 1) })),
      table("control-balance", t("analyses.control.balance"), balanceColumns,
        (result.balance || []).map((row) => [row.covariate, t(`analyses.control.statistic.${row.statistic}`), value(row, "trial"), value(row, "real_world_before"), value(row, "real_world_after")]))),
    h("section", { class: "card", "aria-labelledby": "control-km-title" },
      h("h2", { id: "control-km-title" }, t("analyses.control.km")),
      withheldNote(result),
      h("p", { id: "control-medians" }, t("analyses.control.medians", { trial: decimal(result.trial_median, 1), weighted: decimal(result.median_weighted, 1) })),
      charts.km,
      table("control-survival", t("analyses.control.survival_at"), survivalColumns,
        (result.survival_comparison || []).map((row) => [decimal(row.time, 0), decimal(row.trial, 3), decimal(row.real_world_weighted, 3),
          `${decimal(row.real_world_weighted_lower, 3)} – ${decimal(row.real_world_weighted_upper, 3)}`, decimal(row.real_world_unweighted, 3)]))),
    assumptions(result));
  const series = [];
  if (result.km_weighted?.curve) series.push({ name: t("analyses.control.weighted"), curve: result.km_weighted.curve });
  if (result.km_unweighted?.curve) series.push({ name: t("analyses.control.unweighted"), curve: result.km_unweighted.curve });
  const trialKm = (result.survival_comparison || []).filter((row) => row.trial !== null && row.trial !== undefined);
  if (trialKm.length) series.push({ name: t("analyses.control.trial"), curve: trialKm.map((row) => ({ time: row.time, estimate: row.trial })) });
  await curveChart(charts.km, { series, title: t("analyses.control.km"), xName: t("analyses.months"), yName: t("analyses.survival.probability") });
}

async function renderIndividual(container, result) {
  const charts = { balance: chartBox("control-balance-chart"), km: chartBox("control-km-chart") };
  const arms = ["trial", "control"];
  const armRows = arms.map((arm) => [t(`analyses.control.arm.${arm}`), shown(result.arms[arm].n), shown(result.arms[arm].effective_sample_size),
    decimal(result.arms[arm].km?.median, 1)]);
  const hrColumns = [t("analyses.control.method"), "HR", t("analyses.ci"), "p"].map((label, i) => ({ label, number: i > 0 }));
  const hrRows = ["naive", "weighted"].filter((m) => result.hazard_ratios?.[m]).map((m) => {
    const hr = result.hazard_ratios[m];
    return [t(`analyses.control.hr.${m}`), decimal(hr.hr), `${decimal(hr.lower)} – ${decimal(hr.upper)}`, pValue(hr.p_value)];
  });
  const ps = result.propensity_score || {};
  replace(container,
    h("section", { class: "card", "aria-labelledby": "control-title", dataset: { result: "control-arm" } },
      h("h2", { id: "control-title" }, t("analyses.control.title_individual")),
      table("control-arms", t("analyses.control.arms"),
        [t("analyses.control.arm"), t("analyses.persons"), t("analyses.control.ess"), t("analyses.control.median")].map((label, i) => ({ label, number: i > 0 })), armRows),
      h("p", { class: "muted small" }, t("analyses.control.not_in_either", { shown: shown(result.eligible_not_in_either_arm) }), " · ",
        t("analyses.control.excluded_landmark_n", { shown: shown(result.excluded_before_landmark) })),
      withheldNote(result),
      hrRows.length ? table("control-hr", t("analyses.control.hazard_ratios"), hrColumns, hrRows) : null),
    h("section", { class: "card", "aria-labelledby": "control-balance-title" },
      h("h2", { id: "control-balance-title" }, t("analyses.control.balance")),
      h("p", { class: "muted small" }, t("analyses.control.ps_facts", { auc: decimal(ps.auc), equipoise: decimal((ps.equipoise ?? 0) * 100, 0) })),
      charts.balance,
      h("p", { class: "muted small" }, t("analyses.control.imbalanced", { count: (result.imbalanced_after || []).length })),
      h("details", {}, h("summary", {}, t("analyses.as_table")),
        table("control-balance", t("analyses.control.balance"),
          [t("analyses.control.covariate"), t("analyses.control.before"), t("analyses.control.after")].map((label, i) => ({ label, number: i > 0 })),
          (result.balance || []).map((row) => [row.covariate, decimal(row.before, 3), decimal(row.after, 3)])))),
    h("section", { class: "card", "aria-labelledby": "control-km-title" },
      h("h2", { id: "control-km-title" }, t("analyses.control.km")), charts.km),
    assumptions(result));
  await balanceChart(charts.balance, { rows: result.balance || [], title: t("analyses.control.balance"), adjustments: [{ key: "after", label: t("analyses.control.after") }] });
  const series = [];
  if (result.arms.trial.km?.curve) series.push({ name: `${t("analyses.control.arm.trial")} (${shown(result.arms.trial.n)})`, curve: result.arms.trial.km.curve });
  if (result.arms.control.km?.curve) series.push({ name: t("analyses.control.weighted"), curve: result.arms.control.km.curve });
  if (result.arms.control.km_unweighted?.curve) series.push({ name: t("analyses.control.unweighted"), curve: result.arms.control.km_unweighted.curve });
  await curveChart(charts.km, { series, title: t("analyses.control.km"), xName: t("analyses.months"), yName: t("analyses.survival.probability") });
}

async function render(container, result) {
  if (result.mode === "individual") await renderIndividual(container, result);
  else await renderSummary(container, result);
}

/** The registry entry (see analyses.js). */
export const CONTROL_ARM = { name: "control_arm", path: "/analyses/control-arm", init, fields, body, render };
