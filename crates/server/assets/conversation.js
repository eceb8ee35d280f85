// A conversation as a transcript: user and bot bubbles, the actions between them, slots, forms, sessions
// and the events that rewrite history (restart, rewind, undo) marked. Events load page by page by row id
// as the transcript scrolls, so a conversation of thousands of events opens at once.
import { api, el, clear, clippedText, formatCount, formatTime, showServerInfo, setStatus, whenVisible, nearViewport, visibleText } from "./common.js";

const PAGE_SIZE = 500;
/** Below this intent confidence a user message is marked. */
const LOW_CONFIDENCE = 0.5;

const prefix = "/conversations/";
const senderId = decodeURIComponent(window.location.pathname.slice(prefix.length).replace(/\/+$/, ""));

const title = document.getElementById("title");
const facts = document.getElementById("facts");
const transcript = document.getElementById("transcript");
const status = document.getElementById("status");
const more = document.getElementById("more");
const sentinel = document.getElementById("sentinel");
const deadLetters = document.getElementById("dead-letters");
const rawAll = document.getElementById("raw-all");

let after = null;
let exhausted = false;
let loading = false;
let failed = false;
let shown = 0;
let total = 0;
let lastDay = null;
let showAllRaw = false;

title.append("Conversation ", el("span", { class: "mono", dir: "auto" }, visibleText(senderId)));
document.title = `${senderId.slice(0, 60)} · Colloquy`;

function confidence(value) {
  return typeof value === "number" ? value.toFixed(2) : null;
}

function name(value) {
  return el("span", { class: "name" }, visibleText(String(value)));
}

/** The button that shows an event's stored JSON; the <pre> is only built when asked for. */
function rawToggle(container, stored) {
  const button = el("button", { type: "button", class: "link raw-toggle", "aria-expanded": "false", title: "Show the event's JSON" }, "{ }");
  let pre = null;
  const toggle = (open) => {
    if (open && !pre) {
      pre = el("pre", { class: "raw" }, visibleText(JSON.stringify(stored.event, null, 2)));
      container.append(pre);
    }
    if (pre) pre.hidden = !open;
    button.setAttribute("aria-expanded", open ? "true" : "false");
  };
  button.addEventListener("click", () => toggle(button.getAttribute("aria-expanded") !== "true"));
  button.toggle = toggle;
  return button;
}

function line(kind, stored, ...parts) {
  const what = el("div", { class: "what" }, ...parts);
  const node = el("div", { class: `ev line ${kind}`, "data-id": stored.id, "data-type": stored.type }, what);
  what.append(rawToggle(node, stored));
  return node;
}

function timeLabel(stored) {
  return stored.timestamp ? el("time", { title: formatTime(stored.timestamp) }, new Date(stored.timestamp * 1000).toLocaleTimeString()) : null;
}

function userEvent(stored) {
  const event = stored.event;
  const parse = event.parse_data || {};
  const intent = parse.intent || {};
  const text = typeof event.text === "string" ? event.text : "";
  const bubble = el("div", { class: "bubble", dir: "auto" }, text ? clippedText(text) : el("span", { class: "empty" }, "(no text)"));
  const score = confidence(intent.confidence);
  const low = typeof intent.confidence === "number" && intent.confidence < LOW_CONFIDENCE;
  const entities = Array.isArray(parse.entities) ? parse.entities : Array.isArray(event.entities) ? event.entities : [];
  const info = el("div", { class: "info" },
    intent.name ? el("span", { class: "chip", title: "intent" }, visibleText(String(intent.name))) : el("span", {}, "no intent"),
    score ? el("span", { class: low ? "low" : "", title: "intent confidence" }, score) : null,
    entities.slice(0, 8).map((entity) => el("span", { class: "chip plain", title: "entity" }, visibleText(`${entity.entity}=${typeof entity.value === "string" ? entity.value : JSON.stringify(entity.value)}`))),
    event.input_channel ? el("span", { title: "channel" }, visibleText(String(event.input_channel))) : null,
    timeLabel(stored));
  const node = el("div", { class: "ev user" + (low ? " low-confidence" : ""), "data-id": stored.id, "data-type": "user" }, bubble, info);
  info.append(rawToggle(node, stored));
  return node;
}

function botEvent(stored) {
  const event = stored.event;
  const text = typeof event.text === "string" ? event.text : "";
  const data = event.data || {};
  const bubble = el("div", { class: "bubble", dir: "auto" }, text ? clippedText(text) : el("span", { class: "empty" }, data.image ? "(image)" : data.custom ? "(custom payload)" : "(no text)"));
  if (Array.isArray(data.buttons) && data.buttons.length) {
    bubble.append(el("div", { class: "buttons" }, data.buttons.slice(0, 12).map((button) => el("span", { class: "chip", title: String(button.payload ?? "") }, visibleText(String(button.title ?? ""))))));
  }
  const utter = event.metadata && event.metadata.utter_action;
  const info = el("div", { class: "info" }, utter ? el("span", { class: "mono" }, visibleText(String(utter))) : null, timeLabel(stored));
  const node = el("div", { class: "ev bot", "data-id": stored.id, "data-type": "bot" }, bubble, info);
  info.append(rawToggle(node, stored));
  return node;
}

function actionEvent(stored) {
  const event = stored.event;
  const score = confidence(event.confidence);
  const isListen = event.name === "action_listen";
  const isFallback = event.name === "action_default_fallback" || event.name === "action_two_stage_fallback";
  return line(isListen ? "action listen" : "action", stored,
    el("span", {}, isFallback ? "⚠ action" : "action"), name(event.name ?? "?"),
    event.policy ? el("span", { title: "policy" }, visibleText(String(event.policy))) : null,
    score ? el("span", { title: "confidence" }, score) : null);
}

function slotValue(value) {
  const text = typeof value === "string" ? JSON.stringify(value) : JSON.stringify(value ?? null);
  return el("span", { class: "value", title: text.slice(0, 2000) }, visibleText(text.slice(0, 300)));
}

function render(stored) {
  const event = stored.event || {};
  switch (stored.type) {
    case "user":
      return userEvent(stored);
    case "bot":
      return botEvent(stored);
    case "action":
      return actionEvent(stored);
    case "session_started":
      return line("session", stored, "Session started", timeLabel(stored));
    case "slot":
      return line("slot", stored, "slot", name(event.name ?? "?"), "=", slotValue(event.value));
    case "active_loop":
    case "form":
      return event.name
        ? line("loop", stored, stored.type === "form" ? "Form (legacy) started" : "Form started", name(event.name))
        : line("loop", stored, "Form ended");
    case "loop_interrupted":
      return line("loop", stored, event.is_interrupted ? "Form interrupted" : "Form resumed");
    case "form_validation":
      return line("loop", stored, event.validate ? "Form validation on" : "Form validation off");
    case "restart":
      return line("marker", stored, "⟲ Conversation restarted", timeLabel(stored));
    case "rewind":
      return line("marker", stored, "↶ Rewound: the last user message is undone");
    case "undo":
      return line("marker", stored, "↶ Undo: the last action is undone");
    case "reset_slots":
      return line("marker", stored, "All slots reset");
    case "action_execution_rejected":
      return line("action", stored, "action rejected", name(event.name ?? "?"));
    case "followup":
      return line("action", stored, "follow-up", name(event.name ?? "?"));
    case "reminder":
      return line("action", stored, "reminder", name(event.name ?? event.intent ?? "?"), event.date_time ? visibleText(String(event.date_time)) : null);
    case "cancel_reminder":
      return line("action", stored, "reminder cancelled", event.name ? name(event.name) : null);
    case "pause":
      return line("marker", stored, "Conversation paused (handed to a human)");
    case "resume":
      return line("marker", stored, "Conversation resumed");
    case "agent": {
      const node = botEvent(stored);
      node.classList.add("agent");
      return node;
    }
    default:
      return line("other", stored, el("span", { class: "name" }, visibleText(String(stored.type))));
  }
}

function dayDivider(stored) {
  if (!stored.timestamp) return null;
  const day = new Date(stored.timestamp * 1000).toDateString();
  if (day === lastDay) return null;
  lastDay = day;
  return el("div", { class: "ev line day" }, el("div", { class: "what" }, new Date(stored.timestamp * 1000).toLocaleDateString(undefined, { weekday: "long", year: "numeric", month: "long", day: "numeric" })));
}

function updateFacts(first) {
  if (!facts.dataset.since && first && first.timestamp) facts.dataset.since = formatTime(first.timestamp);
  facts.textContent = `${formatCount(shown)} of ${formatCount(total)} events shown` + (facts.dataset.since ? ` · first event ${facts.dataset.since}` : "");
}

async function loadPage() {
  if (loading || exhausted) return;
  loading = true;
  more.disabled = true;
  setStatus(status, "Loading events…");
  const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (after !== null) params.set("after", String(after));
  try {
    const page = await api(`/api/conversations/${encodeURIComponent(senderId)}/events?${params}`);
    total = page.total;
    const fragment = document.createDocumentFragment();
    for (const stored of page.events) {
      const divider = dayDivider(stored);
      if (divider) fragment.append(divider);
      const node = render(stored);
      if (showAllRaw) node.querySelectorAll(".raw-toggle").forEach((button) => button.toggle(true));
      fragment.append(node);
    }
    transcript.append(fragment);
    shown += page.events.length;
    updateFacts(page.events[0]);
    after = page.next_after;
    exhausted = after === null || after === undefined;
    more.hidden = exhausted;
    setStatus(status, exhausted ? "End of the conversation." : "Scroll for more events.");
  } catch (error) {
    failed = true;
    setStatus(status, error.status === 404 ? "This conversation has no events." : error.message, true);
  } finally {
    loading = false;
    more.disabled = false;
    requestAnimationFrame(() => {
      if (!exhausted && !failed && nearViewport(sentinel)) loadPage();
    });
  }
}

async function loadDeadLetters() {
  try {
    const answer = await api(`/api/conversations/${encodeURIComponent(senderId)}/dead-letters`);
    const letters = answer.dead_letters || [];
    if (!letters.length) return;
    clear(deadLetters);
    deadLetters.append(el("div", { class: "notice" },
      `${letters.length} dead letter${letters.length === 1 ? " names" : "s name"} this conversation: `,
      letters.map((letter, index) => [index ? ", " : "", el("a", { href: `/dead-letters?id=${letter.id}`, class: "dead-letter-link" }, `#${letter.id}`)]),
      "."));
  } catch (_) {
    // The transcript does not depend on it; the dead letters page shows the error.
  }
}

rawAll.addEventListener("click", () => {
  showAllRaw = !showAllRaw;
  rawAll.setAttribute("aria-pressed", showAllRaw ? "true" : "false");
  rawAll.textContent = showAllRaw ? "Hide raw JSON" : "Show raw JSON";
  transcript.querySelectorAll(".raw-toggle").forEach((button) => button.toggle(showAllRaw));
});
more.addEventListener("click", () => {
  failed = false;
  loadPage();
});

showServerInfo();
loadDeadLetters();
loadPage();
whenVisible(sentinel, loadPage);
