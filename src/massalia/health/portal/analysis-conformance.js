// Conformance to reference practice in the Analyses page (an entry of its registry): the form (the shipped rules
// to evaluate, or a rule file of one's own as YAML whose 422 errors show beside it; the outcome endpoint) and the
// renderer of POST /analyses/conformance's answer — per rule: the overall rate with its Wilson CI, the rates per
// site (bars with CI whiskers) and per year of diagnosis, the statuses, and the outcomes of conforming versus
// deviating persons from the landmark (KM, log-rank, Cox HR). A suppressed rate says why; counts as released.

import { field } from "./govkit.js";
import { h, replace } from "../../js/dom.js";
import { t } from "../../js/i18n.js";
import { chartBox, curveChart, decimal, pEquals, percent, pValue, rateChart, shown, table } from "./analysis-kit.js";
import { endpointField } from "./analysis-survival.js";

/**
 * The rule ids of the shipped set (massalia/health/analytics/reference_practice.yaml), in its order; their
 * titles are in the catalogues. A test checks this list against the file.
 */
export const SHIPPED_RULES = [
  "her2_early_breast_anti_her2",
  "er_positive_breast_endocrine",
  "stage3_colon_adjuvant_within_8_weeks",
  "egfr_metastatic_nsclc_tki",
];
export const STATUSES = ["conforming", "not_given", "too_early", "too_late", "no_anchor", "short_follow_up"];

/** Where the last rule file's errors are shown (beside its text area), while the form is on screen. */
let errorsBox = null;

function init() {
  return { rules: new Set(SHIPPED_RULES), own: false, yaml: "", endpoint: "os" };
}

function fields(form) {
  const checks = SHIPPED_RULES.map((id) => h("label", { class: "check" },
    h("input", {
      type: "checkbox", id: `conformance-rule-${id}`, value: id, checked: form.rules.has(id), disabled: form.own,
      onchange: (event) => { if (event.target.checked) form.rules.add(id); else form.rules.delete(id); },
    }), " ", t(`analyses.conformance.rule.${id}`)));
  const rules = h("fieldset", { id: "conformance-rules" }, h("legend", {}, t("analyses.conformance.rules")), checks,
    h("span", { class: "muted small" }, t("analyses.conformance.rules_help")));
  errorsBox = h("div", { id: "conformance-yaml-errors", class: "rule-errors", "aria-live": "polite" });
  const yaml = h("textarea", {
    rows: 10, spellcheck: false, value: form.yaml, disabled: !form.own, maxLength: 200000,
    "aria-describedby": "conformance-yaml-help conformance-yaml-errors",
    oninput: (event) => { form.yaml = event.target.value; },
  });
  yaml.id = "conformance-yaml";
  const own = h("input", {
    type: "checkbox", id: "conformance-own", checked: form.own,
    onchange: (event) => {
      form.own = event.target.checked;
      yaml.disabled = !form.own;
      for (const box of rules.querySelectorAll("input")) box.disabled = form.own;
    },
  });
  return h("div", { class: "form-grid" },
    rules,
    endpointField("conformance-endpoint", form),
    h("div", { class: "field" },
      h("label", { for: "conformance-own" }, own, " ", t("analyses.conformance.own")),
      h("label", { for: "conformance-yaml" }, t("analyses.conformance.yaml")),
      yaml,
      h("span", { class: "muted small", id: "conformance-yaml-help" }, t("analyses.conformance.yaml_help")),
      errorsBox));
}

function body(form) {
  if (errorsBox) replace(errorsBox);
  if (form.own) return { rules_yaml: form.yaml, endpoint: form.endpoint };
  return { rules: SHIPPED_RULES.filter((id) => form.rules.has(id)), endpoint: form.endpoint };
}

/** A 422 about the rule file: its problems, one a line ("rules_yaml: rules[0].window.max_days: …"), beside it. */
function failed(error) {
  if (!errorsBox || error.status !== 422 || !/rules_yaml|rule/.test(error.message || "")) return;
  const problems = String(error.message).split("; ").filter(Boolean);
  replace(errorsBox, h("p", { class: "alert alert-error", role: "alert" }, t("analyses.conformance.yaml_refused")),
    h("ul", { class: "small" }, problems.map((problem) => h("li", {}, h("code", {}, problem)))));
}

/** A rate as read: "86.3 % (95 % CI 84.9 % – 87.6 %)", or why it is not shown. */
function rateText(cell, threshold) {
  if (cell.rate === null || cell.rate === undefined) return t("analyses.conformance.suppressed", { threshold });
  return `${percent(cell.rate)} (${t("analyses.ci")} ${percent(cell.lower)} – ${percent(cell.upper)})`;
}

function rateRows(cells, threshold) {
  return cells.map((cell) => [cell.group, shown(cell.evaluable), shown(cell.conforming), shown(cell.deviating),
    cell.rate === null ? t("analyses.conformance.not_shown") : percent(cell.rate),
    cell.rate === null ? "—" : `${percent(cell.lower)} – ${percent(cell.upper)}`]);
}

function rateColumns(first) {
  return [{ label: first }, ...["evaluable", "conforming", "deviating", "rate"].map((k) => ({ label: t(`analyses.conformance.${k}`), number: true })),
    { label: t("analyses.ci"), number: true }];
}

function outcomesPart(outcomes, index, unit) {
  const parts = [];
  const chart = chartBox(`conformance-${index}-km`);
  parts.push(h("h3", {}, t("analyses.conformance.outcomes")),
    h("p", { class: "muted small" }, t("analyses.conformance.landmark", { n: shown(outcomes.persons) })), chart,
    table(`conformance-${index}-groups`, t("analyses.survival.groups"),
      [t("analyses.group"), t("analyses.persons"), t("analyses.events"), t("analyses.survival.median")].map((label, i) => ({ label, number: i > 0 })),
      ["conforming", "deviating"].filter((group) => outcomes.km?.[group]).map((group) => {
        const km = outcomes.km[group];
        return [t(`analyses.conformance.${group}`), shown(km.n), shown(km.events),
          km.median === null || km.median === undefined ? t("analyses.survival.not_reached") : decimal(km.median, 1)];
      })));
  if (outcomes.logrank) {
    parts.push(h("p", { id: `conformance-${index}-logrank` }, t("analyses.survival.logrank", { chi2: decimal(outcomes.logrank.chi2), df: outcomes.logrank.df ?? "—", p: pEquals(outcomes.logrank.p_value) })));
  }
  const term = outcomes.cox?.terms?.find((item) => item.term === "deviating");
  if (term) {
    parts.push(h("p", { id: `conformance-${index}-hr` }, t("analyses.conformance.hr", {
      hr: decimal(term.hr), lower: decimal(term.lower), upper: decimal(term.upper), p: pValue(term.p_value),
    })));
  } else {
    parts.push(h("p", { class: "muted small", id: `conformance-${index}-no-hr` }, t("analyses.conformance.no_comparison"), outcomes.note ? ` (${outcomes.note})` : ""));
  }
  const series = ["conforming", "deviating"].filter((group) => outcomes.km?.[group]?.curve?.length)
    .map((group) => ({ name: t(`analyses.conformance.${group}`), curve: outcomes.km[group].curve }));
  return { parts, draw: () => curveChart(chart, { series, title: t("analyses.conformance.km_chart"), xName: unit, yName: t("analyses.survival.probability") }) };
}

async function render(container, result) {
  const threshold = result.threshold;
  const unit = t("analyses.conformance.months_since_landmark");
  const drawings = [];
  (result.rules || []).forEach((rule, index) => {
    const sites = chartBox(`conformance-${index}-sites`);
    const outcomes = outcomesPart(rule.outcomes, index, unit);
    const guideline = rule.guideline || {};
    container.append(h("section", { class: "card", id: `conformance-${index}`, dataset: { rule: rule.id, result: "conformance" }, "aria-labelledby": `conformance-${index}-title` },
      h("h2", { id: `conformance-${index}-title` }, rule.title),
      h("p", { class: "muted small" }, t("analyses.conformance.guideline", { source: guideline.source ?? "—", year: guideline.year ?? "" }), " ",
        /^https:\/\//.test(guideline.url || "") ? h("a", { href: guideline.url, rel: "noopener noreferrer", target: "_blank" }, guideline.url) : (guideline.url || null)),
      h("p", { class: "muted small" }, t("analyses.conformance.definition", {
        expected: rule.expected, anchor: rule.anchor, min: rule.window_days?.[0] ?? "—", max: rule.window_days?.[1] ?? "—", population: shown(rule.population),
      })),
      h("p", { class: "lead", id: `conformance-${index}-rate` }, h("strong", {}, t("analyses.conformance.overall")), " ", rateText(rule.overall, threshold)),
      h("p", { class: "small", id: `conformance-${index}-counts` }, t("analyses.conformance.counts", {
        evaluable: shown(rule.overall.evaluable), conforming: shown(rule.overall.conforming), deviating: shown(rule.overall.deviating),
      })),
      h("h3", {}, t("analyses.conformance.by_site")), sites,
      table(`conformance-${index}-site-table`, t("analyses.conformance.by_site"), rateColumns(t("analyses.conformance.site")), rateRows(rule.by_site || [], threshold)),
      table(`conformance-${index}-period-table`, t("analyses.conformance.by_period"), rateColumns(t("analyses.conformance.year")), rateRows(rule.by_period || [], threshold)),
      table(`conformance-${index}-statuses`, t("analyses.conformance.statuses"),
        [{ label: t("analyses.conformance.status") }, { label: t("analyses.persons"), number: true }],
        STATUSES.map((status) => [t(`analyses.conformance.status.${status}`), shown(rule.statuses?.[status])])),
      outcomes.parts,
      h("p", { class: "muted small" }, t("analyses.survival.protected", { threshold }))));
    drawings.push(() => rateChart(sites, {
      rows: (rule.by_site || []).map((cell) => ({ label: cell.group, rate: cell.rate, lower: cell.lower, upper: cell.upper, shown: t("analyses.conformance.not_shown") })),
      title: t("analyses.conformance.by_site"), axisName: t("analyses.conformance.site"),
    }), outcomes.draw);
  });
  if (!result.rules?.length) container.append(h("p", { class: "alert alert-warn" }, t("analyses.conformance.no_rule")));
  for (const draw of drawings) await draw();
}

/** The registry entry (see analyses.js). */
export const CONFORMANCE = { name: "conformance", path: "/analyses/conformance", init, fields, body, render, failed };
