// The inbox: conversations by last activity, filtered through the address's query (so a view can be
// shared), loaded page by page by cursor as the list scrolls.
import { api, el, clear, formatAgo, formatTime, formatCount, conversationHref, showServerInfo, setStatus, whenVisible, nearViewport, visibleText } from "./common.js";

const FILTERS = ["since", "until", "channel", "intent", "action", "slot", "min_events", "confidence_below", "text", "fallback"];
const PAGE_SIZE = 50;

const form = document.getElementById("filters");
const list = document.getElementById("conversations");
const count = document.getElementById("count");
const status = document.getElementById("status");
const more = document.getElementById("more");
const sentinel = document.getElementById("sentinel");

let cursor = null;
let exhausted = false;
let loading = false;
let generation = 0;
let failed = false;

/** datetime-local value <-> unix seconds (the API's unit). */
function toUnix(value) {
  return value ? String(new Date(value).getTime() / 1000) : "";
}
function fromUnix(value) {
  const seconds = Number(value);
  if (!value || !Number.isFinite(seconds)) return "";
  const date = new Date(seconds * 1000);
  const local = new Date(date.getTime() - date.getTimezoneOffset() * 60000);
  return local.toISOString().slice(0, 16);
}

function filtersFromUrl() {
  const params = new URLSearchParams(window.location.search);
  for (const name of FILTERS) {
    const input = form.elements.namedItem(name);
    if (!input) continue;
    const value = params.get(name) || "";
    if (input.type === "checkbox") input.checked = value === "true";
    else if (input.type === "datetime-local") input.value = fromUnix(value);
    else input.value = value;
  }
}

function queryFromForm() {
  const params = new URLSearchParams();
  for (const name of FILTERS) {
    const input = form.elements.namedItem(name);
    if (!input) continue;
    let value = input.type === "checkbox" ? (input.checked ? "true" : "") : input.type === "datetime-local" ? toUnix(input.value) : input.value.trim();
    if (value) params.set(name, value);
  }
  return params;
}

function row(conversation) {
  const meta = el("div", { class: "meta" },
    el("span", { class: "chip plain" }, `${formatCount(conversation.events)} events`),
    conversation.channel ? el("span", { class: "chip plain", title: "channel" }, conversation.channel) : null,
    conversation.intents.slice(0, 6).map((intent) => el("span", { class: "chip", title: "intent" }, intent)),
    conversation.intents.length > 6 ? el("span", { class: "muted" }, `+${conversation.intents.length - 6}`) : null,
    conversation.fallback ? el("span", { class: "chip bad" }, "fallback") : null,
  );
  const last = conversation.last_text ?? "";
  return el("li", {},
    el("a", { class: "row", href: conversationHref(conversation.sender_id) },
      el("span", { class: "sender" }, visibleText(conversation.sender_id)),
      el("span", { class: "when", title: formatTime(conversation.last_activity) }, formatAgo(conversation.last_activity)),
      el("span", { class: "last", dir: "auto" }, last ? visibleText(last.slice(0, 300)) : el("span", { class: "muted" }, "no message text")),
      meta,
    ));
}

async function loadPage() {
  if (loading || exhausted) return;
  loading = true;
  const mine = generation;
  more.disabled = true;
  setStatus(status, "Loading…");
  const params = queryFromForm();
  params.set("limit", String(PAGE_SIZE));
  if (cursor) params.set("cursor", cursor);
  try {
    const page = await api("/api/conversations?" + params.toString());
    if (mine !== generation) return;
    count.textContent = `${formatCount(page.matches)} conversation${page.matches === 1 ? "" : "s"}`;
    for (const conversation of page.conversations) list.append(row(conversation));
    cursor = page.next_cursor;
    exhausted = !cursor;
    const shown = list.children.length;
    setStatus(status, exhausted ? (shown ? `All ${formatCount(shown)} shown.` : "No conversation matches these filters.") : `${formatCount(shown)} shown; scroll for more.`);
    more.hidden = exhausted;
  } catch (error) {
    if (mine === generation) {
      failed = true;
      setStatus(status, error.message, true);
    }
  } finally {
    if (mine === generation) {
      loading = false;
      more.disabled = false;
      // A short page may leave the end of the list in view, where the observer does not fire again.
      requestAnimationFrame(() => {
        if (!exhausted && !failed && nearViewport(sentinel)) loadPage();
      });
    }
  }
}

function restart() {
  generation += 1;
  loading = false;
  cursor = null;
  exhausted = false;
  failed = false;
  clear(list);
  count.textContent = "";
  loadPage();
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const query = queryFromForm().toString();
  history.pushState(null, "", query ? "/?" + query : "/");
  restart();
});
form.addEventListener("reset", () => {
  setTimeout(() => {
    history.pushState(null, "", "/");
    restart();
  });
});
window.addEventListener("popstate", () => {
  filtersFromUrl();
  restart();
});
more.addEventListener("click", () => {
  failed = false;
  loadPage();
});

filtersFromUrl();
showServerInfo();
restart();
whenVisible(sentinel, loadPage);

// Keys, as in a mail reader: "/" to the text filter, j / k to the next / previous conversation, Enter opens it.
document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const typing = event.target instanceof HTMLInputElement || event.target instanceof HTMLSelectElement;
  if (typing) return;
  if (event.key === "/") {
    event.preventDefault();
    form.elements.namedItem("text").focus();
    return;
  }
  if (event.key !== "j" && event.key !== "k") return;
  const rows = [...list.querySelectorAll("a.row")];
  if (!rows.length) return;
  const at = rows.indexOf(document.activeElement);
  const next = event.key === "j" ? Math.min(at + 1, rows.length - 1) : Math.max(at - 1, 0);
  rows[next].focus();
  rows[next].scrollIntoView({ block: "nearest" });
  event.preventDefault();
});
