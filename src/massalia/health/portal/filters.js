// The mart filter editor shared by health's pages (feasibility, analyses): a picker of the research mart's
// variables (grouped as the catalogue groups them) and one row per filter with the control its type calls for,
// turned into the API's filter clauses ({all: [{variable, op, value}]}). Several editors can share a page
// (an analysis's population, treated and comparator arms): each has its own ids.

import { h, replace, uniqueId } from "../../js/dom.js";
import { currentLang, has, t } from "../../js/i18n.js";

/** A variable's label in the current language. */
export function variableLabel(variable) {
  return currentLang() === "en" ? variable.label_en : variable.label_fr;
}

/** A value's label: the catalogue's text when it has one (value.<variable>.<value>), else the value itself. */
export function valueLabel(variable, value) {
  if (value === null) return t("feasibility.no_value");
  const key = `value.${variable.name}.${value}`;
  if (has(key)) return t(key);
  if (value === true) return t("feasibility.yes");
  if (value === false) return t("feasibility.no");
  return String(value);
}

/** A catalogue group's label. */
export function groupLabel(group) {
  const key = `group.${group}`;
  return has(key) ? t(key) : group;
}

/** The catalogue's groups in their order, each with its variables (identifiers left out: never filtered on). */
export function variableGroups(variables) {
  const found = new Map();
  for (const variable of variables) {
    if (variable.disclosure === "identifier") continue;
    if (!found.has(variable.group)) found.set(variable.group, []);
    found.get(variable.group).push(variable);
  }
  return found;
}

function lastDay(year, month) {
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}

function dateClauses(variable, filter) {
  const out = [];
  const month = (variable.date_grain || "year") === "month";
  if (filter.min) out.push({ variable: variable.name, op: ">=", value: month ? `${filter.min}-01` : `${filter.min}-01-01` });
  if (filter.max) {
    if (month) {
      const [year, mm] = filter.max.split("-").map(Number);
      out.push({ variable: variable.name, op: "<=", value: `${filter.max}-${String(lastDay(year, mm)).padStart(2, "0")}` });
    } else out.push({ variable: variable.name, op: "<=", value: `${filter.max}-12-31` });
  }
  return out;
}

/** The API clauses of one filter row ([] while incomplete). */
function clauses(variable, filter) {
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
    case "date":
      return dateClauses(variable, filter);
    default:
      return [];
  }
}

function categoryControl(filter, variable, changed) {
  return h("div", { class: "choices" }, variable.values.map((value) => {
    const id = uniqueId("choice");
    return h("label", { for: id },
      h("input", {
        id, type: "checkbox", value, checked: filter.values.has(value), dataset: { value },
        onchange: (event) => {
          if (event.target.checked) filter.values.add(value);
          else filter.values.delete(value);
          changed();
        },
      }),
      valueLabel(variable, value));
  }));
}

function booleanControl(filter, changed) {
  const name = uniqueId("bool");
  const options = [["", t("feasibility.any")], ["true", t("feasibility.yes")], ["false", t("feasibility.no")]];
  return h("div", { class: "choices" }, options.map(([value, text]) => {
    const id = uniqueId("radio");
    return h("label", { for: id }, h("input", {
      id, type: "radio", name, value, checked: filter.choice === value,
      onchange: () => { filter.choice = value; changed(); },
    }), text);
  }));
}

function rangeControl(filter, variable, changed) {
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

function textControl(filter, changed) {
  const id = uniqueId("text");
  return h("div", { class: "range" }, h("label", { for: id }, t("feasibility.equals"), h("input", {
    id, type: "text", maxLength: 64, value: filter.text,
    oninput: (event) => { filter.text = event.target.value; changed(); },
  })));
}

/**
 * An editor of mart filters. Its filters outlive a re-render (a language switch): keep the editor, call
 * element() again.
 *
 *   const editor = new FilterEditor(variables, { pickerId: "feasibility-add", listId: "filter-list", onChange });
 *   main.append(editor.element());  editor.spec()  // → {all: [{variable: "sex", op: "in", value: ["female"]}]}
 */
export class FilterEditor {
  /** label and emptyText are functions (called at each render: the language may have changed). */
  constructor(variables, { pickerId, listId, onChange = () => {}, label = null, emptyText = null } = {}) {
    this.variables = variables;
    this.pickerId = pickerId;
    this.listId = listId;
    this.onChange = onChange;
    this.label = label;
    this.emptyText = emptyText;
    this.filters = [];
    this.view = null;
  }

  /** The catalogue entry of a variable name. */
  variable(name) {
    return this.variables.find((variable) => variable.name === name);
  }

  /** The filters as the API takes them. */
  spec() {
    return { all: this.filters.flatMap((filter) => clauses(this.variable(filter.variable), filter)) };
  }

  /** Add a filter on a variable (once), with optional preset values; re-draws when shown. */
  add(name, preset = {}) {
    if (!this.variable(name)) throw new Error(`unknown mart variable ${name}`);
    let filter = this.filters.find((item) => item.variable === name);
    if (!filter) {
      filter = { id: uniqueId("filter"), variable: name, values: new Set(), choice: "", text: "", min: "", max: "" };
      this.filters.push(filter);
    }
    if (preset.values) for (const value of preset.values) filter.values.add(value);
    for (const key of ["choice", "text", "min", "max"]) if (preset[key] !== undefined) filter[key] = String(preset[key]);
    if (this.view) this.renderRows();
    return filter;
  }

  /** Remove every filter. */
  clear() {
    this.filters = [];
    if (this.view) this.renderRows();
    this.onChange();
  }

  row(filter) {
    const variable = this.variable(filter.variable);
    const changed = () => this.onChange();
    const control =
      variable.type === "category" ? categoryControl(filter, variable, changed)
        : variable.type === "boolean" ? booleanControl(filter, changed)
          : variable.type === "text" ? textControl(filter, changed)
            : rangeControl(filter, variable, changed);
    const grain = variable.type === "date" ? t(`feasibility.grain.${variable.date_grain || "year"}`) : null;
    const remove = h("button", {
      type: "button", class: "link-button", "aria-label": t("feasibility.remove_named", { name: variableLabel(variable) }),
      onclick: () => {
        this.filters = this.filters.filter((item) => item !== filter);
        this.renderRows();
        this.onChange();
        this.view.picker.focus();
      },
    }, t("feasibility.remove"));
    return h("li", { class: "filter", dataset: { variable: variable.name } },
      h("fieldset", {},
        h("div", { class: "filter-head" }, h("legend", {}, variableLabel(variable)), remove),
        h("p", { class: "muted small" }, groupLabel(variable.group), grain ? ` · ${grain}` : null),
        control));
  }

  renderRows() {
    replace(this.view.list, this.filters.map((filter) => this.row(filter)));
    this.view.empty.hidden = this.filters.length > 0;
  }

  picker() {
    return h("select", {
      id: this.pickerId,
      onchange: (event) => {
        const name = event.target.value;
        event.target.value = "";
        if (!name) return;
        this.add(name);
        this.onChange();
        const row = this.view.list.querySelector(`[data-variable="${CSS.escape(name)}"] input`);
        if (row) row.focus();
      },
    },
    h("option", { value: "" }, t("feasibility.pick")),
    [...variableGroups(this.variables)].map(([group, variables]) =>
      h("optgroup", { label: groupLabel(group) }, variables.map((variable) => h("option", { value: variable.name }, variableLabel(variable))))));
  }

  /** The editor's nodes (a fresh set each call): the picker's field, the "no filter" line, the list of rows. */
  element() {
    const picker = this.picker();
    this.view = {
      picker,
      empty: h("p", { class: "muted" }, (this.emptyText && this.emptyText()) || t("feasibility.empty")),
      list: h("ul", { class: "filter-list", id: this.listId, "aria-label": (this.label && this.label()) || t("feasibility.filters") }),
    };
    this.renderRows();
    return h("div", { class: "filter-editor" },
      h("div", { class: "field" }, h("label", { for: this.pickerId }, t("feasibility.add")), picker),
      this.view.empty, this.view.list);
  }
}
