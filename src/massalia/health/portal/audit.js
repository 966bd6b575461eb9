// The audit trail for DPOs and admins: entries filtered by user, action (or area, "health.*"), decision and
// dates, sorted and paged by the server (GET /audit/entries), and the log's verification
// (GET /audit/verify: every stored hash and signed tree head recomputed).

import { api } from "../../js/api.js";
import { h, replace } from "../../js/dom.js";
import { formatNumber, t } from "../../js/i18n.js";
import { errorBox, progress } from "../../js/ui.js";
import { field, prepare, status, table, when } from "./govkit.js";

const SHOWN_KEYS = new Set(["time", "actor", "action", "decision", "roles", "auth"]);
const state = { filters: { actor: "", action: "", decision: "", since: "", until: "", sort: "index", order: "desc", limit: "50" }, cursors: [null], page: null, error: null, verify: null, timing: null };
let view = null;

function query() {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(state.filters)) if (value) params.set(key, value);
  const cursor = state.cursors[state.cursors.length - 1];
  if (cursor) params.set("cursor", cursor);
  return params.toString();
}

async function load() {
  view.results.setAttribute("aria-busy", "true");
  const started = performance.now();
  try {
    state.page = await api("GET", `/audit/entries?${query()}`);
    state.error = null;
  } catch (error) {
    state.page = null;
    state.error = error;
  }
  state.timing = performance.now() - started;
  drawResults();
}

function details(entry) {
  const rest = Object.entries(entry).filter(([key]) => !SHOWN_KEYS.has(key));
  if (!rest.length) return "—";
  return h("ul", { class: "plain small" }, rest.map(([key, value]) => {
    const text = typeof value === "object" ? JSON.stringify(value) : String(value);
    if (text.length <= 120) return h("li", {}, h("span", { class: "muted" }, `${key}: `), text);
    return h("li", {}, h("details", {}, h("summary", {}, `${key}: ${text.slice(0, 80)}…`), h("code", {}, text)));
  }));
}

function drawResults() {
  const results = view.results;
  results.setAttribute("aria-busy", "false");
  if (state.error) {
    replace(results, errorBox(state.error));
    return;
  }
  const page = state.page;
  const position = state.cursors.length;
  const rows = page.items.map(({ index, entry }) => [
    String(index), when(entry.time), entry.actor || "—", entry.action || "—",
    h("span", { class: `badge ${entry.decision === "denied" ? "badge-suppressed" : "badge-exact"}` }, entry.decision ? t(`audit.decision.${entry.decision}`) : "—"),
    details(entry),
  ]);
  const cols = [{ label: t("audit.index"), number: true }, { label: t("audit.time") }, { label: t("audit.actor") }, { label: t("audit.action") }, { label: t("audit.decision") }, { label: t("audit.details") }];
  const previous = h("button", { type: "button", id: "audit-prev", disabled: position <= 1, onclick: () => { state.cursors.pop(); load(); } }, t("audit.previous"));
  const next = h("button", { type: "button", id: "audit-next", disabled: !page.next, onclick: () => { state.cursors.push(page.next); load(); } }, t("audit.next"));
  replace(results,
    h("p", { id: "audit-total", role: "status" }, t("audit.total", { total: formatNumber(page.total), page: formatNumber(position) })),
    rows.length ? table("audit-table", t("audit.title"), cols, rows) : h("p", { class: "muted" }, t("audit.none")),
    h("div", { class: "pager" }, previous, next));
  results.dataset.loaded = String(Number(results.dataset.loaded || 0) + 1);
}

function filterForm() {
  const f = state.filters;
  const input = (name, type = "text") => h("input", { type, name, value: f[name] });
  const select = (name, values, prefix) => h("select", { name }, values.map((v) => h("option", { value: v, selected: f[name] === v }, t(`${prefix}.${v || "any"}`))));
  const controls = {
    actor: input("actor"), action: input("action"), decision: select("decision", ["", "allowed", "denied"], "audit.decision"),
    since: input("since", "date"), until: input("until", "date"),
    sort: select("sort", ["index", "actor", "action"], "audit.sort"), order: select("order", ["desc", "asc"], "audit.order"),
    limit: select("limit", ["25", "50", "100", "500"], "audit.limit"),
  };
  return h("form", { id: "audit-filters", class: "card", "aria-label": t("audit.filters"), onsubmit: (e) => {
    e.preventDefault();
    for (const [name, control] of Object.entries(controls)) state.filters[name] = control.value.trim();
    state.cursors = [null];
    load();
  } },
  h("div", { class: "filters" },
    field("audit-actor", t("audit.actor"), controls.actor),
    field("audit-action", t("audit.action"), controls.action, t("audit.action_help")),
    field("audit-decision", t("audit.decision"), controls.decision),
    field("audit-since", t("audit.since"), controls.since),
    field("audit-until", t("audit.until"), controls.until),
    field("audit-sort", t("audit.sort"), controls.sort),
    field("audit-order", t("audit.order"), controls.order),
    field("audit-limit", t("audit.limit"), controls.limit),
  ),
  h("div", { class: "actions" }, h("button", { type: "submit", class: "primary", id: "audit-apply" }, t("audit.apply")),
    h("button", { type: "button", id: "audit-reset", onclick: () => { state.filters = { actor: "", action: "", decision: "", since: "", until: "", sort: "index", order: "desc", limit: "50" }; state.cursors = [null]; drawAll(); load(); } }, t("audit.reset"))));
}

function verifyBox() {
  const out = status("audit-verify-result");
  const button = h("button", { type: "button", id: "audit-verify", onclick: async () => {
    button.disabled = true;
    replace(out, progress(t("audit.verifying")));
    try {
      state.verify = await api("GET", "/audit/verify");
    } catch (error) {
      state.verify = error;
    }
    button.disabled = false;
    showVerify(out);
  } }, t("audit.verify"));
  if (state.verify) showVerify(out);
  return h("section", { class: "card", "aria-labelledby": "verify-title" }, h("h2", { id: "verify-title" }, t("audit.verify_title")), h("p", {}, t("audit.verify_lead")), button, out);
}

function showVerify(out) {
  const result = state.verify;
  if (result instanceof Error) replace(out, errorBox(result));
  else replace(out, h("div", { class: `alert ${result.ok ? "alert-ok" : "alert-error"}`, dataset: { ok: String(result.ok) } },
    h("p", { class: "verify-ok" }, result.ok ? t("audit.verify_ok", { size: formatNumber(result.size) }) : t("audit.verify_bad", { size: formatNumber(result.size) })),
    h("p", { class: "small mono" }, result.summary)));
}

function drawAll() {
  replace(view.root, h("h1", {}, t("audit.title")), h("p", { class: "lead" }, t("audit.lead")), verifyBox(), filterForm(), view.results);
}

export async function render(main) {
  await prepare();
  view = { root: h("div", { class: "gov" }), results: h("section", { class: "card", id: "audit-results", "aria-busy": "true", "aria-label": t("audit.entries") }, progress(t("common.loading"))) };
  replace(main, view.root);
  drawAll();
  if (state.page || state.error) drawResults();
  else await load();
}
