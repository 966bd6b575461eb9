// Hypotheses in the Analyses page (an entry of its registry): two groups of the cohort as mart filters, the
// variables to compare and the significance level, and the renderer of POST /analyses/hypotheses's answer —
// the groups' sizes, one row per variable (the test its type calls for, each group's summary, the effect size
// with its 95 % CI, the raw, Benjamini–Hochberg and Holm p-values), a chart of the adjusted p-values against
// the level, and each category's counts. Counts as released ("<10" under the threshold); a withheld
// comparison says why.

import { h, replace } from "../../js/dom.js";
import { t } from "../../js/i18n.js";
import { chartBox, decimal, horizontalBars, pValue, shown, table } from "./analysis-kit.js";
import { FilterEditor, valueLabel, variableLabel } from "./filters.js";
import { field } from "./govkit.js";

const COMPARABLE = new Set(["number", "integer", "boolean", "category"]);
const DEFAULT_VARIABLES = ["age_at_diagnosis", "sex", "er_status", "had_relapse", "vital_status"];
const GROUPS = ["group_a", "group_b"];

function comparable(variables) {
  return variables.filter((v) => COMPARABLE.has(v.type) && v.disclosure !== "identifier");
}

function init(variables) {
  const form = {
    alpha: 0.05,
    chosen: new Set(DEFAULT_VARIABLES.filter((name) => variables.some((v) => v.name === name))),
    group_a: new FilterEditor(variables, { pickerId: "hypotheses-a-add", listId: "hypotheses-a-list", label: () => t("analyses.hypotheses.group_a") }),
    group_b: new FilterEditor(variables, { pickerId: "hypotheses-b-add", listId: "hypotheses-b-list", label: () => t("analyses.hypotheses.group_b") }),
  };
  if (variables.some((v) => v.name === "stage_group")) {
    form.group_a.add("stage_group", { values: ["IV"] });
    form.group_b.add("stage_group", { values: ["I", "II"] });
  }
  return form;
}

function fields(form, ctx) {
  const boxes = comparable(ctx.variables).map((variable) => {
    const id = `hypotheses-variable-${variable.name}`;
    return h("label", { for: id }, h("input", {
      id, type: "checkbox", value: variable.name, checked: form.chosen.has(variable.name),
      onchange: (event) => { if (event.target.checked) form.chosen.add(variable.name); else form.chosen.delete(variable.name); },
    }), " ", variableLabel(variable));
  });
  const alpha = h("input", {
    type: "number", min: 0.001, max: 0.2, step: 0.001, inputMode: "decimal", value: String(form.alpha),
    oninput: (event) => { form.alpha = Number(event.target.value); },
  });
  return h("div", {},
    h("div", { class: "form-grid" },
      GROUPS.map((group) => h("fieldset", { id: `hypotheses-${group}` }, h("legend", {}, t(`analyses.hypotheses.${group}`)),
        h("p", { class: "muted small" }, t("analyses.hypotheses.group_help")), form[group].element()))),
    h("fieldset", { id: "hypotheses-variables" }, h("legend", {}, t("analyses.hypotheses.variables")),
      h("p", { class: "muted small" }, t("analyses.hypotheses.variables_help")),
      h("div", { class: "choices" }, boxes)),
    field("hypotheses-alpha", t("analyses.hypotheses.alpha"), alpha, t("analyses.hypotheses.alpha_help")));
}

function body(form) {
  return { group_a: form.group_a.spec(), group_b: form.group_b.spec(), variables: [...form.chosen], alpha: form.alpha };
}

function catalogueEntry(ctx, name) {
  return ctx.variables.find((v) => v.name === name) || { name, label_en: name, label_fr: name };
}

/** One group's summary: mean (SD), median for numbers; the counts of each level otherwise. */
function summaryText(comparison, group, variable) {
  const numbers = comparison.summary?.[group];
  if (numbers) return `${decimal(numbers.mean, 1)} (${t("analyses.hypotheses.sd")} ${decimal(numbers.sd, 1)}) · ${t("analyses.hypotheses.median")} ${decimal(numbers.median, 1)}`;
  const levels = Object.entries(comparison.table || {});
  if (!levels.length) return "—";
  return levels.map(([level, cells]) => `${valueLabel(variable, level === "true" ? true : level === "false" ? false : level)} ${shown(cells[group])}`).join(" · ");
}

function effectText(effect, variable) {
  if (!effect) return "—";
  const level = effect.level === undefined || effect.level === null ? "" : ` (${valueLabel(variable, effect.level === "true" ? true : effect.level === "false" ? false : effect.level)})`;
  const ci = effect.lower === undefined || effect.lower === null ? "" : ` [${decimal(effect.lower, 3)} – ${decimal(effect.upper, 3)}]`;
  return `${t(`analyses.hypotheses.measure.${effect.measure}`)}${level} ${decimal(effect.estimate, 3)}${ci}`;
}

function significance(comparison) {
  if (comparison.p_bh === undefined || comparison.p_bh === null) return "—";
  if (comparison.significant_holm) return t("analyses.hypotheses.significant_both");
  if (comparison.significant_bh) return t("analyses.hypotheses.significant_bh");
  return t("analyses.hypotheses.not_significant");
}

function comparisonRow(comparison, ctx) {
  const variable = catalogueEntry(ctx, comparison.variable);
  const label = variableLabel(variable);
  if (comparison.withheld) {
    return [label, t("analyses.hypotheses.withheld"), shown(comparison.n.group_a), shown(comparison.n.group_b), comparison.withheld, "—", "—", "—", "—", "—", "—"];
  }
  return [label, t(`analyses.hypotheses.test.${comparison.test}`), shown(comparison.n.group_a), shown(comparison.n.group_b),
    summaryText(comparison, "group_a", variable), summaryText(comparison, "group_b", variable),
    effectText(comparison.effect, variable), pValue(comparison.p), pValue(comparison.p_bh), pValue(comparison.p_holm), significance(comparison)];
}

function levelTables(result, ctx) {
  return result.comparisons.filter((c) => c.table && Object.keys(c.table).length).map((comparison) => {
    const variable = catalogueEntry(ctx, comparison.variable);
    const columns = [{ label: t("analyses.hypotheses.level") }, { label: t("analyses.hypotheses.group_a"), number: true }, { label: t("analyses.hypotheses.group_b"), number: true }];
    const rows = Object.entries(comparison.table).map(([level, cells]) => [
      valueLabel(variable, level === "true" ? true : level === "false" ? false : level), shown(cells.group_a), shown(cells.group_b)]);
    return table(`hypotheses-levels-${comparison.variable}`, variableLabel(variable), columns, rows);
  });
}

async function render(container, result, ctx) {
  const chart = chartBox("hypotheses-p-chart");
  const tested = result.comparisons.filter((c) => c.p_bh !== undefined && c.p_bh !== null);
  const sizes = table("hypotheses-groups", t("analyses.hypotheses.groups"),
    [{ label: t("analyses.hypotheses.group") }, { label: t("analyses.persons"), number: true }],
    [[t("analyses.hypotheses.group_a"), shown(result.groups.group_a)], [t("analyses.hypotheses.group_b"), shown(result.groups.group_b)],
      [t("analyses.hypotheses.in_both"), shown(result.excluded_in_both_groups)]]);
  const columns = ["variable", "test", "n_a", "n_b", "summary_a", "summary_b", "effect", "p", "p_bh", "p_holm", "verdict"]
    .map((key) => ({ label: t(`analyses.hypotheses.column.${key}`), number: ["n_a", "n_b", "p", "p_bh", "p_holm"].includes(key) }));
  replace(container,
    h("section", { class: "card", "aria-labelledby": "hypotheses-title", dataset: { result: "hypotheses" } },
      h("h2", { id: "hypotheses-title" }, t("analyses.hypotheses.title")),
      sizes,
      result.withheld ? h("p", { class: "alert alert-warn", id: "hypotheses-withheld" }, t("analyses.hypotheses.all_withheld", { reason: result.withheld })) : null,
      result.comparisons.length
        ? table("hypotheses-table", t("analyses.hypotheses.comparisons", { alpha: decimal(result.alpha, 3) }), columns,
          result.comparisons.map((comparison) => comparisonRow(comparison, ctx)))
        : null,
      h("p", { class: "muted small" }, t("analyses.hypotheses.multiplicity", { tests: result.multiplicity?.tests ?? 0 }))),
    tested.length
      ? h("section", { class: "card", "aria-labelledby": "hypotheses-chart-title" },
        h("h2", { id: "hypotheses-chart-title" }, t("analyses.hypotheses.chart")),
        h("p", { class: "muted small" }, t("analyses.hypotheses.chart_help", { alpha: decimal(result.alpha, 3) })),
        chart)
      : null,
    levelTables(result, ctx).length
      ? h("section", { class: "card", "aria-labelledby": "hypotheses-levels-title" },
        h("h2", { id: "hypotheses-levels-title" }, t("analyses.hypotheses.levels")),
        h("details", {}, h("summary", {}, t("analyses.as_table")), levelTables(result, ctx)))
      : null);
  if (tested.length) {
    // −log10 of the BH-adjusted p-value: the longer the bar, the stronger the evidence; the level is a value to pass.
    const rows = tested.map((c) => ({ label: variableLabel(catalogueEntry(ctx, c.variable)), value: Math.min(50, -Math.log10(Math.max(c.p_bh, 1e-300))) }));
    rows.push({ label: t("analyses.hypotheses.level_line", { alpha: decimal(result.alpha, 3) }), value: -Math.log10(result.alpha) });
    await horizontalBars(chart, { rows, title: t("analyses.hypotheses.chart"), axisName: t("analyses.hypotheses.chart_axis") });
  }
}

/** The registry entry (see analyses.js). */
export const HYPOTHESES = { name: "hypotheses", path: "/analyses/hypotheses", init, fields, body, render };
