// Shared pieces of the analyses' renderers: numbers as the API released them, tables, and the ECharts charts
// the analyses draw (step curves with confidence bands, a scatter of balance, paired histograms). Every
// count is shown as released ({count, shown}: "<10" when under the disclosure threshold, drawn at 0).

import { chartIn } from "../../js/charts.js";
import { h } from "../../js/dom.js";
import { formatNumber, t } from "../../js/i18n.js";

/** Colours told apart by most colour-blind readers (Okabe–Ito), darkest first. */
export const PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#56B4E9", "#E69F00", "#000000", "#F0E442"];


/** A released count as shown ("<10" under the threshold). */
export function shown(cell) {
  if (cell === null || cell === undefined) return "—";
  if (typeof cell === "object") return cell.shown ?? (cell.count === null ? "—" : String(cell.count));
  return String(cell);
}

/** A ratio or estimate, rounded for reading. */
export function decimal(value, digits = 2) {
  if (value === null || value === undefined || !Number.isFinite(value)) return "—";
  return formatNumber(value, { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** A p-value: "< 0.001" under a thousandth. */
export function pValue(value) {
  if (value === null || value === undefined || !Number.isFinite(value)) return "—";
  if (value < 0.001) return `< ${formatNumber(0.001, { minimumFractionDigits: 3 })}`;
  return formatNumber(value, { minimumFractionDigits: 3, maximumFractionDigits: 3 });
}

/** A p-value after "p": "= 0.042" or "< 0.001". */
export function pEquals(value) {
  const text = pValue(value);
  return text.startsWith("<") ? text : `= ${text}`;
}

/** A table: columns [{label, number}], rows of cells; its caption is visible (tables are part of the result). */
export function table(id, caption, columns, rows, { rowHeaders = true } = {}) {
  return h("div", { class: "table-wrap", role: "region", "aria-label": caption, tabIndex: 0 },
    h("table", { class: "table", id },
      h("caption", {}, caption),
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col", class: c.number ? "number" : null }, c.label)))),
      h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((cell, i) => (i === 0 && rowHeaders
        ? h("th", { scope: "row" }, cell)
        : h("td", { class: columns[i].number ? "number" : null }, cell))))))));
}

/**
 * Step curves (Kaplan–Meier, cumulative incidence) with their 95 % bands: series [{name, curve: [{time,
 * estimate, lower, upper}]}]. A band is drawn as a stacked area (lower, then upper − lower) under the curve.
 */
export async function curveChart(element, { series, title, xName, yName }) {
  const chart = await chartIn(element, title, "curve");
  const drawn = [];
  series.forEach((item, index) => {
    const colour = PALETTE[index % PALETTE.length];
    const points = item.curve || [];
    const lower = points.map((p) => [p.time, p.lower ?? p.estimate]);
    const width = points.map((p) => [p.time, (p.upper ?? p.estimate) - (p.lower ?? p.estimate)]);
    const band = { type: "line", step: "end", symbol: "none", silent: true, stack: `band-${index}`, lineStyle: { opacity: 0 }, tooltip: { show: false } };
    drawn.push({ ...band, name: `${item.name} lower`, data: lower });
    drawn.push({ ...band, name: `${item.name} band`, data: width, areaStyle: { color: colour, opacity: 0.15 } });
    drawn.push({
      type: "line", step: "end", name: item.name, symbolSize: 4, data: points.map((p) => [p.time, p.estimate]),
      itemStyle: { color: colour }, lineStyle: { color: colour, width: 2 },
    });
  });
  chart.setOption({
    animation: false,
    color: PALETTE,
    grid: { left: 56, right: 24, top: 40, bottom: 48, containLabel: true },
    legend: { data: series.map((item) => item.name), top: 0 },
    tooltip: { trigger: "item", renderMode: "richText", formatter: (p) => `${p.seriesName}: ${decimal(p.value[1], 3)} (${decimal(p.value[0], 0)})` },
    xAxis: { type: "value", name: xName, nameLocation: "middle", nameGap: 28, min: 0 },
    yAxis: { type: "value", name: yName, min: 0, max: 1 },
    series: drawn,
  }, { notMerge: true });
  return chart;
}

/** Balance: |SMD| before adjustment (x) against after (y), one series per adjustment, the 0.1 line marked. */
export async function balanceChart(element, { rows, title, adjustments }) {
  const chart = await chartIn(element, title, "balance");
  const largest = Math.max(0.2, ...rows.flatMap((row) => [row.before, ...adjustments.map((a) => row[a.key])])
    .filter((v) => v !== null && Number.isFinite(v)).map(Math.abs));
  const limit = Math.ceil(largest * 10) / 10;
  chart.setOption({
    animation: false,
    grid: { left: 56, right: 24, top: 40, bottom: 48, containLabel: true },
    legend: { data: adjustments.map((a) => a.label), top: 0 },
    tooltip: { trigger: "item", renderMode: "richText", formatter: (p) => `${p.data[2]}: ${decimal(p.data[0], 3)} → ${decimal(p.data[1], 3)}` },
    xAxis: { type: "value", name: t("analyses.compare.smd_before"), nameLocation: "middle", nameGap: 28, min: 0, max: limit },
    yAxis: { type: "value", name: t("analyses.compare.smd_after"), min: 0, max: limit },
    series: adjustments.map((adjustment, index) => ({
      type: "scatter", name: adjustment.label, symbolSize: 7, itemStyle: { color: PALETTE[index] },
      data: rows.filter((row) => row[adjustment.key] !== null && row.before !== null)
        .map((row) => [Math.abs(row.before), Math.abs(row[adjustment.key]), row.covariate]),
      markLine: index ? undefined : {
        silent: true, symbol: "none", lineStyle: { type: "dashed", color: "#555" }, label: { formatter: "0.1" },
        data: [{ yAxis: 0.1 }, { xAxis: 0.1 }],
      },
    })),
  }, { notMerge: true });
  return chart;
}

/** Two arms' histograms over the same bins: bars [{label, treated: {count, shown}, comparator: {count, shown}}]. */
export async function pairedHistogram(element, { bins, title, names, axisName }) {
  const chart = await chartIn(element, title, "histogram");
  const arms = ["treated", "comparator"];
  chart.setOption({
    animation: false,
    grid: { left: 56, right: 24, top: 40, bottom: 56, containLabel: true },
    legend: { data: arms.map((arm) => names[arm]), top: 0 },
    tooltip: { trigger: "item", renderMode: "richText", formatter: (p) => `${p.seriesName} ${p.name}: ${shown(bins[p.dataIndex][arms[p.seriesIndex]])}` },
    xAxis: { type: "category", data: bins.map((bin) => bin.label), name: axisName, nameLocation: "middle", nameGap: 40, axisLabel: { rotate: 30 } },
    yAxis: { type: "value", name: t("analyses.persons"), minInterval: 1 },
    series: arms.map((arm, index) => ({
      type: "bar", name: names[arm], itemStyle: { color: PALETTE[index] },
      data: bins.map((bin) => bin[arm].count ?? 0),
      // A suppressed cell is drawn at 0 and says so ("<10"), as the portal's bar charts do.
      label: { show: true, position: "top", fontSize: 10, formatter: (p) => (bins[p.dataIndex][arm].count === null ? shown(bins[p.dataIndex][arm]) : "") },
    })),
  }, { notMerge: true });
  return chart;
}

/** A chart's element (sized by the portal's .chart rule). */
export function chartBox(id) {
  return h("div", { class: "chart analysis-chart", id });
}

/** A rate (0–1) as a percentage, one decimal. */
export function percent(value, digits = 1) {
  if (value === null || value === undefined || !Number.isFinite(value)) return "—";
  return formatNumber(value, { style: "percent", minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/**
 * A Sankey of pathways: nodes [{id, label, step}], links [{source, target, value: {count, shown}, tip}]. Node ids
 * are unique ("2:chemotherapy"), their labels are not: the label is drawn, the id keys the links.
 */
export async function sankeyChart(element, { nodes, links, title, nodeLabel, linkTip }) {
  const chart = await chartIn(element, title, "sankey");
  chart.setOption({
    animation: false,
    color: PALETTE,
    tooltip: {
      trigger: "item", renderMode: "richText",
      formatter: (p) => (p.dataType === "edge" ? linkTip(links[p.dataIndex]) : nodeLabel(nodes[p.dataIndex])),
    },
    series: [{
      type: "sankey", left: 8, right: 120, top: 16, bottom: 16, nodeGap: 10, draggable: false,
      layoutIterations: 32, emphasis: { focus: "adjacency" }, lineStyle: { color: "gradient", opacity: 0.45 },
      label: { formatter: (p) => nodeLabel(nodes[p.dataIndex]), fontSize: 11 },
      data: nodes.map((node, index) => ({ name: node.id, depth: node.step, itemStyle: { color: PALETTE[index % PALETTE.length] } })),
      links: links.map((link) => ({ source: link.source, target: link.target, value: link.value.count ?? 0 })),
    }],
  }, { notMerge: true });
  return chart;
}

/**
 * Rates by group with their 95 % CI as whiskers: rows [{label, rate, lower, upper, shown}]. A suppressed rate
 * (null) is drawn at 0 and labelled with `shown` (why it is not drawn).
 */
export async function rateChart(element, { rows, title, axisName }) {
  const chart = await chartIn(element, title, "rate");
  chart.setOption({
    animation: false,
    grid: { left: 56, right: 24, top: 24, bottom: 48, containLabel: true },
    tooltip: {
      trigger: "item", renderMode: "richText",
      formatter: (p) => { const row = rows[p.dataIndex]; return row.rate === null ? `${row.label}: ${row.shown}` : `${row.label}: ${percent(row.rate)} (${percent(row.lower)} – ${percent(row.upper)})`; },
    },
    xAxis: { type: "category", data: rows.map((row) => row.label), name: axisName, nameLocation: "middle", nameGap: 32 },
    yAxis: { type: "value", min: 0, max: 1, axisLabel: { formatter: (v) => percent(v, 0) } },
    series: [
      {
        type: "bar", itemStyle: { color: PALETTE[0] }, barMaxWidth: 48, data: rows.map((row) => row.rate ?? 0),
        label: { show: true, position: "insideBottom", fontSize: 10, color: "#000", formatter: (p) => (rows[p.dataIndex].rate === null ? rows[p.dataIndex].shown : "") },
      },
      {
        // The whiskers: a vertical line from lower to upper with caps, in data coordinates.
        type: "custom", silent: true, tooltip: { show: false },
        data: rows.map((row, index) => [index, row.lower ?? NaN, row.upper ?? NaN]),
        renderItem: (params, api) => {
          if (!Number.isFinite(api.value(1))) return null;
          const low = api.coord([api.value(0), api.value(1)]);
          const high = api.coord([api.value(0), api.value(2)]);
          const cap = 6;
          const style = { stroke: "#000", lineWidth: 1.5 };
          return {
            type: "group",
            children: [
              { type: "line", shape: { x1: low[0], y1: low[1], x2: high[0], y2: high[1] }, style },
              { type: "line", shape: { x1: low[0] - cap, y1: low[1], x2: low[0] + cap, y2: low[1] }, style },
              { type: "line", shape: { x1: high[0] - cap, y1: high[1], x2: high[0] + cap, y2: high[1] }, style },
            ],
          };
        },
      },
    ],
  }, { notMerge: true });
  return chart;
}

/** Calibration: mean predicted (x) against observed risk (y) per bin, with the diagonal of perfect calibration. */
export async function calibrationChart(element, { series, title }) {
  const chart = await chartIn(element, title, "calibration");
  chart.setOption({
    animation: false,
    grid: { left: 56, right: 24, top: 40, bottom: 48, containLabel: true },
    legend: { data: series.map((item) => item.name), top: 0 },
    tooltip: { trigger: "item", renderMode: "richText", formatter: (p) => `${p.seriesName}: ${decimal(p.value[0], 3)} → ${decimal(p.value[1], 3)}` },
    xAxis: { type: "value", name: t("analyses.prediction.predicted"), nameLocation: "middle", nameGap: 28, min: 0, max: 1 },
    yAxis: { type: "value", name: t("analyses.prediction.observed"), min: 0, max: 1 },
    series: [
      { type: "line", name: "diagonal", silent: true, symbol: "none", tooltip: { show: false }, lineStyle: { type: "dashed", color: "#555" }, data: [[0, 0], [1, 1]] },
      ...series.map((item, index) => ({
        type: "line", name: item.name, symbolSize: 8, itemStyle: { color: PALETTE[index] }, lineStyle: { color: PALETTE[index] },
        data: item.bins.map((bin) => [bin.predicted, bin.observed]),
      })),
    ],
  }, { notMerge: true });
  return chart;
}

/** Horizontal bars, largest on top: rows [{label, value, error}] (error: a ± whisker's half-width, optional). */
export async function horizontalBars(element, { rows, title, axisName }) {
  const chart = await chartIn(element, title, "bars");
  const ordered = [...rows].reverse();
  chart.setOption({
    animation: false,
    grid: { left: 8, right: 32, top: 16, bottom: 40, containLabel: true },
    tooltip: { trigger: "item", renderMode: "richText", formatter: (p) => `${ordered[p.dataIndex].label}: ${decimal(ordered[p.dataIndex].value, 4)}` },
    xAxis: { type: "value", name: axisName, nameLocation: "middle", nameGap: 26 },
    yAxis: { type: "category", data: ordered.map((row) => row.label), axisLabel: { fontSize: 10 } },
    series: [{ type: "bar", itemStyle: { color: PALETTE[0] }, data: ordered.map((row) => row.value) }],
  }, { notMerge: true });
  return chart;
}

/** A histogram of released counts: bins [{label, n: {count, shown}}]; a suppressed bin is drawn at 0, labelled. */
export async function histogramChart(element, { bins, title, axisName }) {
  const chart = await chartIn(element, title, "histogram");
  chart.setOption({
    animation: false,
    grid: { left: 56, right: 24, top: 24, bottom: 56, containLabel: true },
    tooltip: { trigger: "item", renderMode: "richText", formatter: (p) => `${p.name}: ${shown(bins[p.dataIndex].n)}` },
    xAxis: { type: "category", data: bins.map((bin) => bin.label), name: axisName, nameLocation: "middle", nameGap: 40, axisLabel: { rotate: 30 } },
    yAxis: { type: "value", name: t("analyses.persons"), minInterval: 1 },
    series: [{
      type: "bar", itemStyle: { color: PALETTE[0] }, data: bins.map((bin) => bin.n.count ?? 0),
      label: { show: true, position: "top", fontSize: 10, formatter: (p) => (bins[p.dataIndex].n.count === null ? shown(bins[p.dataIndex].n) : "") },
    }],
  }, { notMerge: true });
  return chart;
}
