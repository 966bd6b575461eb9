// The public open-data catalog: full-text search and facets (organization, theme, tag, format, licence) over
// CKAN's package_search, paged by the server. Anonymous visitors may use it: the catalog is public.

import { h, replace } from "../../js/dom.js";
import { formatNumber, t } from "../../js/i18n.js";
import { errorBox, progress } from "../../js/ui.js";
import { ckan, datasetHref, field, prepare } from "./odkit.js";

const FACETS = ["organization", "groups", "tags", "res_format", "license_id"];
const ROWS = 20;
const state = { q: "", filters: {}, start: 0, result: null, error: null, asked: 0 };
let view = null;

function fq() {
  return Object.entries(state.filters).map(([name, value]) => `${name}:"${value.replaceAll('"', "")}"`).join(" ");
}

async function search() {
  view.results.setAttribute("aria-busy", "true");
  const asked = ++state.asked; // an answer to an older search (slower than the newer one) is dropped
  let result = null;
  let failure = null;
  try {
    result = await ckan("package_search", {
      q: state.q, fq: fq(), "facet.field": FACETS, "facet.limit": "8", rows: String(ROWS), start: String(state.start),
    });
  } catch (error) {
    failure = error;
  }
  if (asked !== state.asked) return;
  state.result = result;
  state.error = failure;
  draw();
}

function toggle(name, value) {
  if (state.filters[name] === value) delete state.filters[name];
  else state.filters[name] = value;
  state.start = 0;
  search();
}

function facetList(name) {
  const counts = (state.result.search_facets || {})[name];
  const items = counts ? counts.items : [];
  if (!items.length) return null;
  return h(
    "section",
    { "aria-labelledby": `facet-${name}` },
    h("h2", { id: `facet-${name}` }, t(`od.facet.${name}`)),
    h("ul", {}, items.map((item) =>
      h("li", {}, h("button", {
        type: "button", class: "link-button facet", "aria-pressed": state.filters[name] === item.name ? "true" : "false",
        dataset: { facet: name, value: item.name }, onclick: () => toggle(name, item.name),
      }, `${item.display_name || item.name} (${formatNumber(item.count)})`)))),
  );
}

function resultItem(doc) {
  const formats = [...new Set((doc.resources || []).map((r) => r.format).filter(Boolean))].join(", ");
  return h(
    "li",
    { dataset: { dataset: doc.name } },
    h("h3", {}, h("a", { href: datasetHref(doc.name) }, doc.title || doc.name)),
    h("p", { class: "muted small" }, [doc.organization ? doc.organization.title || doc.organization.name : "", formats].filter(Boolean).join(" · ")),
    doc.notes ? h("p", {}, doc.notes.length > 220 ? doc.notes.slice(0, 220) + "…" : doc.notes) : null,
  );
}

function draw() {
  view.results.setAttribute("aria-busy", "false");
  if (state.error) {
    replace(view.results, errorBox(state.error));
    replace(view.facets);
    return;
  }
  const result = state.result;
  replace(view.facets, FACETS.map(facetList));
  const last = Math.min(state.start + ROWS, result.count);
  replace(
    view.results,
    h("p", { id: "od-count", role: "status" }, t("od.catalog.count", { count: formatNumber(result.count) })),
    h("ul", { class: "plain results", id: "od-results" }, result.results.map(resultItem)),
    h("div", { class: "pager" },
      h("button", { type: "button", id: "od-prev", disabled: state.start === 0, onclick: () => { state.start -= ROWS; search(); } }, t("od.pager.previous")),
      h("span", {}, result.count ? t("od.pager.range", { first: state.start + 1, last }) : ""),
      h("button", { type: "button", id: "od-next", disabled: last >= result.count, onclick: () => { state.start += ROWS; search(); } }, t("od.pager.next"))),
  );
}

export async function render(main, ctx) {
  await prepare();
  const input = h("input", { type: "search", name: "q", value: state.q, autocomplete: "off" });
  const form = h(
    "form",
    { id: "od-search", role: "search", onsubmit: (event) => { event.preventDefault(); state.q = input.value.trim(); state.start = 0; search(); } },
    h("div", { class: "search-row" }, field("od-q", t("od.catalog.search"), input), h("button", { type: "submit", class: "primary", id: "od-submit" }, t("od.catalog.submit"))),
  );
  view = {
    facets: h("aside", { class: "facets", id: "od-facets", "aria-label": t("od.catalog.facets") }),
    results: h("section", { id: "od-results-area", "aria-live": "polite", "aria-label": t("od.catalog.results") }, progress(t("common.loading"))),
  };
  replace(
    main,
    h("div", { class: "od" },
      h("h1", {}, t("od.catalog.title")),
      h("p", { class: "lead" }, t("od.catalog.lead")),
      ctx.signedIn ? h("p", {}, h("a", { href: "/portal/opendata/publish" }, t("od.catalog.publish_link"))) : null,
      form,
      h("div", { class: "layout" }, view.facets, view.results)),
  );
  await search();
}
