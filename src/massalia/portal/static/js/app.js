// The portal shell: who is signed in, the banner (navigation, language, sign-out), then the page's module.
// Pages are ES modules exporting render(main, ctx); they reach data only through ./api.js.

import { api, portalConfig } from "./api.js";
import { clear, h, replace } from "./dom.js";
import { currentLang, initLanguage, LANGUAGES, pick, setLang, t } from "./i18n.js";
import { errorBox } from "./ui.js";

const config = portalConfig();
const NEXT_KEY = "massalia.next";
const main = document.getElementById("main");
const banner = document.getElementById("banner");
const footer = document.getElementById("footer");
const page = config.pages.find((entry) => entry.name === config.page) || null;
let user = { subject: "anonymous", roles: [] };
let module = null;

function signedIn() {
  return user.subject !== "anonymous";
}

function visible(entry) {
  if (!entry.nav || !signedIn()) return false;
  return entry.roles === null || entry.roles.some((role) => user.roles.includes(role));
}

function navigate(path) {
  window.location.assign(path);
}

async function signOut() {
  try {
    await api("POST", "/auth/logout");
  } finally {
    navigate("/portal/signin");
  }
}

function languageSwitch() {
  const other = LANGUAGES.find((language) => language !== currentLang());
  return h(
    "button",
    { type: "button", class: "link-button", lang: other, id: "language-switch", onclick: () => switchLanguage(other) },
    t(`lang.switch.${other}`),
  );
}

function renderBanner() {
  const items = config.pages.filter(visible).map((entry) =>
    h(
      "li",
      {},
      h("a", { href: entry.path, "aria-current": entry === page ? "page" : null, dataset: { page: entry.name } }, pick(entry.label)),
    ),
  );
  const nav = items.length ? h("nav", { "aria-label": t("nav.label") }, h("ul", { class: "nav" }, items)) : null;
  const who = signedIn()
    ? h(
        "div",
        { class: "who" },
        h("span", { class: "user", id: "current-user" }, user.subject),
        h("button", { type: "button", class: "link-button", id: "sign-out", onclick: signOut }, t("nav.signout")),
      )
    : null;
  replace(
    banner,
    h("a", { class: "brand", href: "/" }, "Massalia"),
    nav,
    h("div", { class: "tools" }, languageSwitch(), who),
  );
  replace(footer, h("p", { class: "muted small" }, t("footer.text", { version: config.version })));
}

async function renderPage() {
  if (!page) {
    document.title = `${t("notfound.title")} · Massalia`;
    replace(main, h("h1", {}, t("notfound.title")), h("p", {}, t("notfound.text")), h("p", {}, h("a", { href: "/" }, t("notfound.home"))));
    return;
  }
  document.title = `${pick(page.label)} · Massalia`;
  const ctx = { user, config, page, navigate, signedIn: signedIn() };
  try {
    if (!module) module = await import(page.module);
    await module.render(main, ctx);
  } catch (error) {
    replace(main, h("h1", {}, pick(page.label)), errorBox(error));
    throw error;
  }
}

async function switchLanguage(language) {
  await setLang(language);
  renderBanner();
  await renderPage();
  document.getElementById("language-switch").focus();
}

async function start() {
  await initLanguage(config.default_lang);
  try {
    user = await api("GET", "/auth/whoami");
  } catch (error) {
    renderBanner();
    replace(main, errorBox(error));
    return;
  }
  if (page && !page.public && !signedIn()) {
    try {
      sessionStorage.setItem(NEXT_KEY, window.location.pathname);
    } catch {
      // no session storage: land on the home page after signing in
    }
    navigate("/portal/signin");
    return;
  }
  renderBanner();
  clear(main);
  await renderPage();
}

start();
