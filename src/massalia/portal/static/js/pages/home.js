// Home: who you are and the pages your roles open, as cards.

import { h, replace } from "../dom.js";
import { pick, t } from "../i18n.js";

export async function render(main, ctx) {
  const pages = ctx.config.pages.filter(
    (entry) => entry.nav && entry.path !== "/" && (entry.roles === null || entry.roles.some((role) => ctx.user.roles.includes(role))),
  );
  const roles = ctx.user.roles.map((role) => t(`role.${role}`)).join(", ") || t("account.no_roles");
  replace(
    main,
    h("h1", {}, t("home.title")),
    h("p", { class: "lead" }, t("home.lead", { user: ctx.user.subject, roles })),
    h(
      "ul",
      { class: "cards" },
      pages.map((entry) =>
        h("li", { class: "card" }, h("h2", {}, h("a", { href: entry.path }, pick(entry.label))),
          h("p", { class: "muted" }, t(`page.${entry.name}.summary`))),
      ),
    ),
  );
}
