// Patterns in the Analyses page (an entry of its registry): the variables mined (booleans and categories of the
// mart), whether to mine care sequences, the lift and false-discovery level that make a pattern "unexpected", and
// the renderer of POST /analyses/patterns's answer — association rules A ⇒ b between findings and treatments and
// frequent care sequences, each with its persons, support, confidence, lift and BH-adjusted p, unexpected ones
// first and marked, and a chart of the unexpected rules' lift. Counts as released ("<10" under the threshold);
// a rule with a small cell is never shown (the answer says how many were withheld).

import { h, replace } from "../../js/dom.js";
import { t } from "../../js/i18n.js";
import { chartBox, decimal, horizontalBars, percent, pValue, shown, table } from "./analysis-kit.js";
import { stepLabel } from "./analysis-pathways.js";
import { valueLabel, variableLabel } from "./filters.js";
import { field } from "./govkit.js";

const MINED = new Set(["boolean", "category"]);

function mineable(variables) {
  return variables.filter((v) => MINED.has(v.type) && v.disclosure !== "identifier");
}

function init() {
  return { chosen: new Set(), sequences: true, minLift: 1.5, alpha: 0.05 };
}

function fields(form, ctx) {
  const boxes = mineable(ctx.variables).map((variable) => {
    const id = `patterns-variable-${variable.name}`;
    return h("label", { for: id }, h("input", {
      id, type: "checkbox", value: variable.name, checked: form.chosen.has(variable.name),
      onchange: (event) => { if (event.target.checked) form.chosen.add(variable.name); else form.chosen.delete(variable.name); },
    }), " ", variableLabel(variable));
  });
  const sequences = h("input", {
    id: "patterns-sequences-box", type: "checkbox", checked: form.sequences,
    onchange: (event) => { form.sequences = event.target.checked; },
  });
  const lift = h("input", {
    type: "number", min: 1, max: 100, step: 0.1, inputMode: "decimal", value: String(form.minLift),
    oninput: (event) => { form.minLift = Number(event.target.value); },
  });
  const alpha = h("input", {
    type: "number", min: 0.001, max: 0.2, step: 0.001, inputMode: "decimal", value: String(form.alpha),
    oninput: (event) => { form.alpha = Number(event.target.value); },
  });
  return h("div", {},
    h("fieldset", { id: "patterns-variables" }, h("legend", {}, t("analyses.patterns.variables")),
      h("p", { class: "muted small" }, t("analyses.patterns.variables_help")),
      h("div", { class: "choices" }, boxes)),
    h("div", { class: "form-grid" },
      h("label", { for: "patterns-sequences-box" }, sequences, " ", t("analyses.patterns.sequences")),
      field("patterns-lift", t("analyses.patterns.min_lift"), lift, t("analyses.patterns.min_lift_help")),
      field("patterns-alpha", t("analyses.patterns.alpha"), alpha, t("analyses.patterns.alpha_help"))));
}

function body(form) {
  return {
    variables: form.chosen.size >= 2 ? [...form.chosen] : null,
    sequences: form.sequences, min_lift: form.minLift, alpha: form.alpha,
  };
}

/** An item ``variable=value`` in the reader's language. */
function itemLabel(item, ctx) {
  const [name, raw] = item.split("=", 2);
  const variable = ctx.variables.find((v) => v.name === name) || { name, label_en: name, label_fr: name };
  const value = raw === "true" ? true : raw === "false" ? false : raw;
  return `${variableLabel(variable)} = ${valueLabel(variable, value)}`;
}

function ruleText(rule, ctx) {
  return `${rule.antecedent.map((item) => itemLabel(item, ctx)).join(" & ")} ⇒ ${itemLabel(rule.consequent, ctx)}`;
}

function flag(pattern) {
  return pattern.unexpected ? t("analyses.patterns.unexpected") : t("analyses.patterns.expected");
}

function daysText(quartiles) {
  if (!quartiles || quartiles.median === null || quartiles.median === undefined) return "—";
  return decimal(quartiles.median, 0);
}

async function render(container, result, ctx) {
  const rules = result.associations?.rules || [];
  const sequences = result.sequences?.sequences || [];
  const unexpected = rules.filter((rule) => rule.unexpected);
  const chart = chartBox("patterns-lift-chart");
  const ruleColumns = ["rule", "persons", "support", "confidence", "lift", "expected", "q", "verdict"]
    .map((key) => ({ label: t(`analyses.patterns.column.${key}`), number: !["rule", "verdict"].includes(key) }));
  const sequenceColumns = ["sequence", "persons", "support", "confidence", "lift", "days", "q", "verdict"]
    .map((key) => ({ label: t(`analyses.patterns.column.${key}`), number: !["sequence", "verdict"].includes(key) }));
  replace(container,
    h("section", { class: "card", "aria-labelledby": "patterns-title", dataset: { result: "patterns" } },
      h("h2", { id: "patterns-title" }, t("analyses.patterns.title")),
      h("p", { id: "patterns-summary" }, t("analyses.patterns.summary", {
        persons: shown(result.persons), tested: result.associations?.tested ?? 0,
        significant: result.associations?.significant ?? 0, unexpected: unexpected.length,
        withheld: result.associations?.withheld_small_cells ?? 0, threshold: result.threshold,
      })),
      rules.length
        ? table("patterns-rules", t("analyses.patterns.rules"), ruleColumns, rules.map((rule) => [
          ruleText(rule, ctx), shown(rule.persons), percent(rule.support), percent(rule.confidence), decimal(rule.lift, 2),
          decimal(rule.expected_persons, 1), pValue(rule.q), flag(rule)]))
        : h("p", { class: "muted", id: "patterns-no-rules" }, t("analyses.patterns.no_rules")),
      h("p", { class: "muted small" }, result.method?.unexpected ? t("analyses.patterns.method", { rule: result.method.unexpected }) : null)),
    unexpected.length
      ? h("section", { class: "card", "aria-labelledby": "patterns-chart-title" },
        h("h2", { id: "patterns-chart-title" }, t("analyses.patterns.chart")),
        h("p", { class: "muted small" }, t("analyses.patterns.chart_help")),
        chart)
      : null,
    result.sequences
      ? h("section", { class: "card", "aria-labelledby": "patterns-sequences-title" },
        h("h2", { id: "patterns-sequences-title" }, t("analyses.patterns.sequences_title")),
        sequences.length
          ? table("patterns-sequences", t("analyses.patterns.sequences_caption", { withheld: result.sequences.withheld_small_cells ?? 0 }),
            sequenceColumns, sequences.map((sequence) => [
              sequence.steps.map(stepLabel).join(" → "), shown(sequence.persons), percent(sequence.support),
              percent(sequence.confidence), decimal(sequence.lift, 2), daysText(sequence.days_between), pValue(sequence.q), flag(sequence)]))
          : h("p", { class: "muted" }, t("analyses.patterns.no_sequences")))
      : null);
  if (unexpected.length) {
    const rows = unexpected.slice(0, 15).map((rule) => ({ label: ruleText(rule, ctx), value: rule.lift }));
    await horizontalBars(chart, { rows, title: t("analyses.patterns.chart"), axisName: t("analyses.patterns.column.lift") });
  }
}

/** The registry entry (see analyses.js). */
export const PATTERNS = { name: "patterns", path: "/analyses/patterns", init, fields, body, render };
