// Risk prediction in the Analyses page (an entry of its registry): the training form (outcome, time at risk,
// algorithms, bootstrap resamples) and the renderer of POST /analyses/prediction's answer — per model: the test
// AUC with its CI, the Brier score, the calibration plot (predicted against observed, with the diagonal), the
// feature importance and the model card (JSON, collapsed). Under the form, the project's stored models
// (GET /analyses/prediction/models) and the scoring of one (POST …/{model_id}/score): a distribution of risks
// under an aggregate project, pseudonyms and risks under a pseudonymized one. The API decides which (403).

import { api } from "../../js/api.js";
import { h, replace } from "../../js/dom.js";
import { t } from "../../js/i18n.js";
import { errorBox, progress } from "../../js/ui.js";
import { calibrationChart, chartBox, decimal, histogramChart, horizontalBars, percent, shown, table } from "./analysis-kit.js";
import { field } from "./govkit.js";

export const OUTCOMES = ["relapse", "second_cancer", "progression", "hospitalization"];
export const ALGORITHMS = ["lasso_logistic", "gradient_boosting"];
const DEFAULT_TAR = { relapse: 730, second_cancer: 1826, progression: 365, hospitalization: 183 };
const BOOTSTRAPS = [200, 1000, 2000];
const IMPORTANCE_SHOWN = 15;
const MAX_PSEUDONYMS = 5000;

/** The stored-models panel while the form is on screen (refreshed after a training). */
let panel = null;

function init() {
  return { outcome: "relapse", tar: "", algorithms: new Set(ALGORITHMS), bootstrap: 1000, pseudonyms: "" };
}

function fields(form, ctx) {
  const tar = h("input", {
    type: "number", min: 30, max: 3653, step: 1, inputMode: "numeric", value: form.tar, placeholder: String(DEFAULT_TAR[form.outcome]),
    oninput: (event) => { form.tar = event.target.value; },
  });
  const outcome = h("select", {
    onchange: (event) => { form.outcome = event.target.value; tar.placeholder = String(DEFAULT_TAR[form.outcome]); },
  }, OUTCOMES.map((name) => h("option", { value: name, selected: name === form.outcome }, t(`analyses.prediction.outcome.${name}`))));
  const algorithms = h("fieldset", { id: "prediction-algorithms" }, h("legend", {}, t("analyses.prediction.algorithms")),
    ALGORITHMS.map((name) => h("label", { class: "check" }, h("input", {
      type: "checkbox", id: `prediction-algorithm-${name}`, checked: form.algorithms.has(name),
      onchange: (event) => { if (event.target.checked) form.algorithms.add(name); else form.algorithms.delete(name); },
    }), " ", t(`analyses.prediction.algorithm.${name}`))));
  const bootstrap = h("select", { onchange: (event) => { form.bootstrap = Number(event.target.value); } },
    BOOTSTRAPS.map((n) => h("option", { value: String(n), selected: n === form.bootstrap }, String(n))));
  panel = modelsPanel(form, ctx);
  return h("div", {},
    h("div", { class: "form-grid" },
      field("prediction-outcome", t("analyses.prediction.outcome"), outcome),
      field("prediction-tar", t("analyses.prediction.tar"), tar, t("analyses.prediction.tar_help")),
      algorithms,
      field("prediction-bootstrap", t("analyses.prediction.bootstrap"), bootstrap, t("analyses.prediction.bootstrap_help"))),
    panel.element);
}

function body(form) {
  const request = { outcome: form.outcome, algorithms: ALGORITHMS.filter((name) => form.algorithms.has(name)), bootstrap: form.bootstrap };
  const tar = Number(form.tar);
  if (form.tar !== "" && Number.isInteger(tar)) request.tar_days = tar; // the API bounds it (422 with where)
  return request;
}

/** The stored models of the chosen project, each with a button scoring it on the page's cohort. */
function modelsPanel(form, ctx) {
  const list = h("div", { id: "prediction-models", "aria-live": "polite" });
  const scored = h("div", { id: "prediction-score", "aria-live": "polite" });
  const pseudonyms = h("textarea", {
    rows: 3, spellcheck: false, value: form.pseudonyms, "aria-describedby": "prediction-pseudonyms-help",
    oninput: (event) => { form.pseudonyms = event.target.value; },
  });
  pseudonyms.id = "prediction-pseudonyms";
  async function score(model) {
    replace(scored, progress(t("analyses.prediction.scoring")));
    scored.dataset.state = "running";
    const persons = form.pseudonyms.split(/[\s,;]+/).filter(Boolean).slice(0, MAX_PSEUDONYMS);
    const request = { project_id: ctx.project(), filters: ctx.cohort() };
    if (persons.length) request.persons = persons;
    try {
      const result = await api("POST", `/analyses/prediction/${encodeURIComponent(model.model_id)}/score`, request);
      replace(scored);
      await renderScore(scored, result);
      scored.dataset.state = "done";
    } catch (error) {
      replace(scored, errorBox(error));
      scored.dataset.state = "error";
    }
  }
  async function refresh() {
    const project = ctx.project();
    if (!project) {
      replace(list, h("p", { class: "muted" }, t("analyses.choose_project")));
      return;
    }
    replace(list, progress(t("analyses.loading")));
    list.dataset.state = "running";
    try {
      const answer = await api("GET", `/analyses/prediction/models?project_id=${encodeURIComponent(project)}`);
      const models = answer.models || [];
      replace(list, models.length ? table("prediction-models-table", t("analyses.prediction.models_caption"),
        ["model", "algorithm", "outcome", "auc", "created", "current", "score"].map((k, i) => ({ label: t(`analyses.prediction.models.${k}`), number: i === 3 })),
        models.map((model) => [
          h("code", {}, model.model_id), t(`analyses.prediction.algorithm.${model.algorithm}`),
          `${t(`analyses.prediction.outcome.${model.outcome?.name}`)} · ${model.time_at_risk?.end_days ?? "—"} ${t("analyses.prediction.days")}`,
          aucText(model.test_auc), (model.created_at || "").replace("T", " ").slice(0, 16),
          model.current_data ? t("analyses.prediction.current") : t("analyses.prediction.stale"),
          h("button", { type: "button", class: "small", dataset: { model: model.model_id }, "aria-label": t("analyses.prediction.score_model", { id: model.model_id }), onclick: () => score(model) }, t("analyses.prediction.score")),
        ])) : h("p", { class: "muted", id: "prediction-no-model" }, t("analyses.prediction.no_model")));
      list.dataset.state = "done";
    } catch (error) {
      replace(list, errorBox(error));
      list.dataset.state = "error";
    }
  }
  const element = h("section", { class: "subsection", "aria-labelledby": "prediction-models-title" },
    h("h3", { id: "prediction-models-title" }, t("analyses.prediction.stored")),
    h("p", { class: "muted small" }, t("analyses.prediction.stored_help")),
    h("div", { class: "actions" }, h("button", { type: "button", id: "prediction-models-load", onclick: refresh }, t("analyses.prediction.list"))),
    list,
    field("prediction-pseudonyms", t("analyses.prediction.pseudonyms"), pseudonyms, t("analyses.prediction.pseudonyms_help")),
    scored);
  return { element, refresh };
}

function aucText(auc) {
  if (!auc || auc.auc === null || auc.auc === undefined) return "—";
  return `${decimal(auc.auc, 3)} (${decimal(auc.lower, 3)} – ${decimal(auc.upper, 3)})`;
}

async function renderScore(box, result) {
  const facts = h("p", { id: "prediction-score-facts" }, t("analyses.prediction.score_facts", {
    model: result.model_id, outcome: t(`analyses.prediction.outcome.${result.outcome?.name}`), days: result.time_at_risk?.end_days ?? "—",
  }));
  if (result.row_level) {
    box.append(facts,
      table("prediction-score-persons", t("analyses.prediction.persons_caption"),
        [{ label: t("analyses.prediction.pseudonym") }, { label: t("analyses.prediction.risk"), number: true }],
        (result.persons || []).map((person) => [person.pseudonym, decimal(person.risk, 4)])),
      result.not_found?.length ? h("p", { class: "alert alert-warn", id: "prediction-not-found" }, t("analyses.prediction.not_found", { pseudonyms: result.not_found.join(", ") })) : null);
    return;
  }
  const chart = chartBox("prediction-score-chart");
  const bins = (result.risk_histogram || []).map((bin) => ({ label: `${percent(bin.risk_from, 0)}–${percent(bin.risk_to, 0)}`, n: bin.n }));
  box.append(facts,
    h("p", { id: "prediction-score-mean" }, t("analyses.prediction.mean_risk", { n: shown(result.n), mean: decimal(result.mean_risk, 4) })),
    chart,
    table("prediction-score-table", t("analyses.prediction.histogram"),
      [{ label: t("analyses.prediction.risk_band") }, { label: t("analyses.persons"), number: true }],
      bins.map((bin) => [bin.label, shown(bin.n)])));
  await histogramChart(chart, { bins, title: t("analyses.prediction.histogram"), axisName: t("analyses.prediction.risk") });
}

function populationTable(population) {
  const keys = ["target", "excluded_short_follow_up", "train", "train_outcomes", "test", "test_outcomes"];
  return table("prediction-population", t("analyses.prediction.population"),
    [{ label: t("analyses.prediction.group") }, { label: t("analyses.persons"), number: true }],
    keys.filter((key) => population?.[key]).map((key) => [t(`analyses.prediction.population.${key}`), shown(population[key])]));
}

async function render(container, result) {
  const drawings = [];
  const models = result.models || [];
  container.append(h("section", { class: "card", "aria-labelledby": "prediction-title", dataset: { result: "prediction" } },
    h("h2", { id: "prediction-title" }, t("analyses.prediction.title", { outcome: t(`analyses.prediction.outcome.${result.outcome?.name ?? result.outcome}`) })),
    populationTable(result.population),
    result.covariates_dropped?.length ? h("p", { class: "muted small" }, t("analyses.prediction.dropped", { names: result.covariates_dropped.join(", ") })) : null));
  models.forEach((model, index) => {
    const card = model.card || {};
    const test = card.metrics?.test || {};
    const calibration = chartBox(`prediction-${index}-calibration`);
    const importance = chartBox(`prediction-${index}-importance`);
    const features = (card.metrics?.feature_importance || []).slice(0, IMPORTANCE_SHOWN);
    const bins = test.calibration || [];
    container.append(h("section", { class: "card", id: `prediction-${index}`, dataset: { model: model.model_id, algorithm: card.algorithm }, "aria-labelledby": `prediction-${index}-title` },
      h("h2", { id: `prediction-${index}-title` }, t(`analyses.prediction.algorithm.${card.algorithm}`), " ", h("code", {}, model.model_id)),
      h("dl", { class: "facts", id: `prediction-${index}-metrics` },
        h("dt", {}, t("analyses.prediction.auc")), h("dd", { dataset: { metric: "auc" } }, aucText(test.auc)),
        h("dt", {}, t("analyses.prediction.brier")), h("dd", { dataset: { metric: "brier" } }, decimal(test.brier, 4)),
        h("dt", {}, t("analyses.prediction.train_auc")), h("dd", { dataset: { metric: "train_auc" } }, decimal(card.metrics?.train?.auc, 3)),
        h("dt", {}, t("analyses.prediction.in_the_large")), h("dd", { dataset: { metric: "in_the_large" } }, `${decimal(test.mean_predicted, 4)} / ${decimal(test.observed_rate, 4)}`)),
      h("h3", {}, t("analyses.prediction.calibration")), calibration,
      table(`prediction-${index}-calibration-table`, t("analyses.prediction.calibration"),
        [{ label: t("analyses.prediction.bin") }, ...["predicted", "observed"].map((k) => ({ label: t(`analyses.prediction.${k}`), number: true })),
          { label: t("analyses.persons"), number: true }, { label: t("analyses.events"), number: true }],
        bins.map((bin, i) => [String(i + 1), decimal(bin.predicted, 4), decimal(bin.observed, 4), shown(bin.n), shown(bin.outcomes)])),
      h("h3", {}, t("analyses.prediction.importance")), importance,
      h("details", { id: `prediction-${index}-card` },
        h("summary", {}, t("analyses.prediction.card")),
        h("pre", { class: "small", tabIndex: 0, "aria-label": t("analyses.prediction.card") }, JSON.stringify(card, null, 2)))));
    drawings.push(
      () => calibrationChart(calibration, { series: [{ name: t(`analyses.prediction.algorithm.${card.algorithm}`), bins }], title: t("analyses.prediction.calibration") }),
      () => horizontalBars(importance, { rows: features.map((f) => ({ label: f.feature, value: f.auc_drop })), title: t("analyses.prediction.importance"), axisName: t("analyses.prediction.auc_drop") }));
  });
  for (const draw of drawings) await draw();
  panel?.refresh(); // the new models join the project's list
}

/** The registry entry (see analyses.js). */
export const PREDICTION = { name: "prediction", path: "/analyses/prediction", init, fields, body, render };
