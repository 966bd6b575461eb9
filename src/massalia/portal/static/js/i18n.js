// French and English: message catalogues (the core's /static/i18n/<lang>.json and each page's own), the
// chosen language remembered in localStorage, French by default.

const STORE_KEY = "massalia.lang";
export const LANGUAGES = ["fr", "en"];
// Beside this module, so under the same versioned /static/v/<build hash>/ prefix as the shell's scripts.
const catalogues = [new URL("../i18n", import.meta.url).pathname];
let lang = "fr";
let messages = {};

function stored() {
  try {
    return localStorage.getItem(STORE_KEY);
  } catch {
    return null;
  }
}

/** The current language ("fr" or "en"). */
export function currentLang() {
  return lang;
}

async function fetchCatalogue(base, language) {
  const response = await fetch(`${base}/${language}.json`, { credentials: "same-origin" });
  if (!response.ok) throw new Error(`message catalogue ${base}/${language}.json: HTTP ${response.status}`);
  return response.json();
}

async function loadAll() {
  const loaded = await Promise.all(catalogues.map((base) => fetchCatalogue(base, lang)));
  messages = Object.assign({}, ...loaded);
  document.documentElement.lang = lang;
}

/** Load the remembered language (or the default) and its catalogues. */
export async function initLanguage(defaultLang = "fr") {
  const chosen = stored();
  lang = LANGUAGES.includes(chosen) ? chosen : defaultLang;
  await loadAll();
}

/** Add a page's catalogue folder (holding fr.json and en.json), loaded now and on every switch. */
export async function addCatalogue(base) {
  if (catalogues.includes(base)) return;
  catalogues.push(base);
  Object.assign(messages, await fetchCatalogue(base, lang));
}

/** Switch language, remember it, reload the catalogues. */
export async function setLang(language) {
  if (!LANGUAGES.includes(language)) return;
  lang = language;
  try {
    localStorage.setItem(STORE_KEY, language);
  } catch {
    // private mode: the choice lasts for this page only
  }
  await loadAll();
}

/** The message `key`, with {name} placeholders filled from `vars`; the key itself when missing. */
export function t(key, vars = {}) {
  const text = Object.prototype.hasOwnProperty.call(messages, key) ? messages[key] : key;
  return text.replace(/\{(\w+)\}/g, (whole, name) => (name in vars ? String(vars[name]) : whole));
}

/** Whether the catalogues have `key`. */
export function has(key) {
  return Object.prototype.hasOwnProperty.call(messages, key);
}

/** A {fr, en} label in the current language. */
export function pick(labels) {
  return labels[lang] || labels.fr || labels.en || "";
}

/** A number in the current language's format. */
export function formatNumber(value, options = {}) {
  return new Intl.NumberFormat(lang === "fr" ? "fr-FR" : "en-GB", options).format(value);
}
