// Charts with Apache ECharts (vendored, served by the app: /static/vendor/echarts/). The library is a
// classic script: it is loaded once, on demand, by a <script src> element (allowed by script-src 'self').
// Tooltips are rendered in the canvas (renderMode "richText"), never as HTML with inline styles.

// Beside this module (its versioned address, kept for good by the browser like the scripts).
const ECHARTS_URL = new URL("../vendor/echarts/echarts.min.js", import.meta.url).pathname;
let loading = null;

/** The ECharts library (window.echarts), loaded on first use. */
export function loadECharts() {
  if (window.echarts) return Promise.resolve(window.echarts);
  if (!loading) {
    loading = new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = ECHARTS_URL;
      script.async = true;
      script.addEventListener("load", () => resolve(window.echarts));
      script.addEventListener("error", () => {
        loading = null;
        reject(new Error(`could not load ${ECHARTS_URL}`));
      });
      document.head.append(script);
    });
  }
  return loading;
}

const charts = new WeakMap();
let resizeBound = false;

/**
 * The ECharts chart living in `element` (made on first use, resized with the window), marked as a chart of
 * `kind` and labelled `title` for screen readers. Every chart of the portal, core or domain, is made here.
 */
export async function chartIn(element, title, kind) {
  const echarts = await loadECharts();
  let chart = charts.get(element);
  if (!chart || chart.isDisposed()) {
    chart = echarts.init(element, null, { renderer: "canvas" });
    charts.set(element, chart);
  }
  if (!resizeBound) {
    resizeBound = true;
    window.addEventListener("resize", () => {
      for (const node of document.querySelectorAll("[data-chart]")) charts.get(node)?.resize();
    });
  }
  element.dataset.chart = kind;
  element.setAttribute("role", "img");
  element.setAttribute("aria-label", title);
  return chart;
}

/**
 * Draw (or redraw) a bar chart in `element`: bars {label, value, shown}, a title for screen readers.
 * A bar whose value is null (suppressed) is drawn at 0 and labelled with its shown text ("<10").
 */
export async function barChart(element, { bars, title, axisName = "" }) {
  const chart = await chartIn(element, title, "bar");
  chart.setOption(
    {
      animation: false, // a redraw per count: no transition (and screenshots show the final chart)
      grid: { left: 48, right: 16, top: 24, bottom: 64, containLabel: true },
      tooltip: { trigger: "item", renderMode: "richText", formatter: (p) => `${p.name}: ${bars[p.dataIndex].shown}` },
      xAxis: { type: "category", data: bars.map((bar) => bar.label), axisLabel: { interval: 0, rotate: bars.length > 6 ? 30 : 0 } },
      yAxis: { type: "value", name: axisName, minInterval: 1 },
      series: [
        {
          type: "bar",
          data: bars.map((bar) => bar.value ?? 0),
          itemStyle: { color: "#1d4e89" },
          label: { show: true, position: "top", formatter: (p) => bars[p.dataIndex].shown },
        },
      ],
    },
    { notMerge: true },
  );
  return chart;
}
