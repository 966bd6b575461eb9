// Access requests, the DPO's review: every request (GET /requests), filtered by status, with its project
// (GET /projects/{id}: purpose, scope, members), approved or rejected with a reason
// (POST /requests/{id}/decision), or an approval revoked (POST /requests/{id}/revocation).

import { api } from "../../js/api.js";
import { h, replace } from "../../js/dom.js";
import { t } from "../../js/i18n.js";
import { definitionList, errorBox, progress } from "../../js/ui.js";
import { field, prepare, status, table, when } from "./govkit.js";

const state = { requests: null, projects: {}, filter: "pending", open: null, message: null };
let view = null;

async function load() {
  const page = await api("GET", "/requests?limit=500");
  state.requests = page.items;
}

async function project(id) {
  if (!state.projects[id]) {
    try {
      state.projects[id] = await api("GET", `/projects/${id}`);
    } catch (error) {
      state.projects[id] = error;
    }
  }
  return state.projects[id];
}

function visible() {
  return state.requests.filter((r) => state.filter === "all" || r.status === state.filter).slice().reverse();
}

function review(request) {
  const p = state.projects[request.project_id];
  const box = h("section", { class: "card", id: "request-review", "aria-labelledby": "review-title" },
    h("h2", { id: "review-title", tabIndex: -1 }, t("requests.review", { id: request.id })));
  if (p instanceof Error) box.append(errorBox(p));
  else if (p) {
    const scope = p.scope || {};
    box.append(definitionList([
      [t("requests.project"), `${p.id} — ${p.title}`],
      [t("projects.purpose"), p.purpose],
      [t("project.level"), t(`project.level.${p.access_level}`)],
      [t("project.expires"), p.expires],
      [t("projects.owner"), p.owner],
      [t("projects.members"), [...p.members, ...p.pending_members.map((m) => `${m} (${t("projects.member_pending")})`)].join(", ")],
      [t("projects.variables"), (scope.variables || []).join(", ") || t("projects.all")],
      [t("projects.sites"), (scope.sites || []).join(", ") || t("projects.all")],
      [t("projects.period"), scope.period_start || scope.period_end ? `${scope.period_start || "…"} → ${scope.period_end || "…"}` : t("projects.all")],
      [t("projects.cohort"), scope.cohort ? t("projects.cohort_set", { hash: String(scope.cohort_hash || "").slice(0, 12) }) : t("projects.no_cohort")],
      [t("requests.by"), request.requested_by],
      [t("requests.justification"), request.justification],
    ]));
  }
  const reason = h("textarea", { name: "reason", required: true, maxLength: 5000 });
  const formStatus = status("decision-status");
  const decide = async (approve, button) => {
    if (!reason.value.trim()) {
      replace(formStatus, h("p", { class: "alert alert-error", role: "alert" }, t("requests.reason_needed")));
      reason.focus();
      return;
    }
    button.disabled = true;
    try {
      const path = request.status === "approved" ? `/requests/${request.id}/revocation` : `/requests/${request.id}/decision`;
      const body = request.status === "approved" ? { reason: reason.value.trim() } : { approve, reason: reason.value.trim() };
      const done = await api("POST", path, body);
      await load();
      delete state.projects[request.project_id];
      state.open = null;
      state.message = h("p", { class: "alert alert-ok" }, t(`requests.done.${done.status}`, { id: done.id }));
      draw();
    } catch (error) {
      button.disabled = false;
      replace(formStatus, errorBox(error));
    }
  };
  if (request.status === "pending" || request.status === "approved") {
    const buttons = request.status === "pending"
      ? [h("button", { type: "button", class: "primary", id: "request-approve", onclick: (e) => decide(true, e.currentTarget) }, t("requests.approve")),
         h("button", { type: "button", id: "request-reject", onclick: (e) => decide(false, e.currentTarget) }, t("requests.reject"))]
      : [h("button", { type: "button", id: "request-revoke", onclick: (e) => decide(false, e.currentTarget) }, t("requests.revoke"))];
    box.append(h("form", { onsubmit: (e) => e.preventDefault() }, field("decision-reason", t("requests.reason"), reason, t("requests.reason_help")), h("div", { class: "actions" }, buttons), formStatus));
  } else {
    box.append(definitionList([[t("requests.decided"), `${request.decided_by || "—"}, ${when(request.decided_at)}`], [t("requests.reason"), request.reason || request.revoke_reason || "—"]]));
  }
  return box;
}

async function open(id) {
  const request = state.requests.find((r) => r.id === id);
  state.open = id;
  state.message = null;
  replace(view.review, progress(t("common.loading")));
  await project(request.project_id);
  draw();
  document.getElementById("review-title")?.focus();
}

function draw() {
  const chooser = h("select", { onchange: (e) => { state.filter = e.target.value; state.open = null; draw(); } },
    ["pending", "approved", "rejected", "revoked", "all"].map((v) => h("option", { value: v, selected: v === state.filter }, t(`requests.filter.${v}`))));
  const rows = visible().map((r) => [
    String(r.id), String(r.project_id), r.requested_by, when(r.filed_at), t(`requests.status.${r.status}`), r.justification,
    h("button", { type: "button", id: `request-open-${r.id}`, "aria-label": t("requests.open_named", { id: r.id }), onclick: () => open(r.id) }, t("requests.open")),
  ]);
  const cols = ["#", t("requests.project"), t("requests.by"), t("requests.filed"), t("project.status"), t("requests.justification"), t("projects.actions")].map((label, i) => ({ label, number: i < 2 }));
  replace(view.list,
    h("div", { class: "filters" }, field("requests-filter", t("requests.show"), chooser)),
    rows.length ? table("requests-table", t("requests.title"), cols, rows) : h("p", { class: "muted", id: "requests-empty" }, t("requests.none")));
  const request = state.requests.find((r) => r.id === state.open);
  replace(view.review, request ? review(request) : "");
  replace(view.status, state.message || "");
}

export async function render(main) {
  await prepare();
  const heading = h("h1", {}, t("requests.title"));
  replace(main, heading, progress(t("common.loading")));
  try {
    await load();
  } catch (error) {
    replace(main, heading, errorBox(error));
    return;
  }
  view = { list: h("section", { class: "card", "aria-label": t("requests.title") }), review: h("div", {}), status: status("requests-status") };
  replace(main, h("div", { class: "gov" }, heading, h("p", { class: "lead" }, t("requests.lead")), view.status, view.list, view.review));
  draw();
}
