// The producers' page: publish a dataset with a file in an organization. The API decides: a producer publishes
// only in an organization they are an editor or admin of (an attempt elsewhere is refused and audited), and the
// file is certified at once (the dataset's page then verifies it).

import { h, replace } from "../../js/dom.js";
import { t } from "../../js/i18n.js";
import { errorBox, progress } from "../../js/ui.js";
import { ckan, ckanPost, datasetHref, field, prepare, uploadResource } from "./odkit.js";

export async function render(main) {
  await prepare();
  replace(main, h("div", { class: "od" }, progress(t("common.loading"))));
  let organizations = [];
  try {
    organizations = await ckan("organization_list", { all_fields: "true" });
  } catch (error) {
    replace(main, h("div", { class: "od" }, h("h1", {}, t("od.publish.title")), errorBox(error)));
    return;
  }
  const org = h("select", { name: "owner_org", required: true },
    organizations.map((o) => h("option", { value: o.name }, o.title || o.name)));
  const name = h("input", { type: "text", name: "name", required: true, pattern: "[a-z0-9_\\-]{2,100}", autocomplete: "off" });
  const title = h("input", { type: "text", name: "title", required: true, maxLength: 200 });
  const notes = h("textarea", { name: "notes", maxLength: 4000 });
  const file = h("input", { type: "file", name: "upload", required: true });
  const out = h("div", { id: "od-publish-result", role: "status", "aria-live": "polite" });
  const submit = h("button", { type: "submit", class: "primary", id: "od-publish-submit" }, t("od.publish.submit"));
  const form = h("form", { id: "od-publish-form" },
    field("od-org", t("od.publish.organization"), org),
    field("od-name", t("od.publish.name"), name),
    field("od-title", t("od.publish.dataset_title"), title),
    field("od-notes", t("od.publish.notes"), notes),
    field("od-file", t("od.publish.file"), file),
    submit);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    submit.disabled = true;
    replace(out, progress(t("od.publish.running")));
    try {
      const dataset = await ckanPost("package_create", { name: name.value.trim(), title: title.value.trim(), notes: notes.value, owner_org: org.value });
      const resource = await uploadResource(dataset.id, file.files[0].name, file.files[0]);
      replace(out, h("p", { class: "verify-ok", dataset: { outcome: "published" } },
        t("od.publish.done", { name: dataset.name }), " ",
        h("a", { href: datasetHref(dataset.name), id: "od-published-link" }, t("od.publish.open")),
        h("span", { class: "mono small" }, ` SHA-256 ${resource.hash.replace("sha256:", "")}`)));
    } catch (error) {
      replace(out, errorBox(error));
    } finally {
      submit.disabled = false;
    }
  });
  replace(main, h("div", { class: "od" },
    h("h1", {}, t("od.publish.title")),
    h("p", { class: "lead" }, t("od.publish.lead")),
    form, out));
}
