// Dead letters: why each message was refused, its raw body shown as text, and requeue with a confirmation
// step. Requeue is a write: it needs the server's token, sent as a Bearer header, never a cookie.
import { api, el, clear, clippedText, conversationHref, formatBytes, formatCount, setToken, showServerInfo, setStatus, token, visibleText } from "./common.js";

const PAGE_SIZE = 50;

const list = document.getElementById("letters");
const status = document.getElementById("status");
const more = document.getElementById("more");
const writesNote = document.getElementById("writes");
const highlight = new URLSearchParams(window.location.search).get("id");

let after = null;
let serverInfo = null;

function tokenBox(onSaved) {
  const input = el("input", { type: "password", autocomplete: "off", "aria-label": "Auth token", placeholder: "auth token" });
  const save = el("button", { type: "button" }, "Use token");
  save.addEventListener("click", () => {
    setToken(input.value.trim());
    onSaved();
  });
  return el("div", { class: "token-box" }, el("span", {}, "Requeue needs the server's token:"), input, save);
}

async function showBody(letter, holder, button) {
  if (holder.dataset.loaded) {
    holder.hidden = !holder.hidden;
    button.textContent = holder.hidden ? "Show raw body" : "Hide raw body";
    return;
  }
  button.disabled = true;
  try {
    const full = await api(`/api/dead-letters/${letter.id}`);
    holder.append(el("pre", { class: "raw body" }, clippedText(full.body, 4000)),
      el("details", {}, el("summary", {}, "Message properties"), el("pre", { class: "raw" }, visibleText(JSON.stringify(full.properties, null, 2)))));
    holder.dataset.loaded = "yes";
    holder.hidden = false;
    button.textContent = "Hide raw body";
  } catch (error) {
    holder.append(el("p", { class: "error" }, error.message));
    holder.hidden = false;
  } finally {
    button.disabled = false;
  }
}

function askRequeue(letter, node, tools) {
  if (node.querySelector(".confirm")) return;
  const feedback = el("span", { class: "feedback", role: "status" });
  const confirmButton = el("button", { type: "button", class: "danger confirm-requeue" }, "Yes, requeue");
  const cancel = el("button", { type: "button", class: "cancel" }, "Cancel");
  const box = el("div", { class: "confirm", role: "group", "aria-label": `Confirm requeue of dead letter ${letter.id}` },
    el("span", {}, "Publish this body again to ", el("strong", {}, visibleText(letter.source)), " and delete the dead letter?"),
    confirmButton, cancel, feedback);
  if (!token()) box.append(tokenBox(() => feedback.textContent = token() ? "Token set." : ""));
  cancel.addEventListener("click", () => box.remove());
  confirmButton.addEventListener("click", async () => {
    confirmButton.disabled = true;
    feedback.textContent = "Requeueing…";
    try {
      await api(`/api/dead-letters/${letter.id}/requeue`, { method: "POST" });
      clear(node);
      node.classList.add("requeued");
      node.append(el("div", { class: "ok-notice" }, `Dead letter #${letter.id} was requeued to `, visibleText(letter.source), "."));
    } catch (error) {
      feedback.textContent = error.status === 401 || error.status === 403 ? `${error.message} — give the server's token.` : error.message;
      feedback.classList.add("error");
      if ((error.status === 401 || error.status === 403) && !box.querySelector(".token-box")) box.append(tokenBox(() => feedback.textContent = "Token set; try again."));
      confirmButton.disabled = false;
    }
  });
  tools.after(box);
  confirmButton.focus();
}

function card(letter) {
  const node = el("article", { class: "letter" + (String(letter.id) === highlight ? " highlight" : ""), id: `letter-${letter.id}`, "data-id": letter.id });
  const bodyHolder = el("div", { class: "body-holder", hidden: true });
  const showButton = el("button", { type: "button", class: "show-body" }, "Show raw body");
  showButton.addEventListener("click", () => showBody(letter, bodyHolder, showButton));
  const tools = el("div", { class: "tools" }, showButton);
  if (!serverInfo || serverInfo.writes !== false) {
    const requeue = el("button", { type: "button", class: "primary requeue" }, "Requeue…");
    requeue.addEventListener("click", () => askRequeue(letter, node, tools));
    tools.append(requeue);
  }
  node.append(
    el("div", { class: "head" },
      el("strong", {}, `#${letter.id}`),
      el("span", { class: "muted" }, visibleText(letter.received_at)),
      el("span", {}, "from ", el("span", { class: "mono" }, visibleText(letter.source))),
      el("span", { class: "muted" }, formatBytes(letter.body_len)),
      letter.sender_id ? el("a", { href: conversationHref(letter.sender_id) }, "conversation ", visibleText(letter.sender_id.slice(0, 80))) : null),
    el("div", { class: "reason" }, el("span", { class: "muted" }, "Reason: "), clippedText(letter.error, 600)),
    el("div", { class: "preview", dir: "auto" }, visibleText(letter.preview.slice(0, 400))),
    tools, bodyHolder);
  return node;
}

async function loadPage() {
  more.disabled = true;
  setStatus(status, "Loading…");
  const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (after !== null) params.set("after", String(after));
  try {
    const page = await api(`/api/dead-letters?${params}`);
    for (const letter of page.dead_letters) list.append(card(letter));
    after = page.next_after;
    more.hidden = after === null || after === undefined;
    const count = list.children.length;
    setStatus(status, count ? `${formatCount(count)} dead letter${count === 1 ? "" : "s"} shown.` : "No dead letters: every message was an event.");
    const target = highlight && document.getElementById(`letter-${highlight}`);
    if (target) target.scrollIntoView({ block: "center" });
  } catch (error) {
    setStatus(status, error.message, true);
  } finally {
    more.disabled = false;
  }
}

async function main() {
  serverInfo = await showServerInfo();
  if (serverInfo && !serverInfo.writes) {
    writesNote.append(el("div", { class: "notice" }, "Requeue is off: the server runs without ", el("code", {}, "--auth-token"), ", and writes need one."));
  }
  more.addEventListener("click", loadPage);
  loadPage();
}
main();
