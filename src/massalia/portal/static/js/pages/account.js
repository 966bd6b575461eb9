// The account page: identity and roles (whoami), projects (GET /projects), privacy budget (GET /me/privacy-budget).

import { api } from "../api.js";
import { h, replace } from "../dom.js";
import { formatNumber, t } from "../i18n.js";
import { definitionList, errorBox, progress } from "../ui.js";

function identity(user) {
  return h(
    "section",
    { class: "card", "aria-labelledby": "identity-title" },
    h("h2", { id: "identity-title" }, t("account.identity")),
    definitionList([
      [t("account.user"), user.subject],
      [t("account.roles"), h("span", { id: "account-roles" }, user.roles.map((role) => t(`role.${role}`)).join(", ") || t("account.no_roles"))],
      [t("account.site"), user.site || t("account.no_site")],
      [t("account.auth"), t(`auth.${user.auth}`)],
    ]),
  );
}

function projectsSection(result) {
  const section = h("section", { class: "card", "aria-labelledby": "projects-title" }, h("h2", { id: "projects-title" }, t("account.projects")));
  if (result instanceof Error) {
    section.append(errorBox(result));
    return section;
  }
  if (!result.items.length) {
    section.append(h("p", { class: "muted" }, t("account.no_projects")));
    return section;
  }
  const rows = result.items.map((project) =>
    h("tr", {}, h("td", {}, String(project.id)), h("td", {}, project.title), h("td", {}, t(`project.status.${project.status}`)),
      h("td", {}, t(`project.level.${project.access_level}`)), h("td", {}, project.expires)),
  );
  section.append(
    h("table", { class: "table", id: "projects-table" },
      h("caption", { class: "sr-only" }, t("account.projects")),
      h("thead", {}, h("tr", {}, ["#", t("project.title"), t("project.status"), t("project.level"), t("project.expires")].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, rows)),
  );
  if (result.next) section.append(h("p", { class: "muted small" }, t("account.more_projects")));
  return section;
}

function budgetSection(budget) {
  const section = h("section", { class: "card", "aria-labelledby": "budget-title" }, h("h2", { id: "budget-title" }, t("account.budget")));
  if (budget instanceof Error) {
    section.append(errorBox(budget));
    return section;
  }
  const digits = { maximumFractionDigits: 2 };
  section.append(
    h("p", {}, t("account.budget_lead", { days: budget.period_days })),
    h("meter", { id: "budget-meter", min: 0, max: budget.total, value: budget.remaining, "aria-label": t("account.budget_remaining") }),
    definitionList([
      [t("account.budget_remaining"), h("span", { id: "budget-remaining" }, formatNumber(budget.remaining, digits))],
      [t("account.budget_spent"), formatNumber(budget.spent, digits)],
      [t("account.budget_total"), formatNumber(budget.total, digits)],
      [t("account.budget_releases"), formatNumber(budget.releases)],
      [t("account.budget_per_count"), formatNumber(budget.epsilon_per_count, digits)],
    ]),
  );
  if (budget.locked_out) section.append(h("p", { class: "alert alert-error", role: "alert" }, t("account.budget_locked")));
  return section;
}

export async function render(main, ctx) {
  replace(main, h("h1", {}, t("account.title")), progress(t("common.loading")));
  const settle = (promise) => promise.catch((error) => (error instanceof Error ? error : new Error(String(error))));
  const [projects, budget] = await Promise.all([
    settle(api("GET", "/projects?limit=100")),
    settle(api("GET", "/me/privacy-budget")),
  ]);
  replace(main, h("h1", {}, t("account.title")), h("div", { class: "grid" }, identity(ctx.user), budgetSection(budget)), projectsSection(projects));
}
