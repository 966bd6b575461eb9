// Home: who you are and the pages your roles open, as cards.

import { h, replace } from "../dom.js";
import { addCatalogue, has, pick, t } from "../i18n.js";

export async function render(main, ctx) {
  const pages = ctx.config.pages.filter(
    (entry) => entry.nav && entry.path !== "/" && (entry.roles === null || entry.roles.some((role) => ctx.user.roles.includes(role))),
  );
  // Each card's summary is in its domain's messages (the i18n folder beside the page's module), not the core's.
  const domains = new Set(pages.filter((entry) => entry.module.startsWith(`${ctx.config.static}domains/`))
    .map((entry) => new URL("./i18n", new URL(entry.module, window.location.origin)).pathname));
  await Promise.all([...domains].map((base) => addCatalogue(base)));
  const summary = (entry) => (has(`page.${entry.name}.summary`) ? t(`page.${entry.name}.summary`) : "");
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
          h("p", { class: "muted" }, summary(entry))),
      ),
    ),
  );
}
