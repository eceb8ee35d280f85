// The dashboard: the analytics views as charts, and the consumer's live rate refreshed every few seconds.
import { api, el, clear, formatCount, formatPercent, showServerInfo, setStatus } from "./common.js";
import { barChart, columnChart, sparkline } from "./charts.js";

/** How often the consumer's rate is asked for. */
const CONSUMER_REFRESH_MS = 3000;
const RATE_HISTORY = 40;

const content = document.getElementById("content");
const status = document.getElementById("status");
const live = document.getElementById("live");

const RATES = [
  ["containment", "Containment", "sessions the bot handled without a human"],
  ["escalation", "Escalation", "sessions handed to a human"],
  ["abandonment", "Abandonment", "sessions the user left unanswered"],
  ["fallback", "Fallback", "sessions where the bot fell back"],
];

function card(title, body, hint) {
  return el("section", { class: "panel", "aria-label": title }, el("h2", {}, title), body, hint ? el("p", { class: "muted" }, hint) : null);
}

function tile(label, value, hint, fraction) {
  const node = el("div", { class: "tile" }, el("div", { class: "label" }, label), el("div", { class: "value" }, value), hint ? el("div", { class: "hint" }, hint) : null);
  if (typeof fraction === "number") {
    const fill = el("span");
    fill.style.width = `${Math.max(0, Math.min(1, fraction)) * 100}%`;
    node.append(el("div", { class: "bar", "aria-hidden": "true" }, fill));
  }
  return node;
}

function empty(text) {
  return el("p", { class: "muted" }, text);
}

/** Days without sessions are missing from the view: put them back as zeros so time reads evenly. */
function everyDay(days) {
  if (days.length < 2) return days;
  const byDay = new Map(days.map((d) => [d.day, d.sessions]));
  const filled = [];
  const last = Date.parse(days[days.length - 1].day + "T00:00:00Z");
  for (let t = Date.parse(days[0].day + "T00:00:00Z"); t <= last && filled.length < 3660; t += 86400000) {
    const day = new Date(t).toISOString().slice(0, 10);
    filled.push({ day, sessions: byDay.get(day) ?? 0 });
  }
  return filled;
}

function renderMetrics(metrics) {
  clear(content);
  if (!metrics.available) {
    content.append(el("div", { class: "notice", id: "no-analytics" },
      el("strong", {}, "No analytics tables in this database. "),
      "The dashboard reads the analytics tables the consumer keeps with ",
      el("code", {}, "colloquy consume --analytics"), ", or that ",
      el("code", {}, "colloquy analytics rebuild --database-url URL"), " derives from the stored events."));
    return;
  }
  const sessions = metrics.sessions_per_day.reduce((sum, day) => sum + day.sessions, 0);
  const tiles = el("div", { class: "tiles" },
    tile("Sessions", formatCount(sessions), `${metrics.sessions_per_day.length} days`),
    tile("Users", formatCount(metrics.senders), "distinct senders"),
    tile("Bot response", metrics.average_bot_response_seconds === null ? "—" : `${metrics.average_bot_response_seconds.toFixed(2)} s`, "average time to answer"),
    RATES.map(([key, label, hint]) => tile(label, formatPercent(metrics.rates[key]), hint, metrics.rates[key])));
  content.append(tiles);
  const grid = el("div", { class: "grid" });
  grid.append(card("Sessions over time",
    metrics.sessions_per_day.length ? columnChart(everyDay(metrics.sessions_per_day).map((d) => ({ label: d.day.slice(5), value: d.sessions })), { label: "Sessions per day" }) : empty("No sessions yet."),
    "Sessions started per day (UTC)."));
  grid.append(card("Sessions by channel",
    metrics.sessions_per_channel.length ? barChart(metrics.sessions_per_channel.map((c) => ({ label: c.channel || "(none)", value: c.sessions })), { label: "Sessions by channel" }) : empty("No sessions yet.")));
  grid.append(card("Top intents",
    metrics.top_intents.length ? barChart(metrics.top_intents.slice(0, 12).map((i) => ({ label: i.intent, value: i.count })), { label: "Top intents" }) : empty("No user messages yet.")));
  grid.append(card("Turns per session",
    metrics.turns_per_session.length ? columnChart(metrics.turns_per_session.map((t) => ({ label: String(t.turns), value: t.sessions })), { label: "Sessions by number of turns" }) : empty("No sessions yet."),
    "How many sessions had 1, 2, 3… turns (a user message and the bot's answer)."));
  content.append(grid);
}

const rates = [];
async function refreshConsumer() {
  try {
    const consumer = await api("/api/consumer");
    clear(live);
    if (!consumer.available) {
      live.append(el("p", { class: "muted" }, "No consumer metrics: start the server with ", el("code", {}, "--consumer-metrics URL"), " to see the consumer's live rate."));
      return false;
    }
    rates.push(consumer.events_per_second ?? 0);
    if (rates.length > RATE_HISTORY) rates.shift();
    live.append(el("div", { class: "tiles" },
      tile("Events/s now", consumer.events_per_second === null ? "—" : consumer.events_per_second.toFixed(1), "from the consumer's /metrics"),
      tile("Events stored", consumer.events_total === null ? "—" : formatCount(consumer.events_total), "since the consumer started"),
      tile("Role", consumer.role ?? "—", "active or standby")),
      sparkline(rates, { label: "Consumer events per second, last two minutes" }));
    return true;
  } catch (error) {
    clear(live);
    live.append(el("p", { class: "error" }, error.message));
    return true;
  }
}

async function main() {
  showServerInfo();
  try {
    renderMetrics(await api("/api/metrics"));
    setStatus(status, "");
  } catch (error) {
    setStatus(status, error.message, true);
  }
  if (await refreshConsumer()) setInterval(refreshConsumer, CONSUMER_REFRESH_MS);
}
main();
