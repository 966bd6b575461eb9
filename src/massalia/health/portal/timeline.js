// A patient's timeline (POST /patients/timeline: the purpose is required and audited before anything is read):
// diagnoses, episodes, treatments (drugs and procedures), labs and documents as small multiples on one
// zoomable time axis (ECharts, dataZoom shared by every panel), with the events in a table alongside.
// A clinician names a person of their own site by id; a member of an approved pseudonymized project names
// the person by its project pseudonym under that project. The API decides; refusals are shown as it gave them.

import { api } from "../../js/api.js";
import { loadECharts } from "../../js/charts.js";
import { h, replace } from "../../js/dom.js";
import { formatNumber, t } from "../../js/i18n.js";
import { definitionList, errorBox, progress } from "../../js/ui.js";
import { field, prepare, status, table } from "./govkit.js";

const PANELS = [
  { key: "diagnosis", kinds: ["diagnosis"] },
  { key: "episode", kinds: ["episode"] },
  { key: "treatment", kinds: ["drug", "procedure"] },
  { key: "lab", kinds: ["lab"] },
  { key: "document", kinds: ["document"] },
];
const MAX_LAB_SERIES = 6;
const MAX_PAGES = 4; // 4 × 5,000 events at most
const COLORS = ["#1d4e89", "#b3541e", "#2f7d4f", "#7a3e9d", "#8a6d00", "#a1224d"];
const state = { projects: [], form: { person: "", purpose: "", project: "" }, result: null, error: null, kind: "all", offset: 0, timing: null, findings: null };
const QUALIFIERS = ["negated", "hypothesis", "family", "history"];
let view = null;
let chart = null;

async function loadProjects() {
  try {
    const page = await api("GET", "/projects?limit=500");
    state.projects = page.items.filter((p) => p.status === "approved" && p.access_level === "pseudonymized");
  } catch {
    state.projects = []; // not every role lists projects: a clinician names persons by id
  }
}

async function fetchTimeline() {
  const { person, purpose, project } = state.form;
  const body = { person: project ? person : /^-?\d+$/.test(person) ? Number(person) : person, purpose, limit: 5000 };
  if (project) body.project_id = Number(project);
  let page = await api("POST", "/patients/timeline", body);
  const result = { ...page, items: [...page.items] };
  for (let n = 1; page.next && n < MAX_PAGES; n += 1) {
    page = await api("POST", "/patients/timeline", { ...body, cursor: page.next });
    result.items.push(...page.items);
  }
  result.truncated = Boolean(page.next);
  return result;
}

// The NLP findings of the patient's notes (POST /patients/findings: the timeline's right, audited with the same
// purpose). A refusal or an unbuilt NOTE_NLP is shown in the card, never hides the timeline.
async function fetchFindings() {
  const { person, purpose, project } = state.form;
  const body = { person: project ? person : /^-?\d+$/.test(person) ? Number(person) : person, purpose };
  if (project) body.project_id = Number(project);
  try {
    return await api("POST", "/patients/findings", body);
  } catch (error) {
    return { error };
  }
}

/** A finding's qualifiers as visible badges; a negated or hypothetical finding is also struck through. */
function qualifierBadges(finding) {
  const on = QUALIFIERS.filter((q) => finding[q]);
  if (!on.length) return h("span", { class: "badge badge-affirmed" }, t("timeline.finding.affirmed"));
  return h("span", {}, on.map((q) => h("span", { class: `badge badge-${q}`, dataset: { qualifier: q } }, t(`timeline.finding.${q}`))));
}

function findingsCard(found) {
  const body = [];
  if (!found || found.error) {
    body.push(found && found.error ? errorBox(found.error) : h("p", { class: "muted" }, "—"));
  } else if (!found.findings.length) {
    body.push(h("p", { class: "muted", id: "timeline-findings-empty" }, t("timeline.findings_none")));
  } else {
    const rows = found.findings.map((f) => {
      const doubtful = f.negated || f.hypothesis || f.family;
      const what = f.concept_name || f.value || f.label;
      const words = f.withheld ? h("em", { class: "muted" }, t("timeline.finding.withheld")) : (f.lexical_variant || "");
      return [f.note_date || "—", t(`cohorts.note_label.${f.label}`), doubtful ? h("s", { class: "finding-doubtful" }, what) : what,
        f.value || "", qualifierBadges(f), words];
    });
    const cols = [t("timeline.date"), t("timeline.finding.label"), t("timeline.what"), t("timeline.value"), t("timeline.finding.qualifiers"), t("timeline.finding.words")].map((label) => ({ label }));
    body.push(table("timeline-findings-table", t("timeline.findings"), cols, rows));
    if (found.withheld) body.push(h("p", { class: "muted small" }, t("timeline.findings_withheld", { count: formatNumber(found.withheld) })));
  }
  return h("section", { class: "card", id: "timeline-findings", "aria-labelledby": "timeline-findings-title" },
    h("h2", { id: "timeline-findings-title" }, t("timeline.findings")), h("p", { class: "muted small" }, t("timeline.findings_help")), ...body);
}

function eventName(event) {
  return event.concept_name || event.title || (event.concept_id ? String(event.concept_id) : t(`timeline.kind.${event.kind}`));
}

function eventValue(event) {
  if (event.value_as_number !== undefined && event.value_as_number !== null) {
    return `${event.value_as_number}${event.unit_concept_name ? " " + event.unit_concept_name : ""}`;
  }
  if (event.value_as_concept_name) return event.value_as_concept_name;
  if (event.kind === "document") return event.title || event.note_class_concept_name || "";
  if (event.kind === "drug" && event.days_supply !== undefined) return t("timeline.days_supply", { days: event.days_supply });
  return "";
}

function chartOption(events) {
  const grids = [];
  const xAxes = [];
  const yAxes = [];
  const series = [];
  const top = 40;
  const height = 78;
  const gap = 26;
  const dates = events.flatMap((e) => [e.date, e.end_date]).filter(Boolean).sort();
  const span = dates.length ? { min: dates[0], max: dates[dates.length - 1] } : {};
  PANELS.forEach((panel, i) => {
    const mine = events.filter((e) => panel.kinds.includes(e.kind) && e.date);
    grids.push({ left: 190, right: 24, top: top + i * (height + gap), height });
    xAxes.push({ type: "time", gridIndex: i, ...span, axisLabel: { show: i === PANELS.length - 1 }, splitLine: { show: true } });
    const title = t(`timeline.panel.${panel.key}`);
    if (panel.key === "lab") {
      yAxes.push({ type: "value", gridIndex: i, name: title, nameLocation: "middle", nameGap: 150, nameRotate: 0, scale: true, splitNumber: 2 });
      const byConcept = new Map();
      for (const e of mine) if (typeof e.value_as_number === "number") {
        const name = eventName(e);
        if (!byConcept.has(name)) byConcept.set(name, []);
        byConcept.get(name).push(e);
      }
      [...byConcept.entries()].sort((a, b) => b[1].length - a[1].length).slice(0, MAX_LAB_SERIES).forEach(([name, list], j) => {
        series.push({ type: "line", name, xAxisIndex: i, yAxisIndex: i, showSymbol: true, symbolSize: 5, color: COLORS[j % COLORS.length],
          data: list.map((e) => ({ value: [e.date, e.value_as_number], label: `${name}: ${eventValue(e)}` })) });
      });
      return;
    }
    const names = [...new Set(mine.map(eventName))];
    yAxes.push({ type: "category", gridIndex: i, data: names, name: title, nameLocation: "middle", nameGap: 150, nameRotate: 0,
      axisLabel: { width: 130, overflow: "truncate", fontSize: 10, interval: names.length > 6 ? "auto" : 0 } });
    series.push({ type: "scatter", name: title, xAxisIndex: i, yAxisIndex: i, symbolSize: 9, color: COLORS[i % COLORS.length],
      data: mine.map((e) => ({ value: [e.date, eventName(e)], label: `${e.date}${e.end_date ? " → " + e.end_date : ""} ${eventName(e)} ${eventValue(e)}` })) });
    const spans = mine.filter((e) => e.end_date && e.end_date !== e.date);
    if (spans.length) {
      series.push({ type: "lines", coordinateSystem: "cartesian2d", xAxisIndex: i, yAxisIndex: i, silent: true, lineStyle: { width: 3, opacity: 0.5, color: COLORS[i % COLORS.length] },
        data: spans.map((e) => ({ coords: [[e.date, eventName(e)], [e.end_date, eventName(e)]] })) });
    }
  });
  const deaths = events.filter((e) => e.kind === "death" && e.date);
  if (deaths.length && series.length) series[0].markLine = { symbol: "none", label: { formatter: t("timeline.death") }, lineStyle: { color: "#a1224d" }, data: deaths.map((e) => ({ xAxis: e.date })) };
  const all = PANELS.map((_, i) => i);
  return {
    animation: false,
    tooltip: { trigger: "item", renderMode: "richText", formatter: (p) => (p.data && p.data.label) || p.seriesName },
    legend: { type: "scroll", top: top + PANELS.length * (height + gap) + 28, data: series.filter((s) => s.type === "line").map((s) => s.name) },
    grid: grids, xAxis: xAxes, yAxis: yAxes, series,
    dataZoom: [
      { type: "inside", xAxisIndex: all, filterMode: "none" },
      { type: "slider", xAxisIndex: all, filterMode: "none", top: top + PANELS.length * (height + gap) - 6, height: 22 },
    ],
  };
}

async function drawChart(events) {
  const echarts = await loadECharts();
  if (chart && !chart.isDisposed()) chart.dispose();
  chart = echarts.init(view.chart, null, { renderer: "canvas" });
  chart.setOption(chartOption(events), { notMerge: true });
  view.chart.dataset.chart = "timeline";
}

const TABLE_PAGE = 50;

function eventsTable(events) {
  const kinds = [...new Set(events.map((e) => e.kind))];
  const redraw = () => replace(view.table, eventsTable(state.result.items));
  const chooser = h("select", { onchange: (e) => { state.kind = e.target.value; state.offset = 0; redraw(); } },
    ["all", ...kinds].map((k) => h("option", { value: k, selected: state.kind === k }, k === "all" ? t("timeline.all_kinds") : t(`timeline.kind.${k}`))));
  const shown = events.filter((e) => state.kind === "all" || e.kind === state.kind);
  const offset = Math.min(state.offset || 0, Math.max(0, shown.length - 1));
  const rows = shown.slice(offset, offset + TABLE_PAGE).map((e) => [e.date || "—", e.end_date || "", t(`timeline.kind.${e.kind}`), eventName(e), eventValue(e)]);
  const cols = [t("timeline.date"), t("timeline.end"), t("timeline.kind"), t("timeline.what"), t("timeline.value")].map((label) => ({ label }));
  const move = (delta) => { state.offset = offset + delta; redraw(); document.getElementById(delta < 0 ? "timeline-prev" : "timeline-next")?.focus(); };
  return h("div", {},
    h("div", { class: "filters" }, field("timeline-kind", t("timeline.show"), chooser)),
    table("timeline-table", t("timeline.events"), cols, rows),
    h("div", { class: "pager" },
      h("button", { type: "button", id: "timeline-prev", disabled: offset === 0, onclick: () => move(-TABLE_PAGE) }, t("audit.previous")),
      h("span", { role: "status" }, t("timeline.rows", { from: formatNumber(shown.length ? offset + 1 : 0), to: formatNumber(Math.min(offset + TABLE_PAGE, shown.length)), total: formatNumber(shown.length) })),
      h("button", { type: "button", id: "timeline-next", disabled: offset + TABLE_PAGE >= shown.length, onclick: () => move(TABLE_PAGE) }, t("audit.next"))));
}

function drawResult() {
  const r = state.result;
  if (state.error) {
    replace(view.result, errorBox(state.error));
    view.result.dataset.state = "error";
    return;
  }
  if (!r) {
    replace(view.result, "");
    return;
  }
  const counts = {};
  for (const e of r.items) counts[e.kind] = (counts[e.kind] || 0) + 1;
  const demo = r.demographics || {};
  view.chart = h("div", { class: "timeline-chart", id: "timeline-chart", role: "img", "aria-label": t("timeline.chart_label", { total: formatNumber(r.items.length) }) });
  view.table = h("div", {}, eventsTable(r.items));
  replace(view.result,
    h("section", { class: "card", "aria-labelledby": "timeline-person" },
      h("h2", { id: "timeline-person", tabIndex: -1 }, t("timeline.person", { person: String(r.person) })),
      definitionList([
        [t("timeline.mode"), r.pseudonymized ? t("timeline.pseudonymized") : t("timeline.identified")],
        [t("timeline.birth"), demo.year_of_birth === undefined ? "—" : String(demo.year_of_birth)],
        [t("timeline.sex"), demo.gender_concept_name || (demo.gender_concept_id === undefined ? "—" : String(demo.gender_concept_id))],
        [t("timeline.total"), h("span", { id: "timeline-total" }, formatNumber(r.total))],
        [t("timeline.by_kind"), Object.entries(counts).map(([k, n]) => `${t(`timeline.kind.${k}`)} ${formatNumber(n)}`).join(", ") || "—"],
        [t("timeline.audit"), h("span", { id: "timeline-audit" }, t("timeline.audit_entry", { index: String(r.audit_index) }))],
      ]),
      r.truncated ? h("p", { class: "alert alert-warn" }, t("timeline.truncated")) : null),
    h("section", { class: "card", "aria-labelledby": "timeline-chart-title" }, h("h2", { id: "timeline-chart-title" }, t("timeline.chart")), h("p", { class: "muted small" }, t("timeline.zoom_help")), view.chart),
    h("section", { class: "card", "aria-labelledby": "timeline-events-title" }, h("h2", { id: "timeline-events-title" }, t("timeline.events")), view.table),
    findingsCard(state.findings));
  view.result.dataset.state = "shown";
  drawChart(r.items).catch((error) => replace(view.chart, errorBox(error)));
}

function form() {
  const person = h("input", { type: "text", name: "person", required: true, autocomplete: "off", value: state.form.person });
  const purpose = h("textarea", { name: "purpose", required: true, minLength: 5, maxLength: 1000, value: state.form.purpose });
  const project = h("select", { name: "project" }, h("option", { value: "" }, t("timeline.no_project")),
    state.projects.map((p) => h("option", { value: String(p.id), selected: state.form.project === String(p.id) }, `${p.id} — ${p.title}`)));
  const submit = h("button", { type: "submit", class: "primary", id: "timeline-open" }, t("timeline.open"));
  return h("form", { id: "timeline-form", class: "card", "aria-label": t("timeline.form"), onsubmit: async (e) => {
    e.preventDefault();
    state.form = { person: person.value.trim(), purpose: purpose.value.trim(), project: project.value };
    submit.disabled = true;
    view.result.setAttribute("aria-busy", "true");
    replace(view.result, progress(t("timeline.loading")));
    const started = performance.now();
    try {
      state.result = await fetchTimeline();
      state.findings = await fetchFindings();
      state.offset = 0;
      state.error = null;
    } catch (error) {
      state.result = null;
      state.error = error;
    }
    state.timing = performance.now() - started;
    view.result.dataset.ms = String(Math.round(state.timing));
    submit.disabled = false;
    view.result.setAttribute("aria-busy", "false");
    drawResult();
    document.getElementById("timeline-person")?.focus();
  } },
  h("div", { class: "form-grid" },
    field("timeline-person-input", t("timeline.person_label"), person, t("timeline.person_help")),
    field("timeline-project", t("timeline.project"), project, t("timeline.project_help"))),
  field("timeline-purpose", t("timeline.purpose"), purpose, t("timeline.purpose_help")),
  h("div", { class: "actions" }, submit));
}

export async function render(main) {
  await prepare();
  await loadProjects();
  view = { result: h("div", { id: "timeline-result", "aria-busy": "false", "aria-live": "polite" }), chart: null, table: null, status: status("timeline-status") };
  replace(main, h("div", { class: "gov" }, h("h1", {}, t("timeline.title")), h("p", { class: "lead" }, t("timeline.lead")), form(), view.result));
  drawResult();
}
