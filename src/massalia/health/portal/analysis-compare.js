// The treatment comparison in the Analyses page (an entry of its registry): the form (treated and comparator
// arms as mart filters within the cohort, endpoint, negative controls) and the renderer of POST
// /analyses/compare's answer — balance (|SMD| before and after), the propensity-score distributions, the
// adjusted Kaplan–Meier curves, the hazard ratios raw and calibrated, and the assumptions in plain words.

import { h } from "../../js/dom.js";
import { t } from "../../js/i18n.js";
import { balanceChart, chartBox, curveChart, decimal, pairedHistogram, pValue, shown, table } from "./analysis-kit.js";
import { ENDPOINTS, endpointField } from "./analysis-survival.js";
import { FilterEditor } from "./filters.js";
import { field } from "./govkit.js";

const ARMS = ["treated", "comparator"];
const DEFAULT_ARM = "received_chemotherapy"; // first line would be better (immortal time): the arms are the user's choice
const METHODS = ["naive", "matched", "ipw"];

function init(variables) {
  const form = {
    endpoint: "os",
    negativeControls: new Set(),
    treated: new FilterEditor(variables, { pickerId: "compare-treated-add", listId: "compare-treated-list", label: () => t("analyses.compare.treated") }),
    comparator: new FilterEditor(variables, { pickerId: "compare-comparator-add", listId: "compare-comparator-list", label: () => t("analyses.compare.comparator") }),
  };
  if (variables.some((v) => v.name === DEFAULT_ARM)) {
    form.treated.add(DEFAULT_ARM, { choice: "true" });
    form.comparator.add(DEFAULT_ARM, { choice: "false" });
  }
  return form;
}

function fields(form) {
  const controls = h("fieldset", { id: "compare-controls" }, h("legend", {}, t("analyses.compare.negative_controls")),
    h("p", { class: "muted small" }, t("analyses.compare.negative_controls_help")),
    h("div", { class: "choices" }, ENDPOINTS.map((name) => {
      const id = `compare-control-${name}`;
      return h("label", { for: id }, h("input", {
        id, type: "checkbox", value: name, checked: form.negativeControls.has(name),
        onchange: (event) => { if (event.target.checked) form.negativeControls.add(name); else form.negativeControls.delete(name); },
      }), " ", t(`analyses.endpoint.${name}`));
    })));
  return h("div", {},
    h("div", { class: "form-grid" },
      ARMS.map((arm) => h("fieldset", { id: `compare-${arm}` }, h("legend", {}, t(`analyses.compare.${arm}`)),
        h("p", { class: "muted small" }, t(`analyses.compare.${arm}_help`)), form[arm].element()))),
    h("div", { class: "form-grid" }, h("div", {}, endpointField("compare-endpoint", form)), controls));
}

function body(form) {
  return {
    endpoint: form.endpoint,
    treated: form.treated.spec(),
    comparator: form.comparator.spec(),
    negative_controls: [...form.negativeControls],
  };
}

function armsTable(result) {
  const columns = [t("analyses.compare.arm"), t("analyses.persons"), t("analyses.compare.matched"), t("analyses.compare.ess")]
    .map((label, i) => ({ label, number: i > 0 }));
  const rows = ARMS.map((arm) => {
    const data = result.arms[arm];
    return [t(`analyses.compare.${arm}`), shown(data.n), shown(data.matched), shown(data.effective_sample_size_ipw)];
  });
  return table("compare-arms", t("analyses.compare.arms"), columns, rows);
}

function hazardTable(result) {
  const calibrated = result.negative_controls?.calibrated || {};
  const columns = [t("analyses.compare.method"), "HR", t("analyses.ci"), "p", t("analyses.compare.calibrated_hr"), t("analyses.compare.calibrated_ci"), t("analyses.compare.calibrated_p")]
    .map((label, i) => ({ label, number: i > 0 }));
  const rows = METHODS.filter((m) => result.hazard_ratios[m]).map((method) => {
    const raw = result.hazard_ratios[method];
    const cal = calibrated[method];
    return [t(`analyses.compare.method.${method}`), decimal(raw.hr), `${decimal(raw.lower)} – ${decimal(raw.upper)}`, pValue(raw.p_value),
      cal ? decimal(cal.hr) : "—", cal ? `${decimal(cal.lower)} – ${decimal(cal.upper)}` : "—", cal ? pValue(cal.p_value) : "—"];
  });
  const missing = METHODS.filter((m) => !result.hazard_ratios[m]);
  return h("div", {},
    table("compare-hr", t("analyses.compare.hazard_ratios"), columns, rows),
    missing.length ? h("p", { class: "muted small" }, t("analyses.compare.not_estimated", { methods: missing.map((m) => t(`analyses.compare.method.${m}`)).join(", ") })) : null,
    result.negative_controls?.note ? h("p", { class: "muted small", id: "compare-calibration-note" }, result.negative_controls.note) : null);
}

function histogramTable(bins) {
  const columns = [t("analyses.compare.ps_bin"), t("analyses.compare.treated"), t("analyses.compare.comparator")].map((label, i) => ({ label, number: i > 0 }));
  return table("compare-ps-table", t("analyses.compare.ps"), columns, bins.map((bin) => [bin.label, shown(bin.treated), shown(bin.comparator)]));
}

function balanceTable(rows) {
  const columns = [t("analyses.compare.covariate"), t("analyses.compare.before"), t("analyses.compare.method.matched"), t("analyses.compare.method.ipw")].map((label, i) => ({ label, number: i > 0 }));
  return table("compare-balance-table", t("analyses.compare.balance"), columns,
    rows.map((row) => [row.covariate, decimal(row.before, 3), decimal(row.after_matching, 3), decimal(row.after_weighting, 3)]));
}

async function render(container, result) {
  const unit = t("analyses.months");
  const names = { treated: t("analyses.compare.treated"), comparator: t("analyses.compare.comparator") };
  const ps = result.propensity_score;
  const bins = (ps.histogram || []).map((bin) => ({ ...bin, label: `${decimal(bin.from)}–${decimal(bin.to)}` }));
  const charts = { balance: chartBox("compare-balance-chart"), ps: chartBox("compare-ps-chart"), matched: chartBox("compare-km-matched"), ipw: chartBox("compare-km-ipw") };
  const imbalanced = [["matching", result.imbalanced_after_matching], ["weighting", result.imbalanced_after_weighting]];
  container.append(
    h("section", { class: "card", "aria-labelledby": "compare-effect-title", dataset: { result: "compare" } },
      h("h2", { id: "compare-effect-title" }, t("analyses.compare.effect", { endpoint: t(`analyses.endpoint.${result.endpoint.name}`) })),
      armsTable(result),
      h("p", { class: "muted small" }, t("analyses.compare.excluded_both", { shown: shown(result.excluded_in_both_arms) }), " · ",
        t("analyses.compare.pairs", { shown: shown(result.matching.pairs), caliper: decimal(result.matching.caliper_sd, 2) })),
      hazardTable(result)),
    h("section", { class: "card", "aria-labelledby": "compare-balance-title" },
      h("h2", { id: "compare-balance-title" }, t("analyses.compare.balance")), charts.balance,
      imbalanced.map(([key, list]) => h("p", { class: "muted small" }, t(`analyses.compare.imbalanced_${key}`, { count: (list || []).length }))),
      h("details", {}, h("summary", {}, t("analyses.as_table")), balanceTable(result.balance || []))),
    h("section", { class: "card", "aria-labelledby": "compare-ps-title" },
      h("h2", { id: "compare-ps-title" }, t("analyses.compare.ps")), charts.ps,
      h("p", { class: "muted small" }, t("analyses.compare.ps_facts", { auc: decimal(ps.auc), equipoise: decimal((ps.equipoise ?? 0) * 100, 0) })),
      h("details", {}, h("summary", {}, t("analyses.as_table")), histogramTable(bins))),
    h("section", { class: "card", "aria-labelledby": "compare-km-title" },
      h("h2", { id: "compare-km-title" }, t("analyses.compare.adjusted_km")),
      h("div", { class: "grid" },
        h("div", {}, h("h3", {}, t("analyses.compare.method.matched")), charts.matched),
        h("div", {}, h("h3", {}, t("analyses.compare.method.ipw")), charts.ipw))),
    h("section", { class: "card", "aria-labelledby": "compare-assumptions-title" },
      h("h2", { id: "compare-assumptions-title" }, t("analyses.compare.assumptions")),
      h("ul", { id: "compare-assumptions" }, (result.assumptions || []).map((text) => h("li", {}, text)))));
  await balanceChart(charts.balance, {
    rows: result.balance || [], title: t("analyses.compare.balance"),
    adjustments: [{ key: "after_matching", label: t("analyses.compare.method.matched") }, { key: "after_weighting", label: t("analyses.compare.method.ipw") }],
  });
  await pairedHistogram(charts.ps, { bins, title: t("analyses.compare.ps"), names, axisName: t("analyses.compare.ps_axis") });
  for (const [key, km] of [["matched", "km_matched"], ["ipw", "km_ipw"]]) {
    await curveChart(charts[key], {
      series: ARMS.map((arm) => ({ name: `${names[arm]} (${shown(result.arms[arm][km].n)})`, curve: result.arms[arm][km].curve })),
      title: `${t("analyses.compare.adjusted_km")} — ${t(`analyses.compare.method.${key}`)}`, xName: unit, yName: t("analyses.survival.probability"),
    });
  }
}

/** The registry entry (see analyses.js). */
export const COMPARE = { name: "compare", path: "/analyses/compare", init, fields, body, render };
