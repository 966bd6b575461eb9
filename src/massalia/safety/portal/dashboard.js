// Safety dashboard: statistics with comparisons and rates, reporting-bias notes, a map on an offline background
// (the commune outline and the districts, drawn here as SVG from /safety/basemap: no tile server, no CDN) with a
// grid or heat layer from /safety/map, and a timeline whose brush (drag across it) refilters the map.
// Every number is the API's: a partner sees released (noisy, masked) counts, staff exact ones.

import { api } from "../../js/api.js";
import { h, replace } from "../../js/dom.js";
import { formatNumber } from "../../js/i18n.js";
import { errorBox } from "../../js/ui.js";
import { ZONES, field, prepare, queryString, s, select, shown, t } from "./kit.js";

const DEFAULT = { start: "2025-01-01", end: "2026-01-01", zone: "", family: "" };
const state = { filter: { ...DEFAULT }, by: "zone", layer: "grid", cell: 500, brush: null, basemap: null, families: [], views: [], role: null };
const STAFF = ["safety_operator", "safety_analyst", "safety_manager"];
let view = null;

function apiFilter(extra = {}) {
  const f = { start: state.filter.start, end: state.filter.end, zone: state.filter.zone, family: state.filter.family, ...extra };
  return f;
}

function percent(value) {
  if (value === null || value === undefined) return "—";
  return `${value > 0 ? "+" : ""}${formatNumber(value * 100, { maximumFractionDigits: 1 })} %`;
}

async function loadStats() {
  const stats = await api("GET", `/safety/stats?${queryString(apiFilter({ by: state.by }))}`);
  const fmt = (v) => formatNumber(v);
  const cols = ["safety.key", "safety.count", "safety.rate", "safety.previous", "safety.change", "safety.last_year", "safety.change_last_year"];
  const rows = stats.rows.map((r) => h("tr", {}, h("th", { scope: "row" }, r.key), h("td", { class: "number" }, shown(r.count, stats.threshold, fmt)),
    h("td", { class: "number" }, r.rate_per_10k === null ? "—" : formatNumber(r.rate_per_10k)),
    h("td", { class: "number" }, shown(r.previous, stats.threshold, fmt)), h("td", { class: "number" }, percent(r.change)),
    h("td", { class: "number" }, shown(r.last_year, stats.threshold, fmt)), h("td", { class: "number" }, percent(r.change_last_year))));
  const bias = stats.bias.length
    ? h("ul", { class: "bias", id: "safety-bias" }, stats.bias.map((b) => h("li", {}, b.note)))
    : h("p", { class: "muted", id: "safety-bias" }, t("safety.no_bias"));
  replace(view.stats,
    h("h2", {}, t("safety.stats_title")),
    h("p", { class: "muted", id: "safety-release" }, stats.exact ? t("safety.exact") : t("safety.noisy", { threshold: stats.threshold })),
    h("div", { class: "table-wrap", role: "region", "aria-label": t("safety.stats_title"), tabIndex: 0 },
      h("table", { class: "table", id: "safety-stats" }, h("caption", { class: "sr-only" }, t("safety.stats_title")),
        h("thead", {}, h("tr", {}, cols.map((key) => h("th", { scope: "col" }, t(key))))), h("tbody", {}, rows))),
    h("h3", {}, t("safety.bias_title")), h("p", { class: "muted" }, t("safety.bias_lead")), bias);
}

function mapSvg(grid) {
  const [minx, miny, maxx, maxy] = state.basemap.bbox;
  const flip = (ring) => ring.map(([x, y]) => `${x},${-y}`).join(" ");
  const counts = grid.cells.map((c) => c.count).sort((a, b) => a - b);
  const high = counts.length ? counts[Math.floor(counts.length * 0.9)] || counts[counts.length - 1] : 1;
  const colour = (n) => (n >= high ? "#b3261e" : n >= high / 3 ? "#f59e4c" : "#fde0c5");
  const size = grid.cell_metres;
  const cells = grid.cells.map((c) => state.layer === "heat"
    ? s("circle", { cx: c.x_l93 + size / 2, cy: -(c.y_l93 + size / 2), r: size * 0.9, fill: colour(c.count), "fill-opacity": 0.55, filter: "url(#safety-blur)", class: "heat" })
    : s("rect", { x: c.x_l93, y: -(c.y_l93 + size), width: size, height: size, fill: colour(c.count), "fill-opacity": 0.8, class: "cell" },
      s("title", {}, `${formatNumber(c.count)}`)));
  return s("svg", { class: "map", id: "safety-map", viewBox: `${minx} ${-maxy} ${maxx - minx} ${maxy - miny}`, role: "img", "aria-labelledby": "safety-map-title" },
    s("title", { id: "safety-map-title" }, t("safety.map_title")),
    s("defs", {}, s("filter", { id: "safety-blur" }, s("feGaussianBlur", { stdDeviation: size / 2 }))),
    s("g", { class: "background" },
      state.basemap.city.map((ring) => s("polygon", { points: flip(ring), fill: "#ffffff", stroke: "#6b7c8c", "stroke-width": 40 })),
      state.basemap.districts.map((d) => s("polygon", { points: flip(d.ring), fill: "none", stroke: "#9aa9b6", "stroke-width": 20, class: "district", "data-zone": d.zone },
        s("title", {}, `${d.zone} · ${d.name}`)))),
    s("g", { class: "layer" }, cells));
}

async function loadMap() {
  const extra = { cell: state.cell };
  if (state.brush) Object.assign(extra, { start: state.brush[0], end: state.brush[1] });
  const grid = await api("GET", `/safety/map?${queryString(apiFilter(extra))}`);
  const total = grid.cells.reduce((sum, c) => sum + c.count, 0);
  const period = state.brush ? t("safety.brushed", { start: state.brush[0], end: state.brush[1] }) : t("safety.whole_period");
  replace(view.map, h("h2", {}, t("safety.map_title")),
    h("p", { id: "safety-map-status", role: "status", dataset: { cells: String(grid.cells.length), total: String(total) } },
      t("safety.map_status", { cells: formatNumber(grid.cells.length), total: formatNumber(total), period })),
    h("div", { class: "legend", "aria-hidden": "true" }, h("span", { class: "swatch low" }), t("safety.low"),
      h("span", { class: "swatch mid" }), h("span", { class: "swatch high" }), t("safety.high")),
    mapSvg(grid),
    h("p", { class: "muted small" }, t("safety.background", { source: state.basemap.source })));
}

function isoDay(ms) {
  return new Date(ms).toISOString().slice(0, 10);
}

async function loadTimeline() {
  const line = await api("GET", `/safety/timeline?${queryString(apiFilter({ bucket: "day" }))}`);
  const points = line.points.filter((p) => p.count !== null);
  const width = 1000;
  const height = 120;
  const t0 = Date.parse(`${state.filter.start}T00:00:00Z`);
  const t1 = Date.parse(`${state.filter.end}T00:00:00Z`);
  const x = (ms) => ((ms - t0) / (t1 - t0)) * width;
  const top = Math.max(1, ...points.map((p) => p.count));
  const bars = points.map((p) => {
    const ms = Date.parse(`${p.t.slice(0, 10)}T00:00:00Z`);
    const barHeight = (p.count / top) * (height - 10);
    return s("rect", { x: x(ms), y: height - barHeight, width: Math.max(1, width / ((t1 - t0) / 86400000) - 0.5), height: barHeight, fill: "#3d6d99" });
  });
  const selection = s("rect", { class: "brush", x: 0, y: 0, width: 0, height, fill: "#f59e4c", "fill-opacity": 0.3, stroke: "#b3261e" });
  if (state.brush) {
    const a = x(Date.parse(`${state.brush[0]}T00:00:00Z`));
    const b = x(Date.parse(`${state.brush[1]}T00:00:00Z`));
    selection.setAttribute("x", String(a));
    selection.setAttribute("width", String(b - a));
  }
  let from = null;
  const svg = s("svg", { class: "timeline", id: "safety-timeline", viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none", role: "img", "aria-labelledby": "safety-timeline-title" },
    s("title", { id: "safety-timeline-title" }, t("safety.timeline_title")), bars, selection);
  const at = (event) => {
    const box = svg.getBoundingClientRect();
    return Math.min(width, Math.max(0, ((event.clientX - box.left) / box.width) * width));
  };
  svg.addEventListener("pointerdown", (event) => { from = at(event); svg.setPointerCapture(event.pointerId); });
  svg.addEventListener("pointermove", (event) => {
    if (from === null) return;
    const to = at(event);
    selection.setAttribute("x", String(Math.min(from, to)));
    selection.setAttribute("width", String(Math.abs(to - from)));
  });
  svg.addEventListener("pointerup", (event) => {
    if (from === null) return;
    const to = at(event);
    const [a, b] = [Math.min(from, to), Math.max(from, to)];
    from = null;
    if (b - a < 3) { setBrush(null); return; }
    const day = (px) => isoDay(t0 + (px / width) * (t1 - t0));
    const start = day(a);
    let end = day(b);
    if (end <= start) end = isoDay(Date.parse(`${start}T00:00:00Z`) + 86400000);
    setBrush([start, end]);
  });
  const brushStart = h("input", { type: "date", value: state.brush ? state.brush[0] : "" });
  const brushEnd = h("input", { type: "date", value: state.brush ? state.brush[1] : "" });
  replace(view.timeline, h("h2", {}, t("safety.timeline_title")), h("p", { class: "muted" }, t("safety.brush_help")), svg,
    h("form", { class: "filters", id: "safety-brush-form", onsubmit: (e) => { e.preventDefault(); setBrush(brushStart.value && brushEnd.value ? [brushStart.value, brushEnd.value] : null); } },
      field("safety-brush-start", t("safety.brush_start"), brushStart), field("safety-brush-end", t("safety.brush_end"), brushEnd),
      h("button", { type: "submit", id: "safety-brush-apply" }, t("safety.brush_apply")),
      h("button", { type: "button", id: "safety-brush-clear", onclick: () => setBrush(null) }, t("safety.brush_clear"))));
}

async function guarded(part, load) {
  part.setAttribute("aria-busy", "true");
  try {
    await load();
  } catch (error) {
    replace(part, errorBox(error));
  }
  part.setAttribute("aria-busy", "false");
}

function setBrush(range) {
  state.brush = range;
  guarded(view.map, loadMap);
  guarded(view.timeline, loadTimeline);
}

function refresh() {
  state.brush = null;
  return Promise.all([guarded(view.stats, loadStats), guarded(view.map, loadMap), guarded(view.timeline, loadTimeline)]);
}

function drawForm() {
  const f = state.filter;
  const controls = {
    start: h("input", { type: "date", name: "start", value: f.start, required: true }),
    end: h("input", { type: "date", name: "end", value: f.end, required: true }),
    zone: select("zone", ZONES, f.zone, t("safety.all")),
    family: select("family", state.families, f.family, t("safety.all")),
    by: h("select", { name: "by" }, ["zone", "family", "month", "weekday", "hour"].map((v) => h("option", { value: v, selected: v === state.by }, t(`safety.by.${v}`)))),
    layer: h("select", { name: "layer" }, ["grid", "heat"].map((v) => h("option", { value: v, selected: v === state.layer }, t(`safety.layer.${v}`)))),
  };
  replace(view.form, h("form", { id: "safety-dashboard-form", class: "card", "aria-label": t("safety.filters"), onsubmit: (e) => {
    e.preventDefault();
    for (const name of ["start", "end", "zone", "family"]) state.filter[name] = controls[name].value;
    state.by = controls.by.value;
    state.layer = controls.layer.value;
    refresh();
  } },
  h("div", { class: "filters" },
    field("safety-d-start", t("safety.from"), controls.start), field("safety-d-end", t("safety.to"), controls.end),
    field("safety-d-zone", t("safety.zone"), controls.zone), field("safety-d-family", t("safety.family"), controls.family),
    field("safety-d-by", t("safety.by_label"), controls.by), field("safety-d-layer", t("safety.layer_label"), controls.layer),
    h("button", { type: "submit", class: "primary", id: "safety-apply" }, t("safety.apply")))));
}

// Saved views: the filter and the layout, kept per user and shareable with one's role (POST/GET /safety/views).
async function loadViews() {
  state.views = (await api("GET", "/safety/views")).views;
  const name = h("input", { type: "text", maxLength: 120, required: true });
  const share = h("input", { type: "checkbox" });
  const items = state.views.map((v) => h("li", {}, h("button", { type: "button", class: "link-button", dataset: { view: String(v.view_id) }, onclick: () => openView(v) }, v.name),
    v.shared_with ? ` · ${t("safety.shared_by", { owner: v.owner })}` : ""));
  replace(view.views, h("h2", {}, t("safety.views_title")),
    items.length ? h("ul", { id: "safety-views" }, items) : h("p", { class: "muted", id: "safety-views" }, t("safety.no_views")),
    h("form", { class: "filters", id: "safety-view-form", onsubmit: async (e) => {
      e.preventDefault();
      const f = state.filter;
      const filter = { start: f.start, end: f.end, zones: f.zone ? [f.zone] : [], families: f.family ? [f.family] : [] };
      await guarded(view.views, async () => {
        await api("POST", "/safety/views", { name: name.value.trim(), filter, layout: { by: state.by, cell: state.cell, panels: ["stats", state.layer === "heat" ? "heatmap" : "map", "timeline", "bias"] },
          share: share.checked ? state.role : null });
        await loadViews();
      });
    } },
    field("safety-view-name", t("safety.view_name"), name),
    h("div", { class: "field" }, h("label", { for: "safety-view-share" }, t("safety.view_share")), Object.assign(share, { id: "safety-view-share" })),
    h("button", { type: "submit", id: "safety-view-save" }, t("safety.view_save"))));
}

function openView(saved) {
  const f = saved.filter;
  state.filter = { start: (f.start || DEFAULT.start).slice(0, 10), end: (f.end || DEFAULT.end).slice(0, 10), zone: (f.zones || [])[0] || "", family: (f.families || [])[0] || "" };
  state.by = saved.layout.by || "zone";
  state.cell = saved.layout.cell || 500;
  state.layer = (saved.layout.panels || []).includes("heatmap") ? "heat" : "grid";
  drawForm();
  refresh();
}

export async function render(main, ctx) {
  await prepare();
  state.role = ((ctx && ctx.user && ctx.user.roles) || []).find((r) => STAFF.includes(r)) || null;
  view = {
    views: h("section", { class: "card", id: "safety-views-card", "aria-label": t("safety.views_title") }),
    form: h("div", {}),
    stats: h("section", { class: "card", id: "safety-stats-card", "aria-label": t("safety.stats_title") }),
    map: h("section", { class: "card", id: "safety-map-card", "aria-label": t("safety.map_title") }),
    timeline: h("section", { class: "card", id: "safety-timeline-card", "aria-label": t("safety.timeline_title") }),
  };
  replace(main, h("div", { class: "safety" }, h("h1", {}, t("safety.dashboard_title")), h("p", { class: "lead" }, t("safety.dashboard_lead")),
    view.form, state.role ? view.views : "", view.stats, h("div", { class: "map-wrap" }, view.map, view.timeline)));
  try {
    const [basemap, catalogue] = await Promise.all([api("GET", "/safety/basemap"), api("GET", "/safety/catalogue")]);
    state.basemap = basemap;
    state.families = Object.keys(catalogue.families || {}).sort();
  } catch (error) {
    replace(view.stats, errorBox(error));
    return;
  }
  drawForm();
  if (state.role) await guarded(view.views, loadViews);
  await refresh();
}
