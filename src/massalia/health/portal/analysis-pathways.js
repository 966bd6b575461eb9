// Care pathways in the Analyses page (an entry of its registry): the form (steps K, top N, modality or regimen)
// and the renderer of POST /analyses/pathways's answer — the Sankey of the shown pathways (link width = persons,
// tooltip = median and IQR of days between the steps), the ranked pathways with the summed `other`, and the
// days to each step. Counts as released ("<10" under the threshold); the Sankey is drawn from shown pathways only.

import { field } from "./govkit.js";
import { h } from "../../js/dom.js";
import { has, t } from "../../js/i18n.js";
import { chartBox, decimal, percent, sankeyChart, shown, table } from "./analysis-kit.js";

/** A step's label in the reader's language: known modalities translated, regimens (ingredients) as they are. */
export function stepLabel(label) {
  return String(label).split("+").map((part) => (has(`analyses.pathways.step.${part}`) ? t(`analyses.pathways.step.${part}`) : part)).join(" + ");
}

function init() {
  return { maxSteps: 4, top: 10, detail: "modality" };
}

function fields(form) {
  const steps = h("select", { onchange: (event) => { form.maxSteps = Number(event.target.value); } },
    [1, 2, 3, 4, 5, 6, 7, 8].map((k) => h("option", { value: String(k), selected: k === form.maxSteps }, String(k))));
  const top = h("input", {
    type: "number", min: 1, max: 50, step: 1, inputMode: "numeric", value: String(form.top),
    oninput: (event) => { form.top = Number(event.target.value); },
  });
  const detail = h("select", { onchange: (event) => { form.detail = event.target.value; } },
    ["modality", "regimen"].map((name) => h("option", { value: name, selected: name === form.detail }, t(`analyses.pathways.detail.${name}`))));
  return h("div", { class: "form-grid" },
    field("pathways-steps", t("analyses.pathways.steps"), steps, t("analyses.pathways.steps_help")),
    field("pathways-top", t("analyses.pathways.top"), top, t("analyses.pathways.top_help")),
    field("pathways-detail", t("analyses.pathways.detail"), detail));
}

function body(form) {
  return { max_steps: form.maxSteps, top: form.top, detail: form.detail };
}

/** Days between steps as read: "30 (IQR 22–38)"; quartiles are released for groups of ≥ threshold only. */
export function daysText(summary) {
  if (!summary || summary.median === null || summary.median === undefined) return "—";
  const iqr = summary.q1 === null || summary.q1 === undefined ? "" : ` (${t("analyses.pathways.iqr")} ${decimal(summary.q1, 1)}–${decimal(summary.q3, 1)})`;
  return `${decimal(summary.median, 1)}${iqr}`;
}

function nodeName(node) {
  return node.step === 0 ? t("analyses.pathways.step.diagnosis") : `${node.step}. ${stepLabel(node.label)}`;
}

async function render(container, result) {
  const nodes = result.sankey?.nodes || [];
  const byId = new Map(nodes.map((node) => [node.id, node]));
  const links = result.sankey?.links || [];
  const linkName = (link) => `${nodeName(byId.get(link.source))} → ${nodeName(byId.get(link.target))}`;
  const linkTip = (link) => `${linkName(link)}: ${shown(link.value)} ${t("analyses.persons").toLowerCase()}, ${t("analyses.pathways.median_days")} ${daysText(link.days_between)}`;
  const chart = chartBox("pathways-sankey-chart");
  chart.classList.add("chart-tall");
  const ranked = (result.pathways || []).map((item, index) => [
    String(index + 1), item.steps.map(stepLabel).join(" → "), shown(item.persons), percent(item.share)]);
  const other = result.other;
  const rows = other ? [...ranked, [t("analyses.pathways.other"), t("analyses.pathways.other_pathways", { n: shown(other.distinct_pathways) }), shown(other.persons), "—"]] : ranked;
  container.append(
    h("section", { class: "card", "aria-labelledby": "pathways-sankey-title", dataset: { result: "pathways" } },
      h("h2", { id: "pathways-sankey-title" }, t("analyses.pathways.sankey")),
      h("p", { class: "muted small", id: "pathways-persons" }, t("analyses.pathways.persons", { n: shown(result.persons), threshold: result.threshold })),
      chart,
      table("pathways-links", t("analyses.pathways.links"),
        [{ label: t("analyses.pathways.link") }, { label: t("analyses.persons"), number: true }, { label: t("analyses.pathways.median_days"), number: true }],
        links.map((link) => [linkName(link), shown(link.value), daysText(link.days_between)]))),
    h("section", { class: "card", "aria-labelledby": "pathways-ranked-title" },
      h("h2", { id: "pathways-ranked-title" }, t("analyses.pathways.ranked")),
      table("pathways-table", t("analyses.pathways.ranked_caption", { top: result.pathways?.length ?? 0 }),
        [{ label: t("analyses.pathways.rank") }, { label: t("analyses.pathways.pathway") }, { label: t("analyses.persons"), number: true }, { label: t("analyses.pathways.share"), number: true }],
        rows),
      h("p", { class: "muted small" }, t("analyses.pathways.protected", { threshold: result.threshold }))),
    h("section", { class: "card", "aria-labelledby": "pathways-days-title" },
      h("h2", { id: "pathways-days-title" }, t("analyses.pathways.days_to_step")),
      table("pathways-days", t("analyses.pathways.days_caption"),
        [{ label: t("analyses.pathways.step") }, { label: t("analyses.persons"), number: true }, { label: t("analyses.pathways.median_days"), number: true }],
        (result.days_to_step || []).map((row) => [String(row.step), shown(row.n), daysText(row)]))));
  await sankeyChart(chart, { nodes, links, title: t("analyses.pathways.sankey"), nodeLabel: nodeName, linkTip });
}

/** The registry entry (see analyses.js). */
export const PATHWAYS = { name: "pathways", path: "/analyses/pathways", init, fields, body, render };
