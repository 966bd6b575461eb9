// Search of the incident log's narratives and attachments (POST /safety/search: the query travels in the body,
// never in a URL). The API decides what comes back: hits with highlighted snippets for the roles that read
// narratives, else a noisy count of matching incidents. Text is shown as text nodes, highlights as <mark>
// spans built from offsets: nothing from a narrative or a document is ever parsed as HTML.

import { api } from "../../js/api.js";
import { h, replace } from "../../js/dom.js";
import { formatNumber } from "../../js/i18n.js";
import { errorBox } from "../../js/ui.js";
import { SOURCES, ZONES, field, prepare, select, t } from "./kit.js";

const PAGE_SIZE = 20;
const SAVERS = ["safety_operator", "safety_analyst", "safety_manager"];
const POLL_MS = 30000;
const state = { form: { query: "", zone: "", family: "", source: "", start: "", end: "" }, page: 1, result: null, error: null, families: [], saver: false };
let view = null;
let poll = null;

function body() {
  const f = state.form;
  const out = { query: f.query, page: state.page, page_size: PAGE_SIZE };
  if (f.zone) out.zones = [f.zone];
  if (f.family) out.families = [f.family];
  if (f.source) out.sources = [f.source];
  if (f.start) out.start = f.start;
  if (f.end) out.end = f.end;
  return out;
}

async function search() {
  view.results.setAttribute("aria-busy", "true");
  try {
    state.result = await api("POST", "/safety/search", body());
    state.error = null;
  } catch (error) {
    state.result = null;
    state.error = error;
  }
  draw();
}

function highlighted(snippet) {
  if (!snippet) return "—";
  const parts = [];
  let at = 0;
  for (const [start, end] of snippet.highlights) {
    if (start > at) parts.push(snippet.fragment.slice(at, start));
    parts.push(h("mark", {}, snippet.fragment.slice(start, end)));
    at = end;
  }
  parts.push(snippet.fragment.slice(at));
  return h("span", { class: "snippet" }, parts);
}

function facets(result) {
  const groups = Object.entries(result.facets || {}).filter(([, counts]) => Object.keys(counts).length);
  if (!groups.length) return "";
  const settable = { zone: "zone", family: "family", source: "source" };
  return h("div", { class: "facets", id: "safety-facets" }, groups.map(([name, counts]) =>
    h("section", { "aria-label": t(`safety.facet.${name}`) }, h("h3", {}, t(`safety.facet.${name}`)),
      h("ul", {}, Object.entries(counts).map(([value, n]) => h("li", {},
        settable[name]
          ? h("button", { type: "button", class: "link-button", dataset: { facet: name, value },
            onclick: () => { state.form[settable[name]] = value; state.page = 1; drawForm(); search(); } }, value)
          : h("span", { dataset: { facet: name, value } }, value),
        ` ${formatNumber(n)}`))))));
}

function hitsTable(result) {
  const head = ["safety.when", "safety.zone", "safety.type", "safety.source", "safety.document", "safety.snippet"];
  const rows = result.hits.map((hit) => {
    const snippets = hit.snippets || {};
    return h("tr", {}, h("td", {}, (hit.occurred_at || "—").replace("T", " ").slice(0, 16)), h("td", {}, hit.zone || "—"),
      h("td", {}, hit.type_code || "—"), h("td", {}, hit.source || "—"), h("td", {}, hit.document_kind || "—"),
      h("td", {}, highlighted(snippets.narrative || snippets.document)));
  });
  return h("div", { class: "table-wrap", role: "region", "aria-label": t("safety.results"), tabIndex: 0 },
    h("table", { class: "table", id: "safety-hits" }, h("caption", { class: "sr-only" }, t("safety.results")),
      h("thead", {}, h("tr", {}, head.map((key) => h("th", { scope: "col" }, t(key))))), h("tbody", {}, rows)));
}

function draw() {
  const results = view.results;
  results.setAttribute("aria-busy", "false");
  if (state.error) return replace(results, errorBox(state.error));
  const result = state.result;
  if (!result) return replace(results, "");
  if (result.mode === "count") {
    const incidents = result.incidents === null ? t("safety.below_threshold") : `~${formatNumber(result.incidents)}`;
    return replace(results, h("p", { id: "safety-total", role: "status" }, t("safety.count_only", { incidents })),
      h("p", { class: "muted" }, t("safety.count_why")));
  }
  const pages = Math.max(1, Math.ceil(result.total / result.page_size));
  replace(results,
    h("p", { id: "safety-total", role: "status" }, t("safety.total", { total: formatNumber(result.total), page: formatNumber(result.page), pages: formatNumber(pages) })),
    facets(result),
    result.hits.length ? hitsTable(result) : h("p", { class: "muted" }, t("safety.none")),
    h("div", { class: "pager" },
      h("button", { type: "button", id: "safety-prev", disabled: result.page <= 1, onclick: () => { state.page -= 1; search(); } }, t("safety.page_previous")),
      h("button", { type: "button", id: "safety-next", disabled: result.page >= pages, onclick: () => { state.page += 1; search(); } }, t("safety.next"))));
}

function drawForm() {
  const f = state.form;
  const controls = {
    query: h("input", { type: "search", name: "query", value: f.query, required: true, maxLength: 500 }),
    zone: select("zone", ZONES, f.zone, t("safety.all")),
    family: select("family", state.families, f.family, t("safety.all")),
    source: select("source", SOURCES, f.source, t("safety.all")),
    start: h("input", { type: "date", name: "start", value: f.start }),
    end: h("input", { type: "date", name: "end", value: f.end }),
  };
  replace(view.form, h("form", { id: "safety-search-form", class: "card", role: "search", "aria-label": t("safety.search"), onsubmit: (e) => {
    e.preventDefault();
    for (const [name, control] of Object.entries(controls)) state.form[name] = control.value.trim();
    state.page = 1;
    search();
  } },
  h("div", { class: "filters" },
    field("safety-q", t("safety.query"), controls.query),
    field("safety-zone", t("safety.zone"), controls.zone),
    field("safety-family", t("safety.family"), controls.family),
    field("safety-source", t("safety.source"), controls.source),
    field("safety-start", t("safety.from"), controls.start),
    field("safety-end", t("safety.to"), controls.end),
    h("button", { type: "submit", class: "primary", id: "safety-submit" }, t("safety.search")))));
}

// Saved searches and their notifications: new matches are found by the server when new reports are indexed,
// run as the owner (GET /safety/notifications); the list shows each search's unread ones as a badge.
async function loadSaved() {
  const part = view.saved;
  if (!document.body.contains(part)) { clearInterval(poll); poll = null; return; }
  part.setAttribute("aria-busy", "true");
  try {
    const [saved, notes] = await Promise.all([api("GET", "/safety/saved-searches"), api("GET", "/safety/notifications?unread=true")]);
    drawSaved(saved.searches, notes);
  } catch (error) {
    replace(part, errorBox(error));
  }
  part.setAttribute("aria-busy", "false");
}

function drawSaved(searches, notes) {
  const unread = {};
  for (const note of notes.notifications) (unread[note.search_id] = unread[note.search_id] || []).push(note);
  const name = h("input", { type: "text", maxLength: 120, required: true });
  const items = searches.map((s) => {
    const mine = unread[s.search_id] || [];
    const matches = mine.reduce((n, note) => n + note.new_matches, 0);
    return h("li", { dataset: { search: String(s.search_id) } },
      h("button", { type: "button", class: "link-button", onclick: () => { state.form = { ...state.form, query: s.query }; state.page = 1; drawForm(); search(); } }, s.name),
      mine.length ? [" ", h("span", { class: "badge", dataset: { unread: String(mine.length) } }, formatNumber(matches), h("span", { class: "sr-only" }, ` ${t("safety.new_matches", { n: formatNumber(matches) })}`)),
        " ", h("button", { type: "button", class: "link-button", dataset: { read: String(s.search_id) }, onclick: () => markRead(mine) }, t("safety.mark_read"))] : "");
  });
  replace(view.saved, h("h2", {}, t("safety.saved_title"), notes.unread ? [" ", h("span", { class: "badge", id: "safety-unread" }, formatNumber(notes.unread))] : ""),
    items.length ? h("ul", { id: "safety-saved" }, items) : h("p", { class: "muted", id: "safety-saved" }, t("safety.no_saved")),
    h("form", { class: "filters", id: "safety-save-form", onsubmit: async (e) => {
      e.preventDefault();
      if (!state.form.query) return;
      const filter = body();
      delete filter.query; delete filter.page; delete filter.page_size;
      try {
        await api("POST", "/safety/saved-searches", { name: name.value.trim(), query: state.form.query, ...filter });
        await loadSaved();
      } catch (error) {
        replace(view.saved, errorBox(error));
      }
    } },
    field("safety-save-name", t("safety.save_name"), name),
    h("button", { type: "submit", id: "safety-save" }, t("safety.save_search"))));
}

async function markRead(notes) {
  try {
    await api("POST", "/safety/notifications/read", { notification_ids: notes.map((n) => n.notification_id) });
    await loadSaved();
  } catch (error) {
    replace(view.saved, errorBox(error));
  }
}

export async function render(main, ctx) {
  await prepare();
  state.saver = ((ctx && ctx.user && ctx.user.roles) || []).some((r) => SAVERS.includes(r));
  try {
    state.families = Object.keys((await api("GET", "/safety/catalogue")).families || {}).sort();
  } catch {
    state.families = [];
  }
  view = { form: h("div", {}), results: h("section", { class: "card", id: "safety-results", "aria-label": t("safety.results"), "aria-busy": "false" }),
    saved: h("section", { class: "card", id: "safety-saved-card", "aria-label": t("safety.saved_title"), "aria-busy": "false" }) };
  replace(main, h("div", { class: "safety" }, h("h1", {}, t("safety.search_title")), h("p", { class: "lead" }, t("safety.search_lead")), view.form,
    state.saver ? view.saved : "", view.results));
  drawForm();
  if (state.result || state.error) draw();
  if (state.saver) {
    await loadSaved();
    if (poll === null) poll = setInterval(loadSaved, POLL_MS);
  }
}
