/**
 * The chat webview's script: renders the conversation the extension host sends (markdown
 * through markdown-it, with raw HTML disabled), appends streamed deltas, and gives each code
 * block Copy and Insert buttons. State lives in the extension host; this only draws it.
 */
import MarkdownIt from "markdown-it";
import type { Message } from "../src/conversation";
import type { Attach, HostMessage, ViewMessage } from "../src/messages";

declare function acquireVsCodeApi(): { postMessage(msg: ViewMessage): void };

const vscode = acquireVsCodeApi();
const md = new MarkdownIt({ html: false, linkify: true, breaks: false });
const list = document.getElementById("messages") as HTMLDivElement;
const form = document.getElementById("ask") as HTMLFormElement;
const question = document.getElementById("question") as HTMLTextAreaElement;
const attach = document.getElementById("attach") as HTMLSelectElement;
const stop = document.getElementById("stop") as HTMLButtonElement;
const send = document.getElementById("send") as HTMLButtonElement;
const fresh = document.getElementById("new") as HTMLButtonElement;

let messages: Message[] = [];
let streaming = false;

function addCodeButtons(root: HTMLElement): void {
  for (const pre of Array.from(root.querySelectorAll("pre"))) {
    const code = pre.querySelector("code")?.textContent ?? pre.textContent ?? "";
    const bar = document.createElement("div");
    bar.className = "code-actions";
    for (const [label, type] of [["Copy", "copy"], ["Insert", "insert"]] as const) {
      const b = document.createElement("button");
      b.textContent = label;
      b.className = `secondary ${type}`;
      b.title = type === "copy" ? "Copy to the clipboard" : "Insert at the cursor";
      b.addEventListener("click", () => vscode.postMessage({ type, text: code }));
      bar.appendChild(b);
    }
    pre.before(bar);
  }
}

function renderMessage(m: Message, el: HTMLElement): void {
  el.className = `message ${m.role}${m.finish === "error" ? " error" : ""}`;
  el.replaceChildren();
  if (m.context) {
    const ctx = document.createElement("div");
    ctx.className = "context";
    ctx.textContent = `with ${m.context}`;
    el.appendChild(ctx);
  }
  const body = document.createElement("div");
  body.className = "body";
  if (m.role === "user") {
    body.textContent = m.content;
  } else {
    body.innerHTML = md.render(m.content || (m.finish ? "" : "…"));
    addCodeButtons(body);
  }
  el.appendChild(body);
  if (m.finish === "cancelled" || m.finish === "length") {
    const note = document.createElement("div");
    note.className = "finish";
    note.textContent = m.finish === "cancelled" ? "Stopped." : "Reply cut at the length limit.";
    el.appendChild(note);
  }
}

function render(): void {
  list.replaceChildren();
  for (const m of messages) {
    const el = document.createElement("div");
    renderMessage(m, el);
    list.appendChild(el);
  }
  stop.hidden = !streaming;
  send.disabled = streaming;
  list.scrollTop = list.scrollHeight;
}

window.addEventListener("message", (event: MessageEvent<HostMessage>) => {
  const msg = event.data;
  if (msg.type === "state") {
    messages = msg.messages;
    streaming = msg.streaming;
    attach.value = msg.attach;
    render();
  } else if (msg.type === "delta") {
    const last = messages[messages.length - 1];
    if (!last || last.role !== "assistant") return;
    last.content += msg.text;
    const el = list.lastElementChild as HTMLElement | null;
    if (el) renderMessage(last, el);
    list.scrollTop = list.scrollHeight;
  }
});

form.addEventListener("submit", (e) => {
  e.preventDefault();
  if (streaming || !question.value.trim()) return;
  vscode.postMessage({ type: "ask", text: question.value, attach: attach.value as Attach });
  question.value = "";
});
question.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) {
    e.preventDefault();
    form.requestSubmit();
  }
});
attach.addEventListener("change", () => vscode.postMessage({ type: "attach", attach: attach.value as Attach }));
stop.addEventListener("click", () => vscode.postMessage({ type: "stop" }));
fresh.addEventListener("click", () => vscode.postMessage({ type: "new" }));
vscode.postMessage({ type: "ready" });
