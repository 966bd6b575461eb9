// Feasibility, quick mode: filters on the research mart's variables (grouped as the catalogue groups them),
// a live count (debounced) and a breakdown chart, each number shown exactly as the API released it for
// this user: exact for members of an approved project, otherwise noisy and rounded, or suppressed, with
// the privacy budget it cost. Data comes only from the API: GET /mart/variables, GET /projects,
// POST /mart/count and POST /mart/breakdown.

import { api } from "/static/js/api.js";
import { barChart } from "/static/js/charts.js";
import { debounce, h, replace, uniqueId } from "/static/js/dom.js";
import { addCatalogue, currentLang, formatNumber, has, t } from "/static/js/i18n.js";
import { errorBox, progress } from "/static/js/ui.js";

const CATALOGUE = new URL("./i18n", import.meta.url).pathname;
const DEBOUNCE_MS = 350;
const PROGRESS_AFTER_MS = 150;
const PREFERRED_BREAKDOWNS = ["primary_site", "age_group_at_diagnosis", "sex"];

// The page's state outlives a re-render (a language switch keeps the filters).
const state = {
  variables: null,
  projects: [],
  filters: [],
  projectId: "",
  by: null,
  controller: null,
  sequence: 0,
  lastCount: null,
  lastBreakdown: null,
  lastError: null,
  timing: null,
};
let view = null;

function label(variable) {
  return currentLang() === "en" ? variable.label_en : variable.label_fr;
}

function valueLabel(variable, value) {
  if (value === null) return t("feasibility.no_value");
  const key = `value.${variable.name}.${value}`;
  if (has(key)) return t(key);
  if (value === true) return t("feasibility.yes");
  if (value === false) return t("feasibility.no");
  return String(value);
}

function groupLabel(group) {
  const key = `group.${group}`;
  return has(key) ? t(key) : group;
}

/** The catalogue's groups in their order, each with its variables (identifiers left out: never filtered on). */
function groups() {
  const found = new Map();
  for (const variable of state.variables) {
    if (variable.disclosure === "identifier") continue;
    if (!found.has(variable.group)) found.set(variable.group, []);
    found.get(variable.group).push(variable);
  }
  return found;
}

function variableNamed(name) {
  return state.variables.find((variable) => variable.name === name);
}

// -- filters ------------------------------------------------------------------------------------

function lastDay(year, month) {
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}

/** The API clauses of one filter row ([] while incomplete). */
function clauses(filter) {
  const variable = variableNamed(filter.variable);
  const name = variable.name;
  switch (variable.type) {
    case "category":
      return filter.values.size ? [{ variable: name, op: "in", value: [...filter.values] }] : [];
    case "boolean":
      return filter.choice === "" ? [] : [{ variable: name, op: "=", value: filter.choice === "true" }];
    case "text":
      return filter.text.trim() ? [{ variable: name, op: "=", value: filter.text.trim() }] : [];
    case "integer":
    case "number": {
      const out = [];
      if (filter.min !== "" && Number.isFinite(Number(filter.min))) out.push({ variable: name, op: ">=", value: Number(filter.min) });
      if (filter.max !== "" && Number.isFinite(Number(filter.max))) out.push({ variable: name, op: "<=", value: Number(filter.max) });
      return out;
    }
    case "date": {
      const out = [];
      const month = (variable.date_grain || "year") === "month";
      if (filter.min) {
        out.push({ variable: name, op: ">=", value: month ? `${filter.min}-01` : `${filter.min}-01-01` });
      }
      if (filter.max) {
        if (month) {
          const [year, mm] = filter.max.split("-").map(Number);
          out.push({ variable: name, op: "<=", value: `${filter.max}-${String(lastDay(year, mm)).padStart(2, "0")}` });
        } else out.push({ variable: name, op: "<=", value: `${filter.max}-12-31` });
      }
      return out;
    }
    default:
      return [];
  }
}

function filterSpec() {
  return { all: state.filters.flatMap(clauses) };
}

function newFilter(name) {
  return { id: uniqueId("filter"), variable: name, values: new Set(), choice: "", text: "", min: "", max: "" };
}

function changed() {
  scheduleRefresh();
}

function categoryControl(filter, variable) {
  return h(
    "div",
    { class: "choices" },
    variable.values.map((value) => {
      const id = uniqueId("choice");
      return h(
        "label",
        { for: id },
        h("input", {
          id, type: "checkbox", value, checked: filter.values.has(value), dataset: { value },
          onchange: (event) => {
            if (event.target.checked) filter.values.add(value);
            else filter.values.delete(value);
            changed();
          },
        }),
        valueLabel(variable, value),
      );
    }),
  );
}

function booleanControl(filter, variable) {
  const name = uniqueId("bool");
  const options = [["", t("feasibility.any")], ["true", t("feasibility.yes")], ["false", t("feasibility.no")]];
  return h(
    "div",
    { class: "choices" },
    options.map(([value, text]) => {
      const id = uniqueId("radio");
      return h("label", { for: id }, h("input", {
        id, type: "radio", name, value, checked: filter.choice === value,
        onchange: () => { filter.choice = value; changed(); },
      }), text);
    }),
  );
}

function rangeControl(filter, variable) {
  const date = variable.type === "date";
  const month = date && (variable.date_grain || "year") === "month";
  const attrs = date
    ? month ? { type: "month" } : { type: "number", min: 1900, max: 2100, step: 1, inputMode: "numeric" }
    : { type: "number", step: variable.type === "integer" ? 1 : "any", inputMode: "decimal" };
  const unit = variable.unit ? ` (${variable.unit})` : "";
  const field = (key, text) => {
    const id = uniqueId(key);
    return h("label", { for: id }, text + unit, h("input", {
      id, ...attrs, value: filter[key], dataset: { bound: key },
      oninput: (event) => { filter[key] = event.target.value; changed(); },
    }));
  };
  const from = date ? (month ? t("feasibility.from_month") : t("feasibility.from_year")) : t("feasibility.min");
  const to = date ? (month ? t("feasibility.to_month") : t("feasibility.to_year")) : t("feasibility.max");
  return h("div", { class: "range" }, field("min", from), field("max", to));
}

function textControl(filter) {
  const id = uniqueId("text");
  return h("div", { class: "range" }, h("label", { for: id }, t("feasibility.equals"), h("input", {
    id, type: "text", maxLength: 64, value: filter.text,
    oninput: (event) => { filter.text = event.target.value; changed(); },
  })));
}

function filterRow(filter) {
  const variable = variableNamed(filter.variable);
  const control =
    variable.type === "category" ? categoryControl(filter, variable)
      : variable.type === "boolean" ? booleanControl(filter, variable)
        : variable.type === "text" ? textControl(filter)
          : rangeControl(filter, variable);
  const grain = variable.type === "date" ? t(`feasibility.grain.${variable.date_grain || "year"}`) : null;
  const remove = h("button", {
    type: "button", class: "link-button", "aria-label": t("feasibility.remove_named", { name: label(variable) }),
    onclick: () => {
      state.filters = state.filters.filter((item) => item !== filter);
      renderFilters();
      changed();
      view.picker.focus();
    },
  }, t("feasibility.remove"));
  return h(
    "li",
    { class: "filter", dataset: { variable: variable.name } },
    h("fieldset", {},
      h("div", { class: "filter-head" }, h("legend", {}, label(variable)), remove),
      h("p", { class: "muted small" }, groupLabel(variable.group), grain ? ` · ${grain}` : null),
      control),
  );
}

function renderFilters() {
  replace(view.filterList, state.filters.map(filterRow));
  view.empty.hidden = state.filters.length > 0;
}

function picker() {
  const id = "feasibility-add";
  const select = h(
    "select",
    {
      id,
      onchange: (event) => {
        const name = event.target.value;
        event.target.value = "";
        if (!name) return;
        if (!state.filters.some((filter) => filter.variable === name)) state.filters.push(newFilter(name));
        renderFilters();
        changed();
        const row = view.filterList.querySelector(`[data-variable="${CSS.escape(name)}"] input`);
        if (row) row.focus();
      },
    },
    h("option", { value: "" }, t("feasibility.pick")),
    [...groups()].map(([group, variables]) =>
      h("optgroup", { label: groupLabel(group) }, variables.map((variable) => h("option", { value: variable.name }, label(variable))))),
  );
  return { select, field: h("div", { class: "field" }, h("label", { for: id }, t("feasibility.add")), select) };
}

function projectPicker() {
  const id = "feasibility-project";
  const approved = state.projects.filter((project) => project.status === "approved");
  const select = h(
    "select",
    { id, onchange: (event) => { state.projectId = event.target.value; changed(); } },
    h("option", { value: "" }, t("feasibility.no_project")),
    approved.map((project) => h("option", { value: String(project.id), selected: String(project.id) === state.projectId }, `${project.id} · ${project.title}`)),
  );
  return h("div", { class: "field" }, h("label", { for: id }, t("feasibility.project")), select,
    h("p", { class: "muted small" }, t("feasibility.project_help")));
}

function catalogueDetails() {
  return h(
    "details",
    { class: "catalogue" },
    h("summary", {}, t("feasibility.catalogue")),
    [...groups()].map(([group, variables]) =>
      h("div", { class: "catalogue-group" }, h("h3", {}, groupLabel(group)),
        h("ul", {}, variables.map((variable) => h("li", {},
          h("strong", {}, label(variable)), ` — ${variable.definition}`,
          variable.unit ? ` (${variable.unit})` : null,
          variable.type === "date" ? ` · ${t(`feasibility.grain.${variable.date_grain || "year"}`)}` : null))))),
  );
}

// -- results ------------------------------------------------------------------------------------

function releaseBadge(count, release) {
  if (release.mode === "exact") return h("span", { class: "badge badge-exact", id: "release-mode" }, t("feasibility.exact"));
  if (count === null) return h("span", { class: "badge badge-suppressed", id: "release-mode" }, t("feasibility.suppressed", { threshold: release.threshold }));
  return h("span", { class: "badge badge-noisy", id: "release-mode" }, t("feasibility.noisy", { base: release.rounding_base }));
}

function releaseFacts(release) {
  if (release.mode === "exact") return h("p", { class: "muted small" }, t("feasibility.exact_help"));
  const digits = { maximumFractionDigits: 3 };
  const cost = release.repeated ? t("feasibility.repeated") : t("feasibility.charged", { epsilon: formatNumber(release.charged ?? 0, digits) });
  return h("p", { class: "muted small", id: "release-facts" }, cost, " · ",
    t("feasibility.budget_left", { epsilon: formatNumber(release.budget_remaining ?? 0, digits) }));
}

function renderCount() {
  const box = view.countBody;
  if (state.lastError) {
    replace(box, errorBox(state.lastError, unbuiltHelp(state.lastError)));
    return;
  }
  const result = state.lastCount;
  if (!result) return;
  replace(
    box,
    h("p", { class: "count", id: "count-value" }, result.shown),
    h("p", {}, releaseBadge(result.count, result.release)),
    releaseFacts(result.release),
    state.timing === null ? null : h("p", { class: "muted small", id: "count-timing" }, t("feasibility.timing", { ms: Math.round(state.timing) })),
  );
}

function unbuiltHelp(error) {
  if (error.status !== 409) return null;
  return h("p", {}, t("feasibility.unbuilt"), " ", h("code", {}, "massalia mart build --home <MASSALIA_HOME>"));
}

async function renderBreakdown() {
  const result = state.lastBreakdown;
  if (!result || state.lastError) {
    replace(view.breakdownTable);
    return;
  }
  const variable = variableNamed(result.variable);
  const bars = result.cells.map((cell) => ({ label: valueLabel(variable, cell.value), value: cell.count, shown: cell.shown }));
  const title = t("feasibility.breakdown_title", { variable: label(variable) });
  replace(
    view.breakdownTable,
    h("table", { class: "table", id: "breakdown-table" },
      h("caption", { class: "sr-only" }, title),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, label(variable)), h("th", { scope: "col", class: "number" }, t("feasibility.patients")))),
      h("tbody", {},
        bars.map((bar) => h("tr", {}, h("td", {}, bar.label), h("td", { class: "number" }, bar.shown))),
        h("tr", {}, h("th", { scope: "row" }, t("feasibility.total")), h("td", { class: "number" }, result.total_shown)))),
  );
  await barChart(view.chart, { bars, title, axisName: t("feasibility.patients") });
  view.chart.dataset.variable = result.variable;
}

function setBusy(busy) {
  view.results.setAttribute("aria-busy", busy ? "true" : "false");
  view.progress.hidden = !busy;
}

const scheduleRefresh = debounce(() => refresh(), DEBOUNCE_MS);

async function refresh() {
  if (state.controller) state.controller.abort();
  const controller = new AbortController();
  state.controller = controller;
  const sequence = ++state.sequence;
  const body = { filters: filterSpec() };
  if (state.projectId) body.project_id = Number(state.projectId);
  const timer = setTimeout(() => { if (sequence === state.sequence) setBusy(true); }, PROGRESS_AFTER_MS);
  const started = performance.now();
  try {
    const count = await api("POST", "/mart/count", body, { signal: controller.signal });
    if (sequence !== state.sequence) return;
    state.timing = performance.now() - started;
    state.lastCount = count;
    state.lastError = null;
    renderCount();
    const breakdown = await api("POST", "/mart/breakdown", { ...body, by: state.by }, { signal: controller.signal });
    if (sequence !== state.sequence) return;
    state.lastBreakdown = breakdown;
    await renderBreakdown();
  } catch (error) {
    if (error.name === "AbortError" || sequence !== state.sequence) return;
    state.lastError = error;
    state.lastCount = null;
    state.lastBreakdown = null;
    renderCount();
    await renderBreakdown();
  } finally {
    clearTimeout(timer);
    if (sequence === state.sequence) {
      setBusy(false);
      view.results.dataset.sequence = String(sequence);
      document.dispatchEvent(new CustomEvent("massalia:counted", { detail: { sequence, ms: state.timing } }));
    }
  }
}

function breakdownPicker() {
  const id = "feasibility-by";
  const options = state.variables.filter((variable) => (variable.type === "category" || variable.type === "boolean") && variable.disclosure !== "identifier");
  options.sort((a, b) => {
    const rank = (v) => (PREFERRED_BREAKDOWNS.includes(v.name) ? PREFERRED_BREAKDOWNS.indexOf(v.name) : 99);
    return rank(a) - rank(b);
  });
  if (!state.by) state.by = options.length ? options[0].name : null;
  const select = h("select", { id, onchange: (event) => { state.by = event.target.value; refresh(); } },
    options.map((variable) => h("option", { value: variable.name, selected: variable.name === state.by }, label(variable))));
  return h("div", { class: "field" }, h("label", { for: id }, t("feasibility.by")), select);
}

// -- the page -----------------------------------------------------------------------------------

async function load() {
  const [variables, projects] = await Promise.all([
    api("GET", "/mart/variables"),
    api("GET", "/projects?limit=100").catch(() => ({ items: [] })),
  ]);
  state.variables = variables;
  state.projects = projects.items || [];
}

export async function render(main, ctx) {
  await addCatalogue(CATALOGUE);
  const heading = h("h1", {}, t("feasibility.title"));
  if (!state.variables) {
    replace(main, heading, progress(t("feasibility.loading")));
    try {
      await load();
    } catch (error) {
      replace(main, heading, errorBox(error));
      return;
    }
  }
  const pick = picker();
  view = {
    picker: pick.select,
    filterList: h("ul", { class: "filter-list", id: "filter-list", "aria-label": t("feasibility.filters") }),
    empty: h("p", { class: "muted" }, t("feasibility.empty")),
    countBody: h("div", { id: "count-body", "aria-live": "polite" }),
    progress: progress(t("feasibility.counting")),
    chart: h("div", { class: "chart", id: "breakdown-chart" }),
    breakdownTable: h("div", {}),
    results: null,
  };
  view.progress.hidden = true;
  const clearAll = h("button", { type: "button", id: "clear-filters", onclick: () => { state.filters = []; renderFilters(); changed(); } }, t("feasibility.clear"));
  view.results = h(
    "div",
    { id: "results", "aria-busy": "false" },
    h("section", { class: "card count-box", "aria-labelledby": "count-title" }, h("h2", { id: "count-title" }, t("feasibility.patients")), view.progress, view.countBody),
    h("section", { class: "card", "aria-labelledby": "breakdown-title" },
      h("h2", { id: "breakdown-title" }, t("feasibility.breakdown")),
      h("div", { class: "chart-tools" }, breakdownPicker()),
      view.chart,
      h("details", {}, h("summary", {}, t("feasibility.as_table")), view.breakdownTable)),
  );
  replace(
    main,
    heading,
    h("p", { class: "lead" }, t("feasibility.lead")),
    h("div", { class: "feasibility" },
      h("section", { class: "card", "aria-labelledby": "filters-title" },
        h("h2", { id: "filters-title" }, t("feasibility.filters")),
        projectPicker(), pick.field, view.empty, view.filterList,
        h("div", { class: "actions" }, clearAll),
        catalogueDetails()),
      view.results),
  );
  renderFilters();
  if (state.lastCount || state.lastError) {
    // A re-render (a language switch): the released numbers are shown again, not asked again.
    renderCount();
    await renderBreakdown();
    return;
  }
  await refresh();
}
