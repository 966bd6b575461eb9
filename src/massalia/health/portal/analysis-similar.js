// Similar cases in the Analyses page (an entry of its registry): an index patient — named by its project
// pseudonym under a pseudonymized project, or described by a profile (variable → value, as JSON) under any
// approved project — and how many neighbours, and the renderer of POST /analyses/similar's answer: the
// candidates and neighbours counted, how far the neighbours agree with the index on each variable of the
// distance (bars and table), their protected profile, their Kaplan–Meier curve with the numbers at risk and,
// under a pseudonymized project, the neighbours listed by pseudonym. Counts as released ("<10").

import { h, replace } from "../../js/dom.js";
import { t } from "../../js/i18n.js";
import { chartBox, curveChart, decimal, horizontalBars, percent, shown, table } from "./analysis-kit.js";
import { valueLabel, variableLabel } from "./filters.js";
import { field } from "./govkit.js";

const EXAMPLE_PROFILE = { primary_site: "breast", age_at_diagnosis: 55, sex: "female", stage_group: "II" };

function init() {
  return { pseudonym: "", profile: JSON.stringify(EXAMPLE_PROFILE, null, 2), k: 30 };
}

function fields(form) {
  const pseudonym = h("input", { type: "text", maxLength: 64, autocomplete: "off", value: form.pseudonym, oninput: (event) => { form.pseudonym = event.target.value.trim(); } });
  const profile = h("textarea", { rows: 6, spellcheck: false, class: "code", oninput: (event) => { form.profile = event.target.value; } }, form.profile);
  const k = h("input", { type: "number", min: 1, max: 500, step: 1, inputMode: "numeric", value: String(form.k), oninput: (event) => { form.k = Number(event.target.value); } });
  return h("div", { class: "form-grid" },
    field("similar-pseudonym", t("analyses.similar.pseudonym"), pseudonym, t("analyses.similar.pseudonym_help")),
    field("similar-profile", t("analyses.similar.profile"), profile, t("analyses.similar.profile_help")),
    field("similar-k", t("analyses.similar.k"), k));
}

/** The index by pseudonym when one is given, else the profile (text that is not JSON goes as is: the API's 422). */
function body(form) {
  if (form.pseudonym) return { index_pseudonym: form.pseudonym, k: form.k };
  let profile = form.profile;
  try {
    profile = JSON.parse(form.profile);
  } catch {
    // left as text: the API answers 422 at body.index_profile
  }
  return { index_profile: profile, k: form.k };
}

function catalogueEntry(ctx, name) {
  return ctx.variables.find((v) => v.name === name) || { name, label_en: name, label_fr: name };
}

function level(variable, value) {
  return valueLabel(variable, value === "true" ? true : value === "false" ? false : value);
}

/** A neighbours' profile line: each level's count, or the quartiles of a number, and what is missing. */
function profileText(entry, variable) {
  if (entry.counts) {
    const levels = Object.entries(entry.counts).map(([value, cell]) => `${level(variable, value)} ${shown(cell)}`);
    return levels.length ? levels.join(" · ") : "—";
  }
  if (entry.quartiles) return `${decimal(entry.quartiles[1], 1)} (${t("analyses.similar.iqr")} ${decimal(entry.quartiles[0], 1)}–${decimal(entry.quartiles[2], 1)})`;
  return t("analyses.similar.too_few");
}

function indexText(result, ctx) {
  const values = result.index?.profile || result.index?.values || {};
  const parts = Object.entries(values).filter(([, value]) => value !== null && value !== undefined)
    .map(([name, value]) => `${variableLabel(catalogueEntry(ctx, name))}: ${level(catalogueEntry(ctx, name), typeof value === "boolean" ? String(value) : value)}`);
  return parts.join(" · ");
}

async function render(container, result, ctx) {
  const charts = { agreement: chartBox("similar-agreement-chart"), km: chartBox("similar-km-chart") };
  const agreement = result.agreement || [];
  const agreementColumns = [t("analyses.similar.variable"), t("analyses.similar.weight"), t("analyses.similar.agreeing"), t("analyses.similar.differing"), t("analyses.similar.missing"), t("analyses.similar.similarity")]
    .map((label, i) => ({ label, number: i > 0 }));
  const profile = Object.entries(result.profile || {});
  const km = result.km || {};
  const listed = result.listed || [];
  replace(container,
    h("section", { class: "card", "aria-labelledby": "similar-title", dataset: { result: "similar" } },
      h("h2", { id: "similar-title" }, t("analyses.similar.title")),
      h("p", { id: "similar-index" }, result.index?.pseudonym ? t("analyses.similar.index_pseudonym", { pseudonym: result.index.pseudonym }) : t("analyses.similar.index_profile"), " ", indexText(result, ctx)),
      h("p", { id: "similar-counts" }, t("analyses.similar.counts", { neighbours: shown(result.neighbours), candidates: shown(result.candidates) })),
      h("p", { class: "muted small" }, result.distance?.method || "")),
    h("section", { class: "card", "aria-labelledby": "similar-agreement-title" },
      h("h2", { id: "similar-agreement-title" }, t("analyses.similar.agreement")),
      charts.agreement,
      h("details", {}, h("summary", {}, t("analyses.as_table")),
        table("similar-agreement", t("analyses.similar.agreement"), agreementColumns, agreement.map((row) => [
          variableLabel(catalogueEntry(ctx, row.variable)), decimal(row.weight, 1), shown(row.agreeing), shown(row.differing), shown(row.missing), percent(row.similarity)])))),
    h("section", { class: "card", "aria-labelledby": "similar-profile-title" },
      h("h2", { id: "similar-profile-title" }, t("analyses.similar.neighbours_profile")),
      table("similar-profile-table", t("analyses.similar.neighbours_profile"),
        [{ label: t("analyses.similar.variable") }, { label: t("analyses.similar.among_neighbours") }, { label: t("analyses.similar.missing"), number: true }],
        profile.map(([name, entry]) => [variableLabel(catalogueEntry(ctx, name)), profileText(entry, catalogueEntry(ctx, name)), shown(entry.missing ?? null)]))),
    h("section", { class: "card", "aria-labelledby": "similar-km-title" },
      h("h2", { id: "similar-km-title" }, t("analyses.similar.km", { endpoint: t(`analyses.endpoint.${result.endpoint?.name || "os"}`) })),
      h("p", { class: "muted small", id: "similar-km-facts" }, t("analyses.similar.km_facts", { n: shown(km.n), events: shown(km.events), median: decimal(km.median, 1) })),
      charts.km,
      table("similar-at-risk", t("analyses.similar.at_risk"), [{ label: t("analyses.months") }, { label: t("analyses.persons"), number: true }],
        (km.at_risk || []).map((row) => [decimal(row.time, 0), shown(row)]))),
    listed.length
      ? h("section", { class: "card", "aria-labelledby": "similar-listed-title" },
        h("h2", { id: "similar-listed-title" }, t("analyses.similar.listed")),
        table("similar-listed", t("analyses.similar.listed"), [{ label: t("analyses.similar.pseudonym") }, { label: t("analyses.similar.distance"), number: true }],
          listed.map((row) => [row.pseudonym, decimal(row.distance, 3)])))
      : null);
  await horizontalBars(charts.agreement, {
    rows: agreement.map((row) => ({ label: variableLabel(catalogueEntry(ctx, row.variable)), value: row.similarity ?? 0 })),
    title: t("analyses.similar.agreement"), axisName: t("analyses.similar.similarity"),
  });
  if (km.curve?.length) {
    await curveChart(charts.km, { series: [{ name: t("analyses.similar.neighbours", { n: shown(km.n) }), curve: km.curve }],
      title: t("analyses.similar.km", { endpoint: t(`analyses.endpoint.${result.endpoint?.name || "os"}`) }), xName: t("analyses.months"), yName: t("analyses.survival.probability") });
  }
}

/** The registry entry (see analyses.js). */
export const SIMILAR = { name: "similar", path: "/analyses/similar", init, fields, body, render };
