// Shared helpers of Colloquy's pages: the API client (token handling), DOM building, and showing text a
// person wrote — always as text (textContent / text nodes), never as HTML.

const TOKEN_KEY = "colloquy_token";

/** Keeps `?token=` from the address in sessionStorage and removes it from the address bar. */
function adoptTokenFromUrl() {
  const url = new URL(window.location.href);
  const token = url.searchParams.get("token");
  if (token) {
    sessionStorage.setItem(TOKEN_KEY, token);
    url.searchParams.delete("token");
    history.replaceState(history.state, "", url.pathname + url.search + url.hash);
  }
}
adoptTokenFromUrl();

/** The token this tab knows, or null. */
export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

/** Remembers a token typed by the person (for writes). */
export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
}

/** An error from the API, with its HTTP status. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** Calls the JSON API; throws ApiError with the server's one-line message. */
export async function api(path, options = {}) {
  const headers = { Accept: "application/json" };
  const known = token();
  if (known) headers.Authorization = "Bearer " + known;
  const response = await fetch(path, { method: options.method || "GET", headers, credentials: "same-origin" });
  let body = null;
  try {
    body = await response.json();
  } catch (_) {
    body = null;
  }
  if (!response.ok) {
    const message = body && (body.error || body.message) ? body.error || body.message : response.statusText;
    throw new ApiError(response.status, `${response.status}: ${message}`);
  }
  return body;
}

/** Builds an element: el("a", {href: "/", class: "x"}, "text", child...). Strings become text nodes. */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Removes every child of `node`. */
export function clear(node) {
  while (node.firstChild) node.firstChild.remove();
}

// Characters shown as a visible marker instead of acting on the text around them: C0/C1 controls (ANSI
// escapes start with ESC) except tab and line feed, and the bidirectional embeddings, overrides and isolates
// (U+202A–U+202E, U+2066–U+2069) that can reorder what follows. Plain direction marks (U+200E, U+200F,
// U+061C) stay: real right-to-left text uses them, and each text sits in its own isolated box.
const UNSAFE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;

function codePoint(char) {
  return "U+" + char.codePointAt(0).toString(16).toUpperCase().padStart(4, "0");
}

/** A fragment that shows `text` exactly as characters, with control and bidi-override characters marked. */
export function visibleText(text) {
  const fragment = document.createDocumentFragment();
  let last = 0;
  for (const match of text.matchAll(UNSAFE)) {
    if (match.index > last) fragment.append(document.createTextNode(text.slice(last, match.index)));
    const marker = el("span", { class: "ctl", title: codePoint(match[0]) }, match[0] === "\u001b" ? "ESC" : codePoint(match[0]));
    fragment.append(marker);
    last = match.index + match[0].length;
  }
  if (last < text.length) fragment.append(document.createTextNode(text.slice(last)));
  return fragment;
}

/** How many characters a clipped text shows before "Show all". */
export const CLIP_CHARS = 600;

/** `text` as a node that shows its first CLIP_CHARS characters and a button for the rest. */
export function clippedText(text, limit = CLIP_CHARS) {
  const box = el("span", { class: "text" });
  if (text.length <= limit) {
    box.append(visibleText(text));
    return box;
  }
  const shown = el("span", {}, visibleText(text.slice(0, limit) + "…"));
  const button = el("button", { type: "button", class: "expander", "aria-expanded": "false" },
    `Show all ${formatCount(text.length)} characters (${formatBytes(new Blob([text]).size)})`);
  button.addEventListener("click", () => {
    const expanded = button.getAttribute("aria-expanded") === "true";
    clear(shown);
    shown.append(visibleText(expanded ? text.slice(0, limit) + "…" : text));
    button.setAttribute("aria-expanded", expanded ? "false" : "true");
    button.textContent = expanded ? `Show all ${formatCount(text.length)} characters` : "Show less";
  });
  box.append(shown, button);
  return box;
}

/** A number with thousands separators. */
export function formatCount(n) {
  return Number(n).toLocaleString("en-US");
}

/** A byte count as B, kB or MB. */
export function formatBytes(n) {
  if (n < 1000) return `${n} B`;
  if (n < 1000000) return `${(n / 1000).toFixed(1)} kB`;
  return `${(n / 1000000).toFixed(1)} MB`;
}

/** A unix timestamp (seconds) as a readable local date and time. */
export function formatTime(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const date = new Date(seconds * 1000);
  return date.toLocaleString(undefined, { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

/** A unix timestamp as "3 min ago", "2 days ago". */
export function formatAgo(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const delta = Date.now() / 1000 - seconds;
  const units = [[86400 * 365, "year"], [86400 * 30, "month"], [86400, "day"], [3600, "hour"], [60, "min"]];
  for (const [size, name] of units) {
    if (Math.abs(delta) >= size) {
      const n = Math.floor(Math.abs(delta) / size);
      return delta >= 0 ? `${n} ${name}${n > 1 && name !== "min" ? "s" : ""} ago` : `in ${n} ${name}`;
    }
  }
  return "just now";
}

/** A fraction 0..1 as a percentage, or "—". */
export function formatPercent(value) {
  return value === null || value === undefined ? "—" : `${(value * 100).toFixed(1)} %`;
}

/** The link to a conversation's page. */
export function conversationHref(senderId) {
  return "/conversations/" + encodeURIComponent(senderId);
}

/** Shows the server's facts (version, auth) in the header. */
export async function showServerInfo() {
  const slot = document.getElementById("server-info");
  try {
    const info = await api("/api/server");
    if (slot) slot.textContent = `v${info.version} · ${info.dialect}${info.auth ? "" : " · unauthenticated, loopback only"}`;
    return info;
  } catch (error) {
    if (slot) slot.textContent = error.message;
    return null;
  }
}

/** Sets the status line under `id`; `error` marks it as an error. */
export function setStatus(node, message, error = false) {
  node.textContent = message;
  node.classList.toggle("error", error);
}

/** Calls `load` when `sentinel` scrolls into view (and keeps doing so while it stays visible). */
export function whenVisible(sentinel, load) {
  const observer = new IntersectionObserver((entries) => {
    if (entries.some((entry) => entry.isIntersecting)) load();
  }, { rootMargin: "600px 0px" });
  observer.observe(sentinel);
  return observer;
}

/** Whether `node` is within 600 px of the visible part of the page (then more should load). */
export function nearViewport(node) {
  const box = node.getBoundingClientRect();
  return box.top < window.innerHeight + 600 && box.bottom > -600;
}
