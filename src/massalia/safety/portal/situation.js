// The live situation view: open alarms and recent incidents, pushed by the server (server-sent events from
// GET /safety/live/stream) -- no reload, no polling. Acknowledging posts a decision; the new state comes back
// through the stream like any other change. What the stream carries is the API's decision (a partner is
// refused; narratives only for a role that may read them). Text from incidents is shown as text nodes only.

import { api, portalConfig } from "../../js/api.js";
import { h, replace } from "../../js/dom.js";
import { addCatalogue, formatNumber, t } from "../../js/i18n.js";
import { errorBox } from "../../js/ui.js";

const HERE = new URL(".", import.meta.url).pathname;
const STREAM_SECONDS = 300;
let source = null;
let view = null;
let lastError = null;
let narratives = false;

function when(iso) {
  if (!iso) return "—";
  return iso.replace("T", " ").slice(0, 16);
}

async function decide(alarmId, decision) {
  try {
    await api("POST", `/safety/alarms/${alarmId}/decision`, { decision });
    lastError = null;
  } catch (error) {
    lastError = error;
  }
  replace(view.feedback, lastError ? errorBox(lastError) : "");
}

function alarmsTable(alarms) {
  if (!alarms.length) return h("p", { class: "muted", id: "situation-no-alarm" }, t("situation.no_alarm"));
  const head = ["situation.alarm", "situation.severity", "situation.status", "situation.events", "situation.zone",
    "situation.opened", ""].map((key) => h("th", { scope: "col" }, key ? t(key) : h("span", { class: "visually-hidden" }, t("situation.actions"))));
  const rows = alarms.map((a) => h("tr", { dataset: { alarmId: String(a.alarm_id), status: a.status, rule: a.rule_id } },
    h("td", {}, a.title, a.level ? h("span", { class: "badge" }, ` ${t("situation.escalated", { level: a.level })}`) : ""),
    h("td", {}, t(`situation.severity.${a.severity}`)),
    h("td", { class: "alarm-status" }, t(`situation.status.${a.status}`)),
    h("td", { class: "number" }, formatNumber(a.event_count)),
    h("td", {}, a.zone || "—"),
    h("td", {}, when(a.opened_at)),
    h("td", {}, a.status === "open" || a.status === "snoozed"
      ? h("button", { type: "button", id: `ack-${a.alarm_id}`, onclick: () => decide(a.alarm_id, "acknowledge") }, t("situation.acknowledge"))
      : "")));
  return h("table", { id: "situation-alarms-table" }, h("caption", {}, t("situation.alarms")), h("thead", {}, h("tr", {}, head)), h("tbody", {}, rows));
}

function incidentsList(incidents) {
  if (!incidents.length) return h("p", { class: "muted" }, t("situation.no_incident"));
  return h("ul", { class: "incidents" }, incidents.slice(0, 50).map((i) => h("li", { dataset: { incidentId: String(i.incident_id) } },
    `${when(i.occurred_at)} · ${i.zone} · ${i.type_code} · ${i.source || i.first_source}`,
    i.narrative ? h("span", { class: "narrative" }, ` — ${i.narrative}`) : "")));
}

function draw(situation) {
  replace(view.alarms, alarmsTable(situation.alarms));
  replace(view.incidents, incidentsList(situation.incidents));
  view.status.textContent = t("situation.live", { n: formatNumber(situation.alarms.length) });
}

function connect(main) {
  if (source) source.close();
  const url = `${portalConfig().api}/safety/live/stream?max_seconds=${STREAM_SECONDS}${narratives ? "&narratives=true" : ""}`;
  source = new EventSource(url, { withCredentials: true });
  const mine = source;
  source.addEventListener("situation", (event) => {
    if (!main.isConnected) { mine.close(); return; } // the user went to another page
    draw(JSON.parse(event.data));
  });
  source.onerror = () => {
    if (!main.isConnected) { mine.close(); return; }
    if (narratives && mine.readyState === EventSource.CLOSED) {
      // Refused (no right to read narratives): say so, and follow the situation without them.
      narratives = false;
      view.toggle.checked = false;
      replace(view.feedback, h("p", { class: "alert alert-error", role: "alert" }, t("situation.no_narratives")));
      connect(main);
      return;
    }
    view.status.textContent = t("situation.reconnecting");
  };
}

export async function render(main) {
  await addCatalogue(HERE + "situation-i18n"); // its own folder: the other safety pages keep i18n/
  const toggle = h("input", { type: "checkbox", id: "situation-narratives", checked: narratives,
    onchange: () => { narratives = toggle.checked; replace(view.feedback, ""); connect(main); } });
  view = {
    toggle,
    status: h("p", { id: "situation-status", role: "status" }, t("situation.connecting")),
    feedback: h("div", { id: "situation-feedback" }),
    alarms: h("section", { class: "card", id: "situation-alarms", "aria-label": t("situation.alarms") }),
    incidents: h("section", { class: "card", id: "situation-incidents", "aria-label": t("situation.incidents") }),
  };
  replace(main, h("div", { class: "situation" }, h("h1", {}, t("situation.title")), h("p", { class: "lead" }, t("situation.lead")),
    h("p", {}, toggle, " ", h("label", { for: "situation-narratives" }, t("situation.show_narratives"))),
    view.status, view.feedback, h("h2", {}, t("situation.alarms")), view.alarms, h("h2", {}, t("situation.incidents")), view.incidents));
  try {
    await api("GET", "/safety/alarms?status=open&limit=1"); // a clear refusal (403) rather than a silent stream
  } catch (error) {
    replace(view.alarms, errorBox(error));
    view.status.textContent = "";
    return;
  }
  connect(main);
}
