// Data quality and ETL: every quality run's summary with its trend since the previous run and the pass rate
// over time (GET /quality/runs, ECharts), the latest report's check results by status (GET
// /quality/report/results; row counts as the API coarsened them), and the ETL runs (GET /etl/runs) with a
// run's lineage (GET /etl/runs/{id}) and, for those allowed, its rejected rows (GET /etl/runs/{id}/rejects,
// audited). Each section reads through its own right: a refusal or an empty history is shown as such.

import { api } from "../../js/api.js";
import { loadECharts } from "../../js/charts.js";
import { h, replace } from "../../js/dom.js";
import { formatNumber, t } from "../../js/i18n.js";
import { definitionList, errorBox, progress } from "../../js/ui.js";
import { field, hasRole, prepare, table, when } from "./govkit.js";

const state = { ctx: null, runs: null, results: null, resultStatus: "failed", resultCursors: [null], etl: null, lineage: null, rejects: null };
let view = null;
let chart = null;

const settle = (promise) => promise.catch((error) => (error instanceof Error ? error : new Error(String(error))));
const num = (value) => (value === null || value === undefined ? "—" : formatNumber(value));
const signed = (value) => (value === null || value === undefined ? "—" : `${value > 0 ? "+" : ""}${formatNumber(value)}`);

async function loadResults() {
  const params = new URLSearchParams({ limit: "25" });
  if (state.resultStatus) params.set("status", state.resultStatus);
  const cursor = state.resultCursors[state.resultCursors.length - 1];
  if (cursor) params.set("cursor", cursor);
  state.results = await settle(api("GET", `/quality/report/results?${params}`));
}

function runsSection() {
  const section = h("section", { class: "card", "aria-labelledby": "quality-runs-title" }, h("h2", { id: "quality-runs-title" }, t("quality.runs")));
  const runs = state.runs;
  if (runs instanceof Error) return append(section, errorBox(runs));
  if (!runs.items.length) return append(section, h("p", { class: "muted", id: "quality-no-runs" }, t("quality.no_runs")));
  const rows = runs.items.map((run) => {
    const s = run.summary || {};
    const status = s.status || {};
    const trend = run.trend || {};
    return [String(run.run), when(run.started_at), num(s.pass_rate), signed(trend.pass_rate), num(status.passed), num(status.failed), signed((trend.status || {}).failed), num(status.error), num(status.not_applicable)];
  });
  const cols = [t("quality.run"), t("quality.started"), t("quality.pass_rate"), t("quality.trend"), t("quality.passed"), t("quality.failed"), t("quality.failed_trend"), t("quality.error"), t("quality.not_applicable")]
    .map((label, i) => ({ label, number: i !== 1 }));
  section.append(
    h("div", { class: "chart", id: "quality-chart", role: "img", "aria-label": t("quality.chart_label") }),
    table("quality-runs-table", t("quality.runs"), cols, rows));
  return section;
}

function append(node, child) {
  node.append(child);
  return node;
}

async function drawTrend() {
  const target = document.getElementById("quality-chart");
  if (!target || state.runs instanceof Error) return;
  const runs = [...state.runs.items].sort((a, b) => a.run - b.run);
  const echarts = await loadECharts();
  if (chart && !chart.isDisposed()) chart.dispose();
  chart = echarts.init(target, null, { renderer: "canvas" });
  chart.setOption({
    animation: false,
    grid: { left: 56, right: 56, top: 36, bottom: 40 },
    tooltip: { trigger: "axis", renderMode: "richText" },
    legend: { top: 0, data: [t("quality.pass_rate"), t("quality.failed")] },
    xAxis: { type: "category", name: t("quality.run"), data: runs.map((r) => String(r.run)) },
    yAxis: [{ type: "value", name: "%", min: 0, max: 100 }, { type: "value", name: t("quality.failed"), minInterval: 1 }],
    series: [
      { type: "line", name: t("quality.pass_rate"), data: runs.map((r) => (r.summary || {}).pass_rate ?? null), color: "#1d4e89", label: { show: true } },
      { type: "bar", name: t("quality.failed"), yAxisIndex: 1, data: runs.map((r) => ((r.summary || {}).status || {}).failed ?? null), color: "#b3541e", barMaxWidth: 24 },
    ],
  }, { notMerge: true });
  target.dataset.chart = "quality";
}

function resultsSection() {
  const chooser = h("select", { onchange: async (e) => { state.resultStatus = e.target.value; state.resultCursors = [null]; await loadResults(); redraw("results"); } },
    ["failed", "error", "passed", "not_applicable", ""].map((v) => h("option", { value: v, selected: state.resultStatus === v }, t(`quality.status.${v || "any"}`))));
  const section = h("section", { class: "card", id: "quality-results", "aria-labelledby": "quality-results-title" },
    h("h2", { id: "quality-results-title" }, t("quality.results")),
    h("div", { class: "filters" }, field("quality-status", t("quality.status"), chooser)));
  const results = state.results;
  if (results instanceof Error) return append(section, errorBox(results));
  const rows = results.items.map((r) => [r.check_name, r.table + (r.field ? "." + r.field : ""), r.category, r.severity, t(`quality.status.${r.status}`), num(r.num_violated_rows), num(r.num_denominator_rows), r.percent_violated === null || r.percent_violated === undefined ? "—" : `${formatNumber(r.percent_violated)} %`, r.description]);
  const cols = [t("quality.check"), t("quality.where"), t("quality.category"), t("quality.severity"), t("quality.status"), t("quality.violated"), t("quality.denominator"), t("quality.percent"), t("quality.description")]
    .map((label, i) => ({ label, number: i >= 5 && i <= 7 }));
  section.append(
    h("p", { role: "status", id: "quality-results-total" }, t("quality.results_total", { total: num(results.total) })),
    rows.length ? table("quality-results-table", t("quality.results"), cols, rows) : h("p", { class: "muted" }, t("quality.no_results")),
    h("p", { class: "muted small" }, t("quality.coarsened")),
    h("div", { class: "pager" },
      h("button", { type: "button", disabled: state.resultCursors.length <= 1, onclick: async () => { state.resultCursors.pop(); await loadResults(); redraw("results"); } }, t("audit.previous")),
      h("button", { type: "button", disabled: !results.next, onclick: async () => { state.resultCursors.push(results.next); await loadResults(); redraw("results"); } }, t("audit.next"))));
  return section;
}

async function openRun(runId) {
  replace(view.lineage, progress(t("common.loading")));
  state.lineage = await settle(api("GET", `/etl/runs/${encodeURIComponent(runId)}`));
  state.rejects = null;
  redraw("lineage");
  document.getElementById("etl-lineage-title")?.focus();
}

function etlSection() {
  if (state.etl === undefined) return ""; // the ETL history is for admins, engineers and DPOs
  const section = h("section", { class: "card", "aria-labelledby": "etl-title" }, h("h2", { id: "etl-title" }, t("quality.etl")));
  const etl = state.etl;
  if (etl instanceof Error) return append(section, errorBox(etl));
  if (!etl.items.length) return append(section, h("p", { class: "muted", id: "etl-no-runs" }, t("quality.etl_none")));
  const rows = etl.items.map((run) => [
    h("button", { type: "button", class: "link-button", id: `etl-open-${run.run_id}`, onclick: () => openRun(run.run_id) }, run.run_id),
    run.pipeline, run.status, when(run.started_at), num(run.counts.files), num(run.counts.rows_read), num(run.counts.rows_added), num(run.counts.rows_rejected), num(run.counts.rows_flagged),
  ]);
  const cols = [t("quality.etl_run"), t("quality.pipeline"), t("quality.status"), t("quality.started"), t("quality.files"), t("quality.rows_read"), t("quality.rows_added"), t("quality.rows_rejected"), t("quality.rows_flagged")]
    .map((label, i) => ({ label, number: i >= 4 }));
  section.append(table("etl-runs-table", t("quality.etl"), cols, rows));
  return section;
}

function lineageSection() {
  const run = state.lineage;
  if (!run) return "";
  if (run instanceof Error) return errorBox(run);
  const inputs = (run.inputs || []).map((i) => [String(i.path || i.name || "—"), h("code", {}, String(i.sha256 || "—").slice(0, 16)), num(i.size), num(i.rows_read), i.skipped ? t("quality.skipped") : ""]);
  const outputs = Object.entries(run.outputs || {}).map(([name, rows]) => [name, num(rows)]);
  const rejectsBox = h("div", { id: "etl-rejects" });
  if (state.rejects instanceof Error) rejectsBox.append(errorBox(state.rejects));
  else if (state.rejects) {
    const keys = state.rejects.items.length ? Object.keys(state.rejects.items[0]) : [];
    rejectsBox.append(state.rejects.items.length ? table("etl-rejects-table", t("quality.rejects"), keys.map((k) => ({ label: k })), state.rejects.items.map((r) => keys.map((k) => (r[k] === null ? "—" : String(r[k]))))) : h("p", { class: "muted" }, t("quality.no_rejects")));
  }
  return h("section", { class: "card", "aria-labelledby": "etl-lineage-title" },
    h("h2", { id: "etl-lineage-title", tabIndex: -1 }, t("quality.lineage", { run: run.run_id })),
    definitionList([[t("quality.status"), run.status], [t("quality.started"), when(run.started_at)], [t("quality.ended"), when(run.ended_at)], [t("quality.engine"), run.engine || "—"], [t("quality.code_version"), run.code_version || "—"], [t("quality.message"), run.message || "—"]]),
    h("h3", {}, t("quality.inputs")),
    table("etl-inputs", t("quality.inputs"), [t("quality.file"), "SHA-256", t("quality.size"), t("quality.rows_read"), ""].map((label, i) => ({ label, number: i === 2 || i === 3 })), inputs),
    h("h3", {}, t("quality.outputs")),
    table("etl-outputs", t("quality.outputs"), [{ label: t("quality.table") }, { label: t("quality.rows_added"), number: true }], outputs),
    h("h3", {}, t("quality.rejects")),
    h("p", { class: "muted small" }, t("quality.rejects_help")),
    !hasRole(state.ctx, "admin", "data_engineer") ? null : h("button", { type: "button", id: "etl-rejects-show", onclick: async () => {
      state.rejects = await settle(api("GET", `/etl/runs/${encodeURIComponent(run.run_id)}/rejects?limit=50`));
      redraw("lineage");
    } }, t("quality.show_rejects")),
    rejectsBox);
}

function redraw(part) {
  if (part === "results") replace(view.results, resultsSection());
  if (part === "lineage") replace(view.lineage, lineageSection());
}

export async function render(main, ctx) {
  await prepare();
  state.ctx = ctx;
  const heading = h("h1", {}, t("quality.title"));
  replace(main, heading, progress(t("common.loading")));
  if (state.runs === null) {
    [state.runs, state.etl] = await Promise.all([settle(api("GET", "/quality/runs?limit=100&order=desc")), hasRole(ctx, "admin", "data_engineer", "dpo") ? settle(api("GET", "/etl/runs?limit=50")) : undefined]);
    await loadResults();
  }
  view = { results: h("div", {}), lineage: h("div", {}) };
  replace(main, h("div", { class: "gov" }, heading, h("p", { class: "lead" }, t("quality.lead")), runsSection(), view.results, etlSection(), view.lineage));
  redraw("results");
  redraw("lineage");
  drawTrend().catch(() => {});
}
