// Projects and access: the caller's projects (GET /projects), a new project with its purpose and scope
// (variables, sites, period, cohort: POST /projects), its members (add, approve, remove), its access
// requests (POST /projects/{id}/requests) and, once a pseudonymized project is approved, its cohort
// (POST /cohorts/generate) and extracts (POST/GET /projects/{id}/extracts) with their manifests (k, suppressed
// rows) and downloads. Every number is shown as the API returned it.

import { api } from "../../js/api.js";
import { append, h, replace } from "../../js/dom.js";
import { currentLang, formatNumber, t } from "../../js/i18n.js";
import { definitionList, errorBox, progress } from "../../js/ui.js";
import { field, hasRole, prepare, status, table, when } from "./govkit.js";

const API_BASE = JSON.parse(document.getElementById("massalia-portal").textContent).api;
const state = { projects: null, selected: null, variables: null, requests: [], extracts: null, manifests: {}, message: null, ctx: null };
let view = null;

function say(node) {
  state.message = node;
  if (view) replace(view.status, node || "");
}

function ok(text) {
  return h("p", { class: "alert alert-ok" }, text);
}

async function loadProjects() {
  const page = await api("GET", "/projects?limit=500");
  state.projects = page.items;
}

async function loadVariables() {
  if (state.variables !== null) return;
  try {
    const found = await api("GET", "/mart/variables");
    state.variables = Array.isArray(found) ? found : found.variables || [];
  } catch {
    state.variables = []; // no catalogue (mart not built): the scope's variables are typed instead
  }
}

function variableLabel(variable) {
  return currentLang() === "en" ? variable.label_en : variable.label_fr;
}

// ---------------------------------------------------------------- the list

function projectList() {
  const section = h("section", { class: "card", "aria-labelledby": "gov-projects-title" }, h("h2", { id: "gov-projects-title" }, t("projects.list")));
  if (!state.projects.length) {
    section.append(h("p", { class: "muted" }, t("projects.none")));
    return section;
  }
  const rows = state.projects.map((p) => [
    String(p.id), p.title, t(`project.status.${p.status}`), t(`project.level.${p.access_level}`), p.expires, p.owner,
    h("button", { type: "button", id: `project-open-${p.id}`, "aria-label": t("projects.open_named", { title: p.title }), onclick: () => select(p.id) }, t("projects.open")),
  ]);
  const cols = [{ label: "#", number: true }, { label: t("project.title") }, { label: t("project.status") }, { label: t("project.level") }, { label: t("project.expires") }, { label: t("projects.owner") }, { label: t("projects.actions") }];
  const tbl = table("projects-list", t("projects.list"), cols, rows);
  state.projects.forEach((p, i) => { if (p.id === state.selected) tbl.querySelector("tbody").rows[i].classList.add("selected"); });
  section.append(tbl);
  return section;
}

// ---------------------------------------------------------------- creation

function splitList(text) {
  return text.split(/[,;\n]/).map((s) => s.trim()).filter(Boolean);
}

function createForm() {
  const title = h("input", { type: "text", name: "title", required: true, maxLength: 200 });
  const purpose = h("textarea", { name: "purpose", required: true, minLength: 10, maxLength: 5000 });
  const level = h("select", { name: "access_level" }, ["aggregate", "pseudonymized"].map((v) => h("option", { value: v }, t(`project.level.${v}`))));
  const nextYear = new Date(Date.now() + 365 * 864e5).toISOString().slice(0, 10);
  const expires = h("input", { type: "date", name: "expires", required: true, value: nextYear });
  const sites = h("input", { type: "text", name: "sites" });
  const start = h("input", { type: "date", name: "period_start" });
  const end = h("input", { type: "date", name: "period_end" });
  const cohort = h("textarea", { name: "cohort", class: "mono", spellcheck: false });
  let variablesBox;
  let readVariables;
  if (state.variables.length) {
    const boxes = state.variables.filter((v) => v.disclosure !== "identifier").map((v) => {
      const id = `scope-var-${v.name}`;
      const box = h("input", { type: "checkbox", id, value: v.name, name: "variables" });
      return h("label", { for: id }, box, variableLabel(v));
    });
    variablesBox = h("fieldset", { id: "scope-variables" }, h("legend", {}, t("projects.variables")), h("div", { class: "choices" }, boxes));
    readVariables = () => [...variablesBox.querySelectorAll("input:checked")].map((b) => b.value);
  } else {
    const input = h("input", { type: "text", name: "variables" });
    variablesBox = field("scope-variables", t("projects.variables"), input, t("projects.list_help"));
    readVariables = () => splitList(input.value);
  }
  const formStatus = status("project-form-status");
  const submit = h("button", { type: "submit", class: "primary", id: "project-create" }, t("projects.create"));
  const form = h(
    "form",
    { id: "project-form", novalidate: false, onsubmit: async (event) => {
      event.preventDefault();
      let cohortJson = null;
      if (cohort.value.trim()) {
        try {
          cohortJson = JSON.parse(cohort.value);
        } catch {
          replace(formStatus, h("p", { class: "alert alert-error", role: "alert" }, t("projects.cohort_invalid")));
          cohort.focus();
          return;
        }
      }
      const body = {
        title: title.value.trim(), purpose: purpose.value.trim(), access_level: level.value, expires: expires.value,
        scope: { variables: readVariables(), sites: splitList(sites.value), period_start: start.value || null, period_end: end.value || null, cohort: cohortJson },
      };
      submit.disabled = true;
      replace(formStatus, progress(t("projects.creating")));
      try {
        const made = await api("POST", "/projects", body);
        await loadProjects();
        state.selected = made.id;
        state.showForm = false;
        state.message = ok(t("projects.created", { id: made.id }));
        await loadDetail();
        draw();
        document.getElementById("project-detail-title")?.focus();
      } catch (error) {
        submit.disabled = false;
        replace(formStatus, errorBox(error, detailsList(error)));
      }
    } },
    h("div", { class: "form-grid" },
      field("project-title", t("project.title"), title),
      field("project-level", t("project.level"), level),
      field("project-expires", t("project.expires"), expires),
    ),
    field("project-purpose", t("projects.purpose"), purpose, t("projects.purpose_help")),
    variablesBox,
    h("div", { class: "form-grid" },
      field("project-sites", t("projects.sites"), sites, t("projects.list_help")),
      field("project-start", t("projects.period_start"), start),
      field("project-end", t("projects.period_end"), end),
    ),
    field("project-cohort", t("projects.cohort"), cohort, t("projects.cohort_help")),
    h("div", { class: "actions" }, submit, h("button", { type: "button", onclick: () => { state.showForm = false; draw(); } }, t("projects.cancel"))),
    formStatus,
  );
  return h("section", { class: "card", "aria-labelledby": "project-form-title" }, h("h2", { id: "project-form-title" }, t("projects.new")), form);
}

function detailsList(error) {
  if (!error || !error.details || !error.details.length) return null;
  return h("ul", {}, error.details.map((d) => h("li", {}, `${d.loc || d.field || d.path || ""} ${d.msg || d.message || JSON.stringify(d)}`.trim())));
}

// ---------------------------------------------------------------- one project

function current() {
  return (state.projects || []).find((p) => p.id === state.selected) || null;
}

async function loadDetail() {
  const project = current();
  if (!project) return;
  const [requests, extracts] = await Promise.all([
    api("GET", "/requests?limit=500").then((r) => r.items).catch(() => []),
    project.access_level === "pseudonymized" && project.status === "approved"
      ? api("GET", `/projects/${project.id}/extracts?limit=500`).then((r) => r.items).catch((e) => e)
      : Promise.resolve(null),
  ]);
  state.requests = requests.filter((r) => r.project_id === project.id);
  state.extracts = extracts;
}

async function select(id) {
  if (state.selected !== id) state.generated = null;
  state.selected = id;
  state.message = null;
  await loadDetail();
  draw();
  document.getElementById("project-detail-title")?.focus();
}

async function act(button, work, success) {
  button.disabled = true;
  say(progress(t("common.loading")));
  try {
    await work();
    await loadProjects();
    await loadDetail();
    state.message = ok(success);
    draw();
  } catch (error) {
    button.disabled = false;
    say(errorBox(error, detailsList(error)));
  }
}

function scopeFacts(project) {
  const scope = project.scope || {};
  const names = (scope.variables || []).map((name) => {
    const v = (state.variables || []).find((x) => x.name === name);
    return v ? variableLabel(v) : name;
  });
  return [
    [t("projects.variables"), names.join(", ") || t("projects.all")],
    [t("projects.sites"), (scope.sites || []).join(", ") || t("projects.all")],
    [t("projects.period"), scope.period_start || scope.period_end ? `${scope.period_start || "…"} → ${scope.period_end || "…"}` : t("projects.all")],
    [t("projects.cohort"), scope.cohort ? t("projects.cohort_set", { hash: String(scope.cohort_hash || "").slice(0, 12) }) : t("projects.no_cohort")],
  ];
}

function membersSection(project) {
  const me = state.ctx.user.subject;
  const rows = [
    ...project.members.map((m) => [m, t("projects.member_active"), m === project.owner ? t("projects.owner") : ""]),
    ...project.pending_members.map((m) => [m, t("projects.member_pending"), ""]),
  ].map(([name, kind, note]) => {
    const buttons = [];
    if (kind === t("projects.member_pending") && hasRole(state.ctx, "dpo")) {
      buttons.push(h("button", { type: "button", onclick: (e) => act(e.currentTarget, () => api("POST", `/projects/${project.id}/members/${encodeURIComponent(name)}/approval`), t("projects.member_approved", { name })) }, t("projects.approve_member")));
    }
    if (name !== project.owner && (project.owner === me || name === me || hasRole(state.ctx, "dpo", "admin"))) {
      buttons.push(h("button", { type: "button", "aria-label": t("projects.remove_named", { name }), onclick: (e) => act(e.currentTarget, () => api("DELETE", `/projects/${project.id}/members/${encodeURIComponent(name)}`), t("projects.member_removed", { name })) }, t("projects.remove")));
    }
    return [name, [kind, note ? ` (${note})` : ""].join(""), h("div", { class: "row-actions" }, buttons)];
  });
  const user = h("input", { type: "text", name: "username", required: true, autocomplete: "off" });
  const add = h("form", { class: "filters", id: "member-form", onsubmit: (e) => {
    e.preventDefault();
    const name = user.value.trim();
    act(e.submitter || add.querySelector("button"), () => api("POST", `/projects/${project.id}/members`, { username: name }), t("projects.member_added", { name }));
  } }, field("member-username", t("projects.username"), user), h("div", { class: "field" }, h("button", { type: "submit" }, t("projects.add_member"))));
  return h("section", { class: "card", "aria-labelledby": "members-title" },
    h("h3", { id: "members-title" }, t("projects.members")),
    table("members-table", t("projects.members"), [{ label: t("projects.username") }, { label: t("project.status") }, { label: t("projects.actions") }], rows),
    project.owner === me || hasRole(state.ctx, "dpo", "admin") ? add : null);
}

function requestsSection(project) {
  const rows = state.requests.map((r) => [
    String(r.id), when(r.filed_at), r.requested_by, r.justification, h("span", { class: `badge request-${r.status}` }, t(`requests.status.${r.status}`)),
    r.decided_by ? `${r.decided_by}, ${when(r.decided_at)}` : "—", r.reason || r.revoke_reason || "—",
  ]);
  const cols = ["#", t("requests.filed"), t("requests.by"), t("requests.justification"), t("project.status"), t("requests.decided"), t("requests.reason")].map((label, i) => ({ label, number: i === 0 }));
  const section = h("section", { class: "card", "aria-labelledby": "requests-title" }, h("h3", { id: "requests-title" }, t("projects.requests")));
  section.append(rows.length ? table("project-requests", t("projects.requests"), cols, rows) : h("p", { class: "muted" }, t("projects.no_requests")));
  const open = state.requests.some((r) => r.status === "pending" || r.status === "approved");
  if (project.members.includes(state.ctx.user.subject) && !open) {
    const justification = h("textarea", { name: "justification", required: true, maxLength: 5000 });
    section.append(h("form", { id: "request-form", onsubmit: (e) => {
      e.preventDefault();
      act(e.submitter || e.currentTarget.querySelector("button"), () => api("POST", `/projects/${project.id}/requests`, { justification: justification.value.trim() }), t("projects.request_filed"));
    } }, field("request-justification", t("requests.justification"), justification, t("projects.justification_help")),
    h("button", { type: "submit", class: "primary", id: "request-file" }, t("projects.file_request"))));
  }
  return section;
}

function manifestFacts(manifest) {
  const k = manifest.k_anonymity || {};
  return h("div", { class: "manifest" }, definitionList([
    [t("projects.extracts.rows"), h("span", { class: "extract-rows" }, formatNumber(manifest.rows))],
    [t("projects.extracts.k"), h("span", { class: "extract-k" }, `${formatNumber(k.k)} (${t("projects.extracts.k_min")} ${formatNumber(k.k_min)})`)],
    [t("projects.extracts.suppressed"), h("span", { class: "extract-suppressed" }, formatNumber(k.suppressed_records))],
    [t("projects.extracts.classes"), formatNumber(k.classes)],
    [t("projects.extracts.generalizations"), (k.generalizations || []).map((g) => g.column || g.name || JSON.stringify(g)).join(", ") || "—"],
    [t("projects.extracts.columns"), (manifest.columns || []).map((c) => c.name).join(", ")],
    [t("projects.extracts.sha256"), h("code", {}, manifest.sha256 || "—")],
  ]));
}

function extractsSection(project) {
  const section = h("section", { class: "card", id: "extracts", "aria-labelledby": "extracts-title" }, h("h3", { id: "extracts-title" }, t("projects.extracts.title")));
  if (project.access_level !== "pseudonymized" || project.status !== "approved") {
    section.append(h("p", { class: "muted" }, t("projects.extracts.unavailable")));
    return section;
  }
  const cohortId = h("input", { type: "number", min: 1, value: state.cohortId || 1, name: "cohort_id" });
  const generate = h("button", { type: "button", id: "cohort-generate", disabled: !project.scope.cohort }, t("projects.extracts.generate"));
  generate.addEventListener("click", () => act(generate, async () => {
    state.cohortId = Number(cohortId.value);
    const made = await api("POST", "/cohorts/generate", { definition: project.scope.cohort, project_id: project.id, cohort_id: state.cohortId });
    state.generated = made;
  }, t("projects.extracts.generated")));
  const format = h("select", { name: "format" }, ["csv", "parquet"].map((v) => h("option", { value: v }, v.toUpperCase())));
  const kMin = h("input", { type: "number", min: 2, max: 1000, value: 5, name: "k_min" });
  const onLow = h("select", { name: "on_low_k" }, ["generalize", "refuse"].map((v) => h("option", { value: v }, t(`projects.extracts.on_low_k.${v}`))));
  const create = h("button", { type: "button", class: "primary", id: "extract-create" }, t("projects.extracts.create"));
  create.addEventListener("click", () => act(create, async () => {
    state.cohortId = Number(cohortId.value);
    const made = await api("POST", `/projects/${project.id}/extracts`, { cohort_id: state.cohortId, format: format.value, k_min: Number(kMin.value), on_low_k: onLow.value });
    if (made.manifest) state.manifests[made.extract_id] = made.manifest;
  }, t("projects.extracts.created")));
  append(section, [
    h("p", {}, t("projects.extracts.lead")),
    project.scope.cohort ? null : h("p", { class: "alert alert-warn" }, t("projects.extracts.no_cohort")),
    h("div", { class: "filters" }, field("extract-cohort-id", t("projects.extracts.cohort_id"), cohortId), h("div", { class: "field" }, generate)),
    state.generated ? h("p", { id: "cohort-generated" }, t("projects.extracts.generated_persons", { persons: state.generated.persons === null || state.generated.persons === undefined ? "—" : formatNumber(state.generated.persons) })) : null,
    h("div", { class: "filters" }, field("extract-format", t("projects.extracts.format"), format), field("extract-k", t("projects.extracts.k_min"), kMin), field("extract-low", t("projects.extracts.on_low_k"), onLow), h("div", { class: "field" }, create)),
  ]);
  if (state.extracts instanceof Error) {
    section.append(errorBox(state.extracts));
    return section;
  }
  const list = state.extracts || [];
  if (!list.length) {
    section.append(h("p", { class: "muted" }, t("projects.extracts.none")));
    return section;
  }
  const items = h("ul", { id: "extracts-list", class: "extract-list plain" });
  for (const extract of [...list].reverse()) {
    const links = extract.files.map((name) => h("a", {
      class: "button", download: name,
      href: `${API_BASE}/projects/${project.id}/extracts/${encodeURIComponent(extract.extract_id)}/files/${encodeURIComponent(name)}`,
      "aria-label": t("projects.extracts.download_named", { name }),
    }, t("projects.extracts.download", { name })));
    const manifestName = extract.files.find((n) => n.endsWith(".manifest.json"));
    const shown = state.manifests[extract.extract_id];
    const manifestBox = h("div", {});
    if (shown) manifestBox.append(manifestFacts(shown));
    else if (manifestName) {
      manifestBox.append(h("button", { type: "button", class: "manifest-show", onclick: async (e) => {
        e.currentTarget.disabled = true;
        try {
          state.manifests[extract.extract_id] = await api("GET", `/projects/${project.id}/extracts/${encodeURIComponent(extract.extract_id)}/files/${encodeURIComponent(manifestName)}`);
          replace(manifestBox, manifestFacts(state.manifests[extract.extract_id]));
        } catch (error) {
          replace(manifestBox, errorBox(error));
        }
      } }, t("projects.extracts.show_manifest")));
    }
    items.append(h("li", { class: "card", dataset: { extract: extract.extract_id } }, h("h4", {}, extract.extract_id), h("div", { class: "row-actions" }, links), manifestBox));
  }
  section.append(items);
  return section;
}

function detail() {
  const project = current();
  if (!project) return null;
  return h("section", { class: "card", id: "project-detail", "aria-labelledby": "project-detail-title" },
    h("h2", { id: "project-detail-title", tabIndex: -1 }, `${t("projects.project")} ${project.id} — ${project.title}`),
    definitionList([
      [t("project.status"), h("span", { id: "project-status" }, t(`project.status.${project.status}`))],
      [t("project.level"), t(`project.level.${project.access_level}`)],
      [t("project.expires"), project.expires],
      [t("projects.owner"), project.owner],
      [t("projects.created_at"), when(project.created_at)],
      [t("projects.approved_at"), when(project.approved_at)],
      [t("projects.purpose"), project.purpose],
      ...scopeFacts(project),
    ]),
    membersSection(project),
    requestsSection(project),
    extractsSection(project));
}

function draw() {
  if (!view) return;
  const newButton = h("button", { type: "button", id: "project-new", class: "primary", "aria-expanded": state.showForm ? "true" : "false", onclick: () => { state.showForm = !state.showForm; draw(); if (state.showForm) document.getElementById("project-title")?.focus(); } }, t("projects.new"));
  replace(view.body,
    h("div", { class: "actions" }, newButton),
    state.showForm ? createForm() : null,
    projectList(),
    detail());
  replace(view.status, state.message || "");
}

export async function render(main, ctx) {
  await prepare();
  state.ctx = ctx;
  const heading = h("h1", {}, t("projects.title"));
  if (state.projects === null) {
    replace(main, heading, progress(t("common.loading")));
    try {
      await Promise.all([loadProjects(), loadVariables()]);
      if (state.selected) await loadDetail();
    } catch (error) {
      state.projects = null;
      replace(main, heading, errorBox(error));
      return;
    }
  }
  view = { body: h("div", {}), status: status("projects-status") };
  replace(main, h("div", { class: "gov" }, heading, h("p", { class: "lead" }, t("projects.lead")), view.status, view.body));
  draw();
}
