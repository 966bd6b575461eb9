// A dataset's page (anonymous allowed): its description, resources with their validity badge (against the schema
// they declare) and a preview of the first rows of their datastore table, each validation report's summary (rows,
// errors by row and field), their certification with a "verify" button (checked in this browser), the version
// history, and how to reach it from a program (curl, ckanapi).

import { portalConfig } from "../../js/api.js";
import { h, replace } from "../../js/dom.js";
import { currentLang, formatNumber, t } from "../../js/i18n.js";
import { definitionList, errorBox, progress } from "../../js/ui.js";
import { ckan, prepare, table } from "./odkit.js";
import { verifyResource } from "./verify.js";

const PREVIEW_ROWS = 5;
const REPORT_ERRORS = 20; // errors listed per report on the page; the full report is one API call away

// The badge's state as the server computes it (schemas.badge_state), for the image's text alternative.
function badgeState(resource) {
  if (!resource.schema_id) return ["no-schema", 0];
  if (resource.validation_status === "success") return ["valid", 0];
  if (resource.validation_status === "failure") return ["invalid", Number(resource.validation_errors || 0)];
  return ["not-validated", 0];
}

function badge(resource) {
  const [state, errors] = badgeState(resource);
  const src = `${portalConfig().api}/opendata/resource/${encodeURIComponent(resource.id)}/badge.svg?lang=${currentLang()}`;
  return h("img", { class: "badge", src, height: "20", dataset: { badge: state },
    alt: t("od.validity.alt", { state: t(`od.validity.${state}`, { count: formatNumber(errors) }) }) });
}

async function validation(resource) {
  if (!resource.schema_id) return null;
  try {
    const shown = await ckan("resource_validation_show", { resource_id: resource.id });
    const report = shown.report;
    const name = resource.name || resource.id;
    const head = h("h3", {}, t("od.validity.report", { name }));
    if (!report) return h("div", { class: "validation", id: `od-validation-${resource.id}` }, head, h("p", {}, t("od.validity.no_report", { schema: shown.schema })));
    const errors = report.errors.slice(0, REPORT_ERRORS);
    return h("div", { class: "validation", id: `od-validation-${resource.id}`, dataset: { status: report.status } },
      head,
      h("p", { class: "validation-summary" }, t(`od.validity.summary_${report.status}`, {
        schema: report.schema, rows: formatNumber(report.rows), errors: formatNumber(report.error_count) })),
      report.complete ? null : h("p", { class: "muted" }, t("od.validity.incomplete")),
      errors.length
        ? table(`od-errors-${resource.id}`, t("od.validity.errors_caption", { name }),
          [{ label: t("od.col.row"), number: true }, { label: t("od.col.field") }, { label: t("od.col.error") }, { label: t("od.col.message") }],
          errors.map((e) => [e.row === null || e.row === undefined ? t("od.validity.header") : String(e.row), e.field || "—", e.type, e.message || ""]))
        : null,
      report.error_count > errors.length ? h("p", { class: "muted" }, t("od.validity.more", { shown: formatNumber(errors.length), total: formatNumber(report.error_count) })) : null);
  } catch (error) {
    return errorBox(error);
  }
}

function when(value) {
  return value ? String(value).replace("T", " ").replace(/(\d\d:\d\d):\d\d(\.\d+)?$/, "$1") + " UTC" : "—";
}

async function preview(resource) {
  if (!resource.datastore_active) return null;
  try {
    const found = await ckan("datastore_search", { resource_id: resource.id, limit: String(PREVIEW_ROWS) });
    const fields = found.fields.filter((f) => f.id !== "_id");
    return h("div", { class: "preview" },
      h("h3", {}, t("od.dataset.preview", { name: resource.name || resource.id, total: formatNumber(found.total) })),
      table(`od-preview-${resource.id}`, t("od.dataset.preview_caption", { name: resource.name || resource.id }),
        fields.map((f) => ({ label: f.id, number: ["int", "numeric", "float"].includes(f.type) })),
        found.records.map((record) => fields.map((f) => (record[f.id] === null || record[f.id] === undefined ? "" : String(record[f.id]))))));
  } catch (error) {
    return errorBox(error);
  }
}

function verifyCell(resource) {
  if (resource.url_type !== "upload" || !resource.hash) return h("span", { class: "muted" }, t("od.verify.link"));
  const out = h("div", { class: "verify-result", role: "status", "aria-live": "polite", id: `od-verify-${resource.id}` });
  const button = h("button", { type: "button", class: "verify", dataset: { resource: resource.id } }, t("od.verify.button"));
  button.addEventListener("click", async () => {
    button.disabled = true;
    replace(out, progress(t("od.verify.running")));
    try {
      const steps = await verifyResource(resource.id, resource.url);
      const failed = steps.find((s) => s.ok === false);
      const skipped = steps.find((s) => s.ok === null);
      replace(out,
        h("p", { class: failed ? "verify-failed" : "verify-ok", dataset: { outcome: failed ? "failed" : "verified" } },
          failed ? t("od.verify.failed", { step: t(`od.step.${failed.step}`) }) : t(skipped ? "od.verify.ok_unsigned" : "od.verify.ok")),
        h("ul", { class: "plain small" }, steps.map((s) =>
          h("li", { dataset: { step: s.step } }, `${s.ok === true ? "✓" : s.ok === false ? "✗" : "–"} ${t(`od.step.${s.step}`)} `, h("span", { class: "mono muted" }, s.detail)))));
    } catch (error) {
      replace(out, errorBox(error));
    } finally {
      button.disabled = false;
    }
  });
  return h("div", {}, h("span", { class: "mono small" }, `SHA-256 ${resource.hash.replace("sha256:", "").slice(0, 12)}…`), " ", button, out);
}

function examples(doc, site) {
  const api = `${site}${portalConfig().api}/opendata`;
  const resource = (doc.resources || []).find((r) => r.datastore_active) || (doc.resources || [])[0];
  const lines = [
    `curl '${api}/api/3/action/package_show?id=${doc.name}'`,
    `ckanapi action package_show id=${doc.name} -r ${api}`,
  ];
  if (resource && resource.datastore_active) lines.push(`curl '${api}/api/3/action/datastore_search?resource_id=${resource.id}&limit=10'`);
  if (resource && resource.url_type === "upload") {
    lines.push(`curl -o data '${resource.url}'`);
    lines.push(`curl -o data.proof.json '${api}/certification/proof/${resource.id}'`);
    lines.push(`curl -o key.pem '${api}/certification/public-key'`);
    lines.push("massalia verify data --proof data.proof.json --key key.pem");
  }
  return h("section", { "aria-labelledby": "od-api" }, h("h2", { id: "od-api" }, t("od.dataset.api")),
    h("pre", { class: "example", id: "od-examples", tabIndex: 0 }, h("code", {}, lines.join("\n"))));
}

export async function render(main, ctx) {
  await prepare();
  const name = new URLSearchParams(window.location.search).get("name") || "";
  replace(main, h("div", { class: "od" }, progress(t("common.loading"))));
  let doc;
  let versions;
  try {
    [doc, versions] = await Promise.all([ckan("package_show", { id: name }), ckan("package_versions", { id: name })]);
  } catch (error) {
    replace(main, h("div", { class: "od" }, h("h1", {}, t("od.dataset.title")), errorBox(error),
      h("p", {}, h("a", { href: "/portal/opendata/catalog" }, t("od.dataset.back")))));
    return;
  }
  document.title = `${doc.title || doc.name} · Massalia`;
  const resources = doc.resources || [];
  const [previews, reports] = await Promise.all([Promise.all(resources.map(preview)), Promise.all(resources.map(validation))]);
  replace(
    main,
    h("div", { class: "od" },
      h("p", {}, h("a", { href: "/portal/opendata/catalog" }, t("od.dataset.back"))),
      h("h1", { id: "od-title" }, doc.title || doc.name),
      doc.notes ? h("p", { class: "lead" }, doc.notes) : null,
      definitionList([
        [t("od.dataset.organization"), doc.organization ? doc.organization.title || doc.organization.name : "—"],
        [t("od.dataset.license"), doc.license_title || doc.license_id || "—"],
        [t("od.dataset.frequency"), doc.frequency || "—"],
        [t("od.dataset.version"), String(doc.massalia_version)],
        [t("od.dataset.modified"), when(doc.metadata_modified)],
      ]),
      (doc.tags || []).length ? h("p", {}, doc.tags.map((tag) => h("span", { class: "tag" }, tag.display_name || tag.name))) : null,
      h("section", { "aria-labelledby": "od-resources" },
        h("h2", { id: "od-resources" }, t("od.dataset.resources")),
        table("od-resource-table", t("od.dataset.resources"),
          [{ label: t("od.col.name") }, { label: t("od.col.format") }, { label: t("od.col.size"), number: true }, { label: t("od.col.validity") }, { label: t("od.col.certification") }],
          resources.map((r) => [
            h("a", { href: r.url, rel: r.url_type === "upload" ? null : "noopener noreferrer nofollow" }, r.name || r.url),
            r.format || "—",
            r.size ? formatNumber(r.size) : "—",
            badge(r),
            verifyCell(r),
          ])),
        reports.some(Boolean) ? h("section", { "aria-labelledby": "od-validity" },
          h("h2", { id: "od-validity" }, t("od.validity.title")), reports.filter(Boolean)) : null,
        previews.filter(Boolean)),
      h("section", { "aria-labelledby": "od-history" },
        h("h2", { id: "od-history" }, t("od.dataset.history")),
        table("od-versions", t("od.dataset.history"),
          [{ label: t("od.col.version"), number: true }, { label: t("od.col.published") }, { label: t("od.col.operation") }, { label: t("od.col.sha") }],
          versions.slice().reverse().map((v) => [String(v.version), when(v.published_at), v.operation, h("span", { class: "mono" }, v.sha256.slice(0, 16) + "…")]))),
      examples(doc, window.location.origin)),
  );
}
