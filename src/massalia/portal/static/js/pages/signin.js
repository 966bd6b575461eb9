// Sign-in: a local account (POST /auth/login opens a cookie session), or OpenID Connect when configured.

import { api } from "../api.js";
import { h, replace, uniqueId } from "../dom.js";
import { t } from "../i18n.js";
import { errorBox } from "../ui.js";

const NEXT_KEY = "massalia.next";

function nextPath() {
  let next = null;
  try {
    next = sessionStorage.getItem(NEXT_KEY);
    sessionStorage.removeItem(NEXT_KEY);
  } catch {
    next = null;
  }
  // Only a path of this site: never "//host" or a full address.
  return next && next.startsWith("/") && !next.startsWith("//") && next !== "/portal/signin" ? next : "/";
}

export async function render(main, ctx) {
  if (ctx.signedIn) {
    replace(
      main,
      h("h1", {}, t("signin.title")),
      h("p", {}, t("signin.already", { user: ctx.user.subject })),
      h("p", {}, h("a", { href: "/" }, t("notfound.home"))),
    );
    return;
  }
  const userId = uniqueId("username");
  const passId = uniqueId("password");
  const status = h("div", { class: "form-status", "aria-live": "polite" });
  const submit = h("button", { type: "submit", class: "primary", id: "signin-submit" }, t("signin.submit"));
  const form = h(
    "form",
    { class: "card signin", id: "signin-form", novalidate: true },
    h("div", { class: "field" }, h("label", { for: userId }, t("signin.username")),
      h("input", { id: userId, name: "username", type: "text", autocomplete: "username", required: true, autocapitalize: "none", spellcheck: false })),
    h("div", { class: "field" }, h("label", { for: passId }, t("signin.password")),
      h("input", { id: passId, name: "password", type: "password", autocomplete: "current-password", required: true })),
    status,
    h("div", { class: "actions" }, submit),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const username = form.elements.username.value.trim();
    const password = form.elements.password.value;
    if (!username || !password) {
      replace(status, h("p", { class: "alert alert-error", role: "alert" }, t("signin.missing")));
      return;
    }
    submit.disabled = true;
    replace(status, h("p", { role: "status" }, t("signin.progress")));
    try {
      await api("POST", "/auth/login", { username, password });
      ctx.navigate(nextPath());
    } catch (error) {
      submit.disabled = false;
      replace(status, errorBox(error));
      form.elements.password.select();
    }
  });
  const oidc = ctx.config.oidc
    ? h("div", { class: "oidc" }, h("p", {}, t("signin.or")),
        h("a", { class: "button", href: `${ctx.config.api}/auth/oidc/login`, id: "signin-oidc" }, t("signin.oidc")))
    : null;
  replace(main, h("h1", {}, t("signin.title")), h("p", { class: "lead" }, t("signin.lead")), form, oidc);
  form.elements.username.focus();
}
