// Patient groups in the Analyses page (an entry of its registry): the range of group counts tried and how many
// distinguishing variables to list, and the renderer of POST /analyses/groups's answer — the number of groups
// chosen by silhouette (each tried count's score as bars), one card per group (its size, the variables that
// set it apart: standardized difference, the group's value against the rest) and the groups' Kaplan–Meier
// curves. Counts as released ("<10" under the threshold: such a group shows its size and nothing else).

import { h, replace } from "../../js/dom.js";
import { t } from "../../js/i18n.js";
import { chartBox, curveChart, decimal, horizontalBars, percent, shown, table } from "./analysis-kit.js";
import { ENDPOINTS, endpointField } from "./analysis-survival.js";
import { valueLabel, variableLabel } from "./filters.js";
import { field } from "./govkit.js";

const COUNTS = [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];

function init() {
  return { endpoint: ENDPOINTS[0], minGroups: 2, maxGroups: 6, top: 5 };
}

function countSelect(id, form, key) {
  return h("select", { id, onchange: (event) => { form[key] = Number(event.target.value); } },
    COUNTS.map((k) => h("option", { value: String(k), selected: k === form[key] }, String(k))));
}

function fields(form) {
  const top = h("input", {
    type: "number", min: 1, max: 20, step: 1, inputMode: "numeric", value: String(form.top),
    oninput: (event) => { form.top = Number(event.target.value); },
  });
  return h("div", { class: "form-grid" },
    field("groups-min", t("analyses.groups.min"), countSelect("groups-min", form, "minGroups")),
    field("groups-max", t("analyses.groups.max"), countSelect("groups-max", form, "maxGroups"), t("analyses.groups.range_help")),
    field("groups-top", t("analyses.groups.top"), top),
    h("div", {}, endpointField("groups-endpoint", form)));
}

function body(form) {
  return { endpoint: form.endpoint, min_groups: form.minGroups, max_groups: form.maxGroups, top: form.top };
}

function catalogueEntry(ctx, name) {
  return ctx.variables.find((v) => v.name === name) || { name, label_en: name, label_fr: name };
}

function level(variable, value) {
  return valueLabel(variable, value === "true" ? true : value === "false" ? false : value);
}

/** A distinguishing variable: its label (with the level of a category), the group's value against the rest. */
function distinguishingRow(row, ctx) {
  const variable = catalogueEntry(ctx, row.variable);
  const name = row.level === undefined ? variableLabel(variable) : `${variableLabel(variable)} = ${level(variable, row.level)}`;
  const inGroup = row.share_in_group !== undefined
    ? `${percent(row.share_in_group)} (${shown(row.in_group)})`
    : `${decimal(row.mean_in_group, 2)} (${shown(row.known_in_group)})`;
  const rest = row.share_in_rest !== undefined ? percent(row.share_in_rest) : decimal(row.mean_in_rest, 2);
  return [name, decimal(row.smd, 2), inGroup, rest];
}

function groupCard(group, ctx) {
  const id = `groups-group-${group.group}`;
  const suppressed = group.size.count === null;
  const columns = [{ label: t("analyses.groups.variable") }, { label: t("analyses.groups.smd"), number: true },
    { label: t("analyses.groups.in_group"), number: true }, { label: t("analyses.groups.in_rest"), number: true }];
  return h("section", { class: "card", "aria-labelledby": `${id}-title`, id },
    h("h3", { id: `${id}-title` }, t("analyses.groups.group", { n: group.group, size: shown(group.size) })),
    suppressed || !group.distinguishing?.length
      ? h("p", { class: "muted small" }, t("analyses.groups.suppressed", { threshold: ctx.threshold }))
      : table(`${id}-table`, t("analyses.groups.distinguishing", { n: group.group }), columns,
        group.distinguishing.map((row) => distinguishingRow(row, ctx))),
    group.km?.median !== undefined && group.km?.median !== null
      ? h("p", { class: "muted small" }, t("analyses.groups.median", { months: decimal(group.km.median, 1) }))
      : null);
}

async function render(container, result, ctx) {
  const charts = { silhouette: chartBox("groups-silhouette-chart"), km: chartBox("groups-km-chart") };
  const local = { ...ctx, threshold: result.threshold };
  const scores = Object.entries(result.silhouette || {}).map(([k, score]) => [Number(k), score]).sort((a, b) => a[0] - b[0]);
  const curves = (result.groups || []).filter((g) => g.km?.curve?.length);
  replace(container,
    h("section", { class: "card", "aria-labelledby": "groups-title", dataset: { result: "groups" } },
      h("h2", { id: "groups-title" }, t("analyses.groups.title", { k: result.k })),
      h("p", { id: "groups-persons" }, t("analyses.groups.persons", { n: shown(result.persons), k: result.k })),
      h("p", { class: "muted small" }, result.method),
      charts.silhouette,
      h("details", {}, h("summary", {}, t("analyses.as_table")),
        table("groups-silhouette", t("analyses.groups.silhouette"),
          [{ label: t("analyses.groups.k") }, { label: t("analyses.groups.score"), number: true }],
          scores.map(([k, score]) => [String(k), decimal(score, 3)])))),
    h("div", { id: "groups-cards" }, (result.groups || []).map((group) => groupCard(group, local))),
    curves.length
      ? h("section", { class: "card", "aria-labelledby": "groups-km-title" },
        h("h2", { id: "groups-km-title" }, t("analyses.groups.km", { endpoint: t(`analyses.endpoint.${result.endpoint?.name || "os"}`) })),
        charts.km)
      : null);
  await horizontalBars(charts.silhouette, {
    rows: scores.map(([k, score]) => ({ label: t("analyses.groups.k_groups", { k }), value: score })).reverse(),
    title: t("analyses.groups.silhouette"), axisName: t("analyses.groups.score"),
  });
  if (curves.length) {
    await curveChart(charts.km, {
      series: curves.map((g) => ({ name: t("analyses.groups.group", { n: g.group, size: shown(g.size) }), curve: g.km.curve })),
      title: t("analyses.groups.km", { endpoint: t(`analyses.endpoint.${result.endpoint?.name || "os"}`) }),
      xName: t("analyses.months"), yName: t("analyses.survival.probability"),
    });
  }
}

/** The registry entry (see analyses.js). */
export const GROUPS = { name: "groups", path: "/analyses/groups", init, fields, body, render };
