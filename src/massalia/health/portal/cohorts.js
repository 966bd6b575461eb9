// Cohort builder (full mode): the cohort definition (Massalia JSON, docs/cohorts.md) edited visually —
// concept sets with a concept search and hierarchy, entry events by domain (oncology criteria included),
// inclusion rules (add, remove, rename, switch on and off). The count refreshes live (debounced; the
// switches are the API's what-if `enabled` flags) and the attrition chart follows the rules switched on.
// Breakdowns, import of ATLAS/Circe JSON, export, the generated SQL, and saved versions in a project.
// Data comes only from the API: /vocabulary/concepts, /cohorts/{count,attrition,generate,breakdowns,
// import,sql}, /projects and /projects/{id}/cohorts.

import { api } from "../../js/api.js";
import { barChart, loadECharts } from "../../js/charts.js";
import { debounce, h, replace, uniqueId } from "../../js/dom.js";
import { addCatalogue, t } from "../../js/i18n.js";
import { errorBox, progress } from "../../js/ui.js";

const CATALOGUE = new URL("./i18n", import.meta.url).pathname;
const DEBOUNCE_MS = 120;

const CODED = ["ConditionOccurrence", "DrugExposure", "ProcedureOccurrence", "Measurement", "Observation", "VisitOccurrence", "DeviceExposure", "Death"];
const ONCOLOGY = ["CancerDiagnosis", "TnmStage", "Biomarker", "TreatmentLine", "DiseaseProgression", "NoteFinding"];
// NoteFinding: a finding of the clinical NLP pipeline in a note (NOTE_NLP), its label, value and qualifiers.
const NOTE_LABELS = ["biomarker", "cancer", "histology", "tnm", "stage", "ecog", "metastasis", "drug", "comorbidity", "procedure", "adverse_event", "progression", "date"];
const QUALIFIERS = ["negated", "hypothesis", "family", "history"];
const OPS = ["gte", "gt", "eq", "lte", "lt"];
const MODALITIES = ["chemotherapy", "targeted", "immunotherapy", "hormone"];

function emptyDefinition() {
  return { title: "", concept_sets: [], primary_criteria: { criteria_list: [] }, inclusion_rules: [] };
}

// The page's state outlives a re-render (a language switch keeps the definition being edited).
const state = {
  definition: emptyDefinition(),
  enabled: [],
  projects: [],
  projectId: "",
  saved: null, // {id, project_id, name, latest_version, shared}
  savedList: [],
  cohortId: 1,
  controller: null,
  sequence: 0,
  count: null,
  attrition: null,
  error: null,
  timing: null,
  breakdowns: null,
  sql: null,
  search: { text: "", results: [], setId: null, detail: null },
  loaded: false,
};
let view = null;

// -- helpers ------------------------------------------------------------------------------------

/** A released count as text: exact as is, noisy with "~", suppressed as "<threshold". */
function shown(value, release) {
  if (!release || release.mode === "exact") return value === null || value === undefined ? "—" : String(value);
  if (value === null || value === undefined) return `<${release.threshold}`;
  return `~${value}`;
}

function kindLabel(kind) {
  return t(`cohorts.kind.${kind}`);
}

function labelled(text, control) {
  const id = control.id || uniqueId("cb");
  control.id = id;
  return h("label", { for: id }, text, control);
}

function defaultCriterion(kind) {
  if (kind === "TnmStage") return { kind, axis: "group", value: { op: "gte", value: 3 } };
  if (kind === "Biomarker") return { kind, status: "positive" };
  // "The patient has it": affirmed, not hypothetical, not about a relative (the API's own defaults, made visible).
  if (kind === "NoteFinding") return { kind, label: "biomarker", value: ["her2:positive"], negated: false, hypothesis: false, family: false };
  if (kind === "TreatmentLine") return { kind, line: { op: "eq", value: 1 } };
  const criterion = { kind };
  if (CODED.includes(kind) && kind !== "Death" && state.definition.concept_sets.length) {
    criterion.codeset_id = state.definition.concept_sets[0].id;
  }
  return criterion;
}

function changed({ structure = false, now = false } = {}) {
  state.breakdowns = null;
  state.sql = null;
  if (structure) renderEditor();
  renderTools();
  if (now) scheduleRefresh.flush(); // a switch is one discrete change: no typing to wait for
  else scheduleRefresh();
}

function syncEnabled() {
  const rules = state.definition.inclusion_rules;
  while (state.enabled.length < rules.length) state.enabled.push(true);
  state.enabled.length = rules.length;
}

function kindPicker(id, labelText, onPick) {
  const select = h("select", { id },
    h("option", { value: "" }, t("cohorts.pick_kind")),
    h("optgroup", { label: t("cohorts.group.domains") }, CODED.map((kind) => h("option", { value: kind }, kindLabel(kind)))),
    h("optgroup", { label: t("cohorts.group.oncology") }, ONCOLOGY.map((kind) => h("option", { value: kind }, kindLabel(kind)))));
  const add = h("button", { type: "button", id: `${id}-add`, onclick: () => { if (select.value) onPick(select.value); } }, t("cohorts.add"));
  return h("div", { class: "range" }, labelled(labelText, select), add);
}

function rangeEditor(target, key, text) {
  const range = target[key] || null;
  const op = h("select", {
    onchange: (event) => {
      if (!event.target.value) delete target[key];
      else target[key] = { ...(target[key] || { value: 0 }), op: event.target.value };
      changed();
    },
  }, h("option", { value: "" }, t("cohorts.any")), OPS.map((o) => h("option", { value: o, selected: range && range.op === o }, t(`cohorts.op.${o}`))));
  const value = h("input", {
    type: "number", step: "any", value: range && range.value !== undefined && range.value !== null ? String(range.value) : "",
    oninput: (event) => {
      const number = Number(event.target.value);
      if (event.target.value === "" || !Number.isFinite(number)) return;
      target[key] = { op: (target[key] && target[key].op) || "gte", value: number };
      changed();
    },
  });
  return [labelled(text, op), labelled(t("cohorts.value_of", { name: text }), value)];
}

/** A NoteFinding's label, values and qualifiers; a qualifier is "no" (false), "yes" (true) or "either" (null). */
function noteFindingFields(criterion) {
  const label = h("select", { class: "note-label", onchange: (event) => { if (event.target.value) criterion.label = event.target.value; else delete criterion.label; changed(); } },
    h("option", { value: "" }, t("cohorts.any")), NOTE_LABELS.map((l) => h("option", { value: l, selected: criterion.label === l }, t(`cohorts.note_label.${l}`))));
  const value = h("input", {
    type: "text", class: "note-value", value: (criterion.value || []).join(", "), placeholder: "her2:positive, egfr:positive",
    oninput: (event) => {
      const values = event.target.value.split(/[,;]/).map((v) => v.trim()).filter(Boolean);
      if (values.length) criterion.value = values;
      else delete criterion.value;
      changed();
    },
  });
  const qualifiers = QUALIFIERS.map((q) => {
    const current = criterion[q] === undefined ? (q === "history" ? "" : "false") : criterion[q] === null ? "" : String(criterion[q]);
    const select = h("select", { class: `note-qualifier note-${q}`, onchange: (event) => {
      const chosen = event.target.value;
      criterion[q] = chosen === "" ? null : chosen === "true";
      changed();
    } }, [["false", t("cohorts.qualifier.no")], ["true", t("cohorts.qualifier.yes")], ["", t("cohorts.qualifier.either")]].map(([v, text]) =>
      h("option", { value: v, selected: current === v }, text)));
    return labelled(t(`cohorts.qualifier.${q}`), select);
  });
  return [labelled(t("cohorts.note_label"), label), labelled(t("cohorts.note_value"), value), ...qualifiers];
}

/** The editable fields of one criterion (the others, e.g. from an import, are kept as they are). */
function criterionFields(criterion) {
  const fields = [];
  const hasCodeset = CODED.includes(criterion.kind) || ["CancerDiagnosis", "Biomarker", "TreatmentLine", "NoteFinding"].includes(criterion.kind);
  if (hasCodeset) {
    fields.push(labelled(t("cohorts.concept_set"), h("select", {
      onchange: (event) => {
        if (event.target.value === "") delete criterion.codeset_id;
        else criterion.codeset_id = Number(event.target.value);
        changed();
      },
    }, h("option", { value: "" }, t("cohorts.any_concept")),
    state.definition.concept_sets.map((set) => h("option", { value: String(set.id), selected: criterion.codeset_id === set.id }, set.name || `#${set.id}`)))));
  }
  if (criterion.kind === "CancerDiagnosis") {
    fields.push(labelled(t("cohorts.topography"), h("input", {
      type: "text", value: (criterion.topography || []).join(", "), placeholder: "C50, C34.1",
      oninput: (event) => {
        const codes = event.target.value.split(/[\s,]+/).filter(Boolean);
        if (codes.length && !codes.every((code) => /^C[0-9]{2}(\.[0-9])?$/.test(code))) return;
        if (codes.length) criterion.topography = codes;
        else delete criterion.topography;
        changed();
      },
    })));
  }
  if (criterion.kind === "TnmStage") {
    fields.push(labelled(t("cohorts.axis"), h("select", { onchange: (event) => { criterion.axis = event.target.value; changed(); } },
      ["group", "T", "N", "M"].map((axis) => h("option", { value: axis, selected: criterion.axis === axis }, t(`cohorts.axis.${axis}`))))));
    fields.push(...rangeEditor(criterion, "value", t("cohorts.stage_rank")));
  }
  if (criterion.kind === "Biomarker") {
    fields.push(labelled(t("cohorts.status"), h("select", {
      onchange: (event) => { if (event.target.value) criterion.status = event.target.value; else delete criterion.status; changed(); },
    }, [["", t("cohorts.any")], ["positive", t("cohorts.positive")], ["negative", t("cohorts.negative")]].map(([value, text]) =>
      h("option", { value, selected: (criterion.status || "") === value }, text)))));
  }
  if (criterion.kind === "TreatmentLine") {
    fields.push(...rangeEditor(criterion, "line", t("cohorts.line")));
    fields.push(labelled(t("cohorts.modality"), h("select", {
      onchange: (event) => { if (event.target.value) criterion.modality = [event.target.value]; else delete criterion.modality; changed(); },
    }, h("option", { value: "" }, t("cohorts.any")), MODALITIES.map((m) => h("option", { value: m, selected: (criterion.modality || [])[0] === m }, t(`cohorts.modality.${m}`))))));
  }
  if (criterion.kind === "NoteFinding") fields.push(...noteFindingFields(criterion));
  if (criterion.kind === "DiseaseProgression") fields.push(...rangeEditor(criterion, "number", t("cohorts.progression_number")));
  if (criterion.kind !== "Death") fields.push(...rangeEditor(criterion, "age", t("cohorts.age")));
  const first = h("input", { type: "checkbox", checked: Boolean(criterion.first), onchange: (event) => { if (event.target.checked) criterion.first = true; else delete criterion.first; changed(); } });
  if ("first" in criterion || criterion.kind !== "Death") fields.push(labelled(t("cohorts.first"), first));
  return h("div", { class: "range" }, fields);
}

// -- concept sets -------------------------------------------------------------------------------

function nextSetId() {
  return state.definition.concept_sets.reduce((max, set) => Math.max(max, set.id + 1), 0);
}

function addConcept(set, concept) {
  const items = set.expression.items;
  if (items.some((item) => item.concept.concept_id === concept.concept_id)) return;
  const copy = {};
  for (const key of ["concept_id", "concept_name", "concept_code", "domain_id", "vocabulary_id", "concept_class_id", "standard_concept"]) {
    if (concept[key] !== null && concept[key] !== undefined) copy[key] = concept[key];
  }
  items.push({ concept: copy, is_excluded: false, include_descendants: true, include_mapped: false });
  changed({ structure: true });
}

function conceptItem(set, item) {
  const c = item.concept;
  const toggle = (key, text) => labelled(text, h("input", {
    type: "checkbox", checked: Boolean(item[key]),
    onchange: (event) => { item[key] = event.target.checked; changed(); },
  }));
  return h("li", { class: "filter", dataset: { concept: String(c.concept_id) } },
    h("div", { class: "filter-head" },
      h("span", {}, h("strong", {}, c.concept_name || String(c.concept_id)), " ",
        h("span", { class: "muted small" }, `${c.vocabulary_id || ""} ${c.concept_code || ""} · ${c.concept_id}`)),
      h("button", {
        type: "button", class: "link-button", "aria-label": t("cohorts.remove_named", { name: c.concept_name || c.concept_id }),
        onclick: () => { set.expression.items = set.expression.items.filter((other) => other !== item); changed({ structure: true }); },
      }, t("cohorts.remove"))),
    h("div", { class: "choices" }, toggle("include_descendants", t("cohorts.descendants")), toggle("is_excluded", t("cohorts.excluded")),
      toggle("include_mapped", t("cohorts.mapped"))));
}

async function searchConcepts(set, text) {
  state.search = { text, results: [], setId: set.id, detail: null, error: null };
  try {
    const found = await api("GET", `/vocabulary/concepts?q=${encodeURIComponent(text)}&standard=true&limit=20`);
    state.search.results = found.items || [];
  } catch (error) {
    state.search.error = error;
  }
  renderEditor();
  view.editor.querySelector(`[data-search-results="${set.id}"]`)?.focus();
}

async function showHierarchy(set, concept) {
  try {
    const detail = await api("GET", `/vocabulary/concepts/${Number(concept.concept_id)}?limit=15`);
    state.search.detail = detail;
  } catch (error) {
    state.search.error = error;
  }
  renderEditor();
  view.editor.querySelector(`[data-hierarchy="${set.id}"]`)?.focus();
}

function searchBox(set) {
  const input = h("input", { type: "search", value: state.search.setId === set.id ? state.search.text : "", maxLength: 100, dataset: { conceptSearch: String(set.id) } });
  const run = () => { if (input.value.trim()) searchConcepts(set, input.value.trim()); };
  input.addEventListener("keydown", (event) => { if (event.key === "Enter") { event.preventDefault(); run(); } });
  const here = state.search.setId === set.id;
  const results = here ? state.search.results : [];
  const conceptRow = (concept, extra = null) => h("li", {},
    h("span", {}, concept.concept_name, " ", h("span", { class: "muted small" }, `${concept.domain_id || ""} · ${concept.vocabulary_id || ""} ${concept.concept_code || ""}`), extra), " ",
    h("button", { type: "button", class: "link-button", dataset: { addConcept: String(concept.concept_id) }, "aria-label": t("cohorts.add_concept_named", { name: concept.concept_name }), onclick: () => addConcept(set, concept) }, t("cohorts.add")),
    h("button", { type: "button", class: "link-button", "aria-label": t("cohorts.hierarchy_named", { name: concept.concept_name }), onclick: () => showHierarchy(set, concept) }, t("cohorts.hierarchy")));
  const detail = here ? state.search.detail : null;
  return h("div", {},
    h("div", { class: "range" }, labelled(t("cohorts.search"), input), h("button", { type: "button", onclick: run }, t("cohorts.search_go"))),
    here && state.search.error ? errorBox(state.search.error) : null,
    here && state.search.text && !results.length && !state.search.error ? h("p", { class: "muted small" }, t("cohorts.no_concept")) : null,
    results.length ? h("ul", { tabindex: -1, "aria-label": t("cohorts.results"), dataset: { searchResults: String(set.id) } }, results.map((c) => conceptRow(c))) : null,
    detail ? h("div", { tabindex: -1, dataset: { hierarchy: String(set.id) }, class: "card" },
      h("h4", {}, t("cohorts.hierarchy_of", { name: detail.concept.concept_name })),
      h("p", { class: "small" }, t("cohorts.ancestors")),
      h("ul", {}, detail.ancestors.map((c) => conceptRow(c, h("span", { class: "muted small" }, ` (${c.levels ?? c.min_levels_of_separation ?? ""})`)))),
      h("p", { class: "small" }, t("cohorts.descendants_list", { total: detail.totals?.descendants ?? detail.descendants.length })),
      h("ul", {}, detail.descendants.map((c) => conceptRow(c)))) : null);
}

function conceptSetCard(set) {
  return h("li", { class: "filter", dataset: { conceptSet: String(set.id) } },
    h("fieldset", {},
      h("div", { class: "filter-head" },
        h("legend", {}, t("cohorts.concept_set_n", { id: set.id })),
        h("button", {
          type: "button", class: "link-button", "aria-label": t("cohorts.remove_named", { name: set.name || set.id }),
          onclick: () => { state.definition.concept_sets = state.definition.concept_sets.filter((other) => other !== set); changed({ structure: true }); },
        }, t("cohorts.remove"))),
      labelled(t("cohorts.name"), h("input", { type: "text", value: set.name || "", maxLength: 200, oninput: (event) => { set.name = event.target.value; changed(); } })),
      h("ul", { class: "filter-list" }, set.expression.items.map((item) => conceptItem(set, item))),
      searchBox(set)));
}

// -- entry events and rules ---------------------------------------------------------------------

function criterionCard(criterion, onRemove, extra = null) {
  return h("li", { class: "filter", dataset: { kind: criterion.kind } },
    h("fieldset", {},
      h("div", { class: "filter-head" }, h("legend", {}, kindLabel(criterion.kind)),
        h("button", { type: "button", class: "link-button", "aria-label": t("cohorts.remove_named", { name: kindLabel(criterion.kind) }), onclick: onRemove }, t("cohorts.remove"))),
      criterionFields(criterion), extra));
}

function windowFields(correlated) {
  const window = correlated.start_window || (correlated.start_window = { start: { days: 0, coeff: -1 }, end: { days: 0, coeff: 1 } });
  const bound = (which, text) => labelled(text, h("input", {
    type: "number", min: 0, step: 1, value: window[which].days === null || window[which].days === undefined ? "" : String(window[which].days),
    oninput: (event) => {
      const value = event.target.value === "" ? null : Math.trunc(Number(event.target.value));
      if (value !== null && !Number.isFinite(value)) return;
      window[which] = { days: value, coeff: which === "start" ? -1 : 1 };
      changed();
    },
  }));
  const occurrence = correlated.occurrence || (correlated.occurrence = { type: 2, count: 1 });
  return h("div", { class: "range" },
    bound("start", t("cohorts.days_before")), bound("end", t("cohorts.days_after")),
    labelled(t("cohorts.occurrence"), h("select", { onchange: (event) => { occurrence.type = Number(event.target.value); changed(); } },
      [[2, t("cohorts.at_least")], [1, t("cohorts.at_most")], [0, t("cohorts.exactly")]].map(([value, text]) => h("option", { value: String(value), selected: occurrence.type === value }, text)))),
    labelled(t("cohorts.times"), h("input", { type: "number", min: 0, step: 1, value: String(occurrence.count ?? 1), oninput: (event) => { const n = Math.trunc(Number(event.target.value)); if (Number.isFinite(n) && n >= 0) { occurrence.count = n; changed(); } } })));
}

function ruleCard(rule, index) {
  const expression = rule.expression || (rule.expression = { type: "ALL", criteria_list: [] });
  expression.criteria_list = expression.criteria_list || [];
  const enabled = state.enabled[index];
  const switchId = uniqueId("rule-on");
  const others = (expression.demographic_criteria_list || []).length + (expression.groups || []).length;
  return h("li", { class: "filter", dataset: { rule: String(index) } },
    h("fieldset", {},
      h("div", { class: "filter-head" },
        h("legend", {}, t("cohorts.rule_n", { n: index + 1 })),
        h("span", {},
          h("label", { for: switchId }, h("input", {
            id: switchId, type: "checkbox", checked: enabled, dataset: { ruleToggle: String(index) },
            onchange: (event) => { state.enabled[index] = event.target.checked; changed({ now: true }); },
          }), t("cohorts.rule_on")), " ",
          h("button", {
            type: "button", class: "link-button", "aria-label": t("cohorts.remove_named", { name: rule.name || index + 1 }),
            onclick: () => { state.definition.inclusion_rules.splice(index, 1); state.enabled.splice(index, 1); changed({ structure: true }); },
          }, t("cohorts.remove")))),
      labelled(t("cohorts.rule_name"), h("input", { type: "text", value: rule.name || "", maxLength: 200, dataset: { ruleName: String(index) }, oninput: (event) => { rule.name = event.target.value; changed(); } })),
      labelled(t("cohorts.combine"), h("select", { onchange: (event) => { expression.type = event.target.value; if (event.target.value.startsWith("AT_")) expression.count = expression.count ?? 1; changed(); } },
        ["ALL", "ANY", "AT_LEAST", "AT_MOST"].map((type) => h("option", { value: type, selected: expression.type === type }, t(`cohorts.combine.${type}`))))),
      others ? h("p", { class: "muted small" }, t("cohorts.kept_parts", { n: others })) : null,
      h("ul", { class: "filter-list" }, expression.criteria_list.map((correlated, at) => correlated.criteria
        ? criterionCard(correlated.criteria, () => { expression.criteria_list.splice(at, 1); changed({ structure: true }); }, windowFields(correlated))
        : h("li", { class: "muted small" }, t("cohorts.draft")))),
      kindPicker(`rule-kind-${index}`, t("cohorts.add_criterion"), (kind) => {
        expression.criteria_list.push({ criteria: defaultCriterion(kind), start_window: { start: { days: 0, coeff: -1 }, end: { days: 365, coeff: 1 } }, occurrence: { type: 2, count: 1 } });
        changed({ structure: true });
      })));
}

function renderEditor() {
  syncEnabled();
  const d = state.definition;
  const entries = d.primary_criteria.criteria_list;
  replace(view.editor,
    h("section", { class: "card", "aria-labelledby": "sets-title" },
      h("h2", { id: "sets-title" }, t("cohorts.concept_sets")),
      d.concept_sets.length ? null : h("p", { class: "muted" }, t("cohorts.no_sets")),
      h("ul", { class: "filter-list", id: "concept-sets" }, d.concept_sets.map(conceptSetCard)),
      h("button", { type: "button", id: "add-concept-set", onclick: () => { d.concept_sets.push({ id: nextSetId(), name: "", expression: { items: [] } }); changed({ structure: true }); } }, t("cohorts.add_set"))),
    h("section", { class: "card", "aria-labelledby": "entry-title" },
      h("h2", { id: "entry-title" }, t("cohorts.entry")),
      entries.length ? null : h("p", { class: "muted" }, t("cohorts.no_entry")),
      h("ul", { class: "filter-list", id: "entry-list" }, entries.map((criterion, at) => criterionCard(criterion, () => { entries.splice(at, 1); changed({ structure: true }); }))),
      kindPicker("entry-kind", t("cohorts.add_entry"), (kind) => { entries.push(defaultCriterion(kind)); changed({ structure: true }); })),
    h("section", { class: "card", "aria-labelledby": "rules-title" },
      h("h2", { id: "rules-title" }, t("cohorts.rules")),
      d.inclusion_rules.length ? null : h("p", { class: "muted" }, t("cohorts.no_rules")),
      h("ol", { class: "filter-list", id: "rule-list" }, d.inclusion_rules.map(ruleCard)),
      h("button", {
        type: "button", id: "add-rule",
        onclick: () => {
          d.inclusion_rules.push({ name: t("cohorts.new_rule", { n: d.inclusion_rules.length + 1 }), expression: { type: "ALL", criteria_list: [] } });
          state.enabled.push(true);
          changed({ structure: true });
          view.editor.querySelector(`[data-rule-name="${d.inclusion_rules.length - 1}"]`)?.focus();
        },
      }, t("cohorts.add_rule"))));
}

// -- results --------------------------------------------------------------------------------------

function countable() {
  return state.definition.primary_criteria.criteria_list.length > 0;
}

function requestBody(definition, extra = {}) {
  const body = { definition, ...extra };
  if (state.projectId) body.project_id = Number(state.projectId);
  return body;
}

/** The definition with only the rules switched on (the attrition of what the count shows). */
function enabledDefinition() {
  const d = state.definition;
  return { ...d, inclusion_rules: d.inclusion_rules.filter((rule, index) => state.enabled[index]) };
}

function releaseNote(release) {
  if (!release) return null;
  if (release.mode === "exact") return h("span", { class: "badge badge-exact", id: "release-mode" }, t("cohorts.exact"));
  return h("span", { class: "badge badge-noisy", id: "release-mode" }, t("cohorts.noisy", { base: release.rounding_base, threshold: release.threshold, epsilon: release.budget_remaining ?? "" }));
}

function renderCount() {
  if (!view) return;
  if (!countable()) {
    replace(view.countBody, h("p", { class: "muted" }, t("cohorts.needs_entry")));
    return;
  }
  if (state.error) {
    replace(view.countBody, errorBox(state.error));
    return;
  }
  const count = state.count;
  if (!count) return;
  replace(view.countBody,
    h("p", { class: "count", id: "count-value" }, shown(count.persons, count.release)),
    h("p", { class: "muted small" }, t("cohorts.persons"),
      count.events === null || count.events === undefined ? null : ` · ${t("cohorts.events", { n: shown(count.events, count.release) })}`),
    h("p", {}, releaseNote(count.release)),
    state.timing === null ? null : h("p", { class: "muted small", id: "count-timing" }, t("cohorts.timing", { ms: Math.round(state.timing) })));
}

async function renderAttrition() {
  const result = state.attrition;
  if (!result || state.error || !countable()) {
    replace(view.attritionTable);
    view.attritionChart.hidden = true;
    return;
  }
  view.attritionChart.hidden = false;
  const release = result.release;
  const rows = [{ label: t("cohorts.qualified"), value: result.qualified.persons, alone: null }].concat(
    result.rules.map((rule) => ({ label: rule.name || t("cohorts.rule_n", { n: rule.rule_index + 1 }), value: rule.persons_cumulative, alone: rule.persons_alone })));
  const bars = rows.map((row) => ({ label: row.label, value: row.value, shown: shown(row.value, release) }));
  const title = t("cohorts.attrition_title");
  replace(view.attritionTable, h("table", { class: "table", id: "attrition-table" },
    h("caption", { class: "sr-only" }, title),
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, t("cohorts.step")), h("th", { scope: "col", class: "number" }, t("cohorts.cumulative")), h("th", { scope: "col", class: "number" }, t("cohorts.alone")))),
    h("tbody", {}, rows.map((row) => h("tr", {}, h("td", {}, row.label), h("td", { class: "number" }, shown(row.value, release)),
      h("td", { class: "number" }, row.alone === null ? "—" : shown(row.alone, release)))))));
  await barChart(view.attritionChart, { bars, title, axisName: t("cohorts.persons") });
  view.attritionChart.dataset.bars = bars.map((bar) => bar.shown).join("|");
}

function setBusy(busy) {
  view.results.setAttribute("aria-busy", busy ? "true" : "false");
  view.progress.hidden = !busy;
}

const scheduleRefresh = debounce(() => refresh(), DEBOUNCE_MS);

// Answers already released for a definition, project and switches: the API gives the same answer to the same
// question, so switching a rule back shows it at once instead of asking again.
const answers = new Map();
const MAX_ANSWERS = 64;

async function ask(path, body, signal) {
  const key = `${path} ${JSON.stringify(body)}`;
  if (answers.has(key)) return [answers.get(key), true];
  const answer = await api("POST", path, body, { signal });
  if (answers.size >= MAX_ANSWERS) answers.delete(answers.keys().next().value);
  answers.set(key, answer);
  return [answer, false];
}

async function refresh() {
  if (!view) return;
  if (state.controller) state.controller.abort();
  const controller = new AbortController();
  state.controller = controller;
  const sequence = ++state.sequence;
  if (!countable()) {
    state.count = null;
    state.attrition = null;
    state.error = null;
    renderCount();
    await renderAttrition();
    view.results.dataset.sequence = String(sequence);
    return;
  }
  const timer = setTimeout(() => { if (sequence === state.sequence) setBusy(true); }, 150);
  const started = performance.now();
  try {
    const [count, again] = await ask("/cohorts/count", requestBody(state.definition, { enabled: [...state.enabled] }), controller.signal);
    if (sequence !== state.sequence) return;
    state.timing = again ? null : performance.now() - started; // an answer shown again took no request
    state.count = count;
    state.error = null;
    renderCount();
    const [attrition] = await ask("/cohorts/attrition", requestBody(enabledDefinition()), controller.signal);
    if (sequence !== state.sequence) return;
    state.attrition = attrition;
    await renderAttrition();
  } catch (error) {
    if (error.name === "AbortError" || sequence !== state.sequence) return;
    state.error = error;
    state.count = null;
    state.attrition = null;
    renderCount();
    await renderAttrition();
  } finally {
    clearTimeout(timer);
    if (sequence === state.sequence) {
      setBusy(false);
      view.results.dataset.sequence = String(sequence);
    }
  }
}

async function runBreakdowns() {
  replace(view.breakdowns, progress(t("cohorts.generating")));
  try {
    const body = requestBody(enabledDefinition(), { cohort_id: state.cohortId });
    await api("POST", "/cohorts/generate", body);
    state.breakdowns = await api("POST", "/cohorts/breakdowns", body);
  } catch (error) {
    replace(view.breakdowns, errorBox(error));
    return;
  }
  await renderBreakdowns();
}

async function renderBreakdowns() {
  const result = state.breakdowns;
  if (!result) {
    replace(view.breakdowns);
    return;
  }
  const release = result.release;
  const parts = ["sex", "age_band", "site"].filter((key) => result[key]);
  const charts = [];
  replace(view.breakdowns, h("div", { class: "grid", id: "breakdowns" }, parts.map((key) => {
    const chart = h("div", { class: "chart" });
    const cells = Object.entries(result[key]);
    charts.push([chart, cells, key]);
    return h("div", {}, h("h3", {}, t(`cohorts.by.${key}`)), chart,
      h("table", { class: "table" }, h("caption", { class: "sr-only" }, t(`cohorts.by.${key}`)),
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, t(`cohorts.by.${key}`)), h("th", { scope: "col", class: "number" }, t("cohorts.persons")))),
        h("tbody", {}, cells.map(([value, n]) => h("tr", {}, h("td", {}, value), h("td", { class: "number" }, shown(n, release)))))));
  })));
  for (const [chart, cells, key] of charts) {
    await barChart(chart, { bars: cells.map(([value, n]) => ({ label: value, value: n, shown: shown(n, release) })), title: t(`cohorts.by.${key}`), axisName: t("cohorts.persons") });
  }
}

// -- import, export, SQL, save ------------------------------------------------------------------

async function importFile(file) {
  replace(view.toolStatus);
  try {
    const text = await file.text();
    const data = JSON.parse(text);
    const result = await api("POST", "/cohorts/import", { definition: data });
    loadDefinition(result.definition, null);
    replace(view.toolStatus, h("p", { class: "alert alert-ok", role: "status", id: "import-status" }, t("cohorts.imported", { name: file.name })));
  } catch (error) {
    replace(view.toolStatus, errorBox(error.name === "SyntaxError" ? new Error(t("cohorts.not_json")) : error));
  }
}

function loadDefinition(definition, saved) {
  const d = { ...emptyDefinition(), ...definition };
  d.primary_criteria = { criteria_list: [], ...(d.primary_criteria || {}) };
  state.definition = d;
  state.enabled = d.inclusion_rules.map(() => true);
  state.saved = saved;
  changed({ structure: true });
}

function exportJson() {
  const blob = new Blob([JSON.stringify(state.definition, null, 2)], { type: "application/json" });
  const link = h("a", { href: URL.createObjectURL(blob), download: `${(state.definition.title || "cohort").replace(/[^\w.-]+/g, "_")}.json` });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}

async function showSql() {
  try {
    const result = await api("POST", "/cohorts/sql", { definition: state.definition, dialect: view.dialect.value });
    state.sql = result;
  } catch (error) {
    state.sql = { error };
  }
  renderTools();
}

async function save() {
  const projectId = Number(state.projectId);
  if (!projectId) return;
  replace(view.saveStatus);
  try {
    let result;
    if (state.saved && state.saved.project_id === projectId) {
      result = await api("POST", `/projects/${projectId}/cohorts/${state.saved.id}/versions`, { definition: state.definition, note: view.note.value || null });
    } else {
      result = await api("POST", `/projects/${projectId}/cohorts`, { name: state.definition.title || t("cohorts.untitled"), definition: state.definition, note: view.note.value || null });
    }
    state.saved = { ...(state.saved || {}), ...result };
    replace(view.saveStatus, h("p", { class: "alert alert-ok", role: "status", id: "save-status" }, t("cohorts.saved", { version: result.latest_version ?? result.version ?? "" })));
    await loadSaved();
  } catch (error) {
    replace(view.saveStatus, errorBox(error));
  }
}

async function share(shared) {
  try {
    const result = await api("PUT", `/projects/${state.saved.project_id}/cohorts/${state.saved.id}/sharing`, { shared });
    state.saved = { ...state.saved, ...result };
    await loadSaved();
  } catch (error) {
    replace(view.saveStatus, errorBox(error));
  }
}

async function loadSaved() {
  if (!state.projectId) {
    state.savedList = [];
  } else {
    try {
      state.savedList = (await api("GET", `/projects/${Number(state.projectId)}/cohorts?limit=50`)).items || [];
    } catch {
      state.savedList = [];
    }
  }
  renderSaved();
}

async function openSaved(item) {
  try {
    const result = await api("GET", `/projects/${item.project_id}/cohorts/${item.id}`);
    loadDefinition(result.definition, { ...item, ...result });
  } catch (error) {
    replace(view.saveStatus, errorBox(error));
  }
}

function renderSaved() {
  if (!view) return;
  const saved = state.saved;
  replace(view.saved,
    saved ? h("p", { class: "small", id: "saved-current" }, t("cohorts.current_saved", { name: saved.name, version: saved.latest_version ?? "" }), " ",
      h("button", { type: "button", class: "link-button", onclick: () => share(!saved.shared) }, saved.shared ? t("cohorts.unshare") : t("cohorts.share"))) : null,
    state.savedList.length ? h("ul", { id: "saved-list" }, state.savedList.map((item) => h("li", {},
      `${item.name} · v${item.latest_version} · ${item.owner}${item.shared ? ` · ${t("cohorts.shared")}` : ""} `,
      h("button", { type: "button", class: "link-button", "aria-label": t("cohorts.open_named", { name: item.name }), onclick: () => openSaved(item) }, t("cohorts.open"))))) : null);
}

function renderTools() {
  if (!view) return;
  const sql = state.sql;
  replace(view.sqlBox, !sql ? null : sql.error ? errorBox(sql.error) : h("pre", { id: "cohort-sql", tabindex: 0, "aria-label": t("cohorts.sql") }, sql.sql));
  if (view.saveButton) view.saveButton.disabled = !state.projectId;
}

// -- the page -----------------------------------------------------------------------------------

async function load(projectsCall) {
  const projects = await projectsCall;
  state.projects = (projects.items || []).filter((project) => project.status === "approved");
  if (state.projects.length) state.projectId = String(state.projects[0].id);
  state.loaded = true;
}

export async function render(main, ctx) {
  loadECharts().catch(() => null); // fetched and parsed while the API answers (the charts wait for it)
  const projectsCall = state.loaded ? null : api("GET", "/projects?limit=100").catch(() => ({ items: [] }));
  await addCatalogue(CATALOGUE);
  const heading = h("h1", {}, t("cohorts.title"));
  if (!state.loaded) {
    replace(main, heading, progress(t("cohorts.loading")));
    await load(projectsCall);
  }
  const fileInput = h("input", { type: "file", id: "cohort-import", accept: ".json,application/json", onchange: (event) => { const file = event.target.files[0]; if (file) importFile(file); event.target.value = ""; } });
  const dialect = h("select", { id: "sql-dialect" }, ["duckdb", "postgres", "spark"].map((d) => h("option", { value: d }, d)));
  const note = h("input", { type: "text", id: "save-note", maxLength: 500 });
  const saveButton = h("button", { type: "button", class: "primary", id: "save-cohort", onclick: save }, t("cohorts.save"));
  const cohortIdInput = h("input", { type: "number", id: "cohort-id", min: 1, step: 1, value: String(state.cohortId), oninput: (event) => { const n = Math.trunc(Number(event.target.value)); if (n >= 1) state.cohortId = n; } });
  view = {
    editor: h("div", { id: "cohort-editor" }),
    countBody: h("div", { id: "count-body", "aria-live": "polite" }),
    progress: progress(t("cohorts.counting")),
    attritionChart: h("div", { class: "chart", id: "attrition-chart" }),
    attritionTable: h("div", {}),
    breakdowns: h("div", {}),
    toolStatus: h("div", {}),
    sqlBox: h("div", {}),
    saveStatus: h("div", { "aria-live": "polite" }),
    saved: h("div", {}),
    dialect, note, saveButton, results: null,
  };
  view.progress.hidden = true;
  const projectSelect = h("select", {
    id: "cohort-project",
    onchange: (event) => { state.projectId = event.target.value; state.saved = null; loadSaved(); changed(); },
  }, h("option", { value: "" }, t("cohorts.no_project")),
  state.projects.map((project) => h("option", { value: String(project.id), selected: String(project.id) === state.projectId }, `${project.id} · ${project.title}`)));
  view.results = h("div", { id: "results", "aria-busy": "false" },
    h("section", { class: "card count-box", "aria-labelledby": "count-title" }, h("h2", { id: "count-title" }, t("cohorts.count")), view.progress, view.countBody),
    h("section", { class: "card", "aria-labelledby": "attrition-title" }, h("h2", { id: "attrition-title" }, t("cohorts.attrition")),
      h("p", { class: "muted small" }, t("cohorts.attrition_help")), view.attritionChart,
      h("details", {}, h("summary", {}, t("cohorts.as_table")), view.attritionTable)),
    h("section", { class: "card", "aria-labelledby": "breakdowns-title" }, h("h2", { id: "breakdowns-title" }, t("cohorts.breakdowns")),
      h("p", { class: "muted small" }, t("cohorts.breakdowns_help")),
      h("div", { class: "range" }, labelled(t("cohorts.cohort_id"), cohortIdInput),
        h("button", { type: "button", id: "run-breakdowns", onclick: runBreakdowns }, t("cohorts.run_breakdowns"))),
      view.breakdowns),
    h("section", { class: "card", "aria-labelledby": "tools-title" }, h("h2", { id: "tools-title" }, t("cohorts.tools")),
      h("div", { class: "field" }, h("label", { for: "cohort-import" }, t("cohorts.import")), fileInput, h("p", { class: "muted small" }, t("cohorts.import_help"))),
      view.toolStatus,
      h("div", { class: "actions" }, h("button", { type: "button", id: "export-json", onclick: exportJson }, t("cohorts.export"))),
      h("div", { class: "range" }, labelled(t("cohorts.dialect"), dialect), h("button", { type: "button", id: "show-sql", onclick: showSql }, t("cohorts.show_sql"))),
      view.sqlBox),
    h("section", { class: "card", "aria-labelledby": "save-title" }, h("h2", { id: "save-title" }, t("cohorts.save_title")),
      h("div", { class: "range" }, labelled(t("cohorts.note"), note), saveButton), view.saveStatus, view.saved));
  const title = h("input", { type: "text", id: "cohort-title", maxLength: 200, value: state.definition.title || "", oninput: (event) => { state.definition.title = event.target.value; } });
  replace(main, heading, h("p", { class: "lead" }, t("cohorts.lead")),
    h("div", { class: "feasibility" },
      h("div", {},
        h("section", { class: "card" },
          h("div", { class: "field" }, h("label", { for: "cohort-title" }, t("cohorts.cohort_title")), title),
          h("div", { class: "field" }, h("label", { for: "cohort-project" }, t("cohorts.project")), projectSelect,
            h("p", { class: "muted small" }, t("cohorts.project_help")))),
        view.editor),
      view.results));
  renderEditor();
  renderTools();
  renderSaved();
  if (state.count || state.error) {
    renderCount();
    await renderAttrition();
    await renderBreakdowns();
  } else {
    renderCount();
    await refresh();
  }
  loadSaved();
}
