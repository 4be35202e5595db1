// End-to-end test in a real VS Code: code-server with the packaged .vsix installed, driven
// by headless Chromium through playwright-core. It checks the status bar names the model
// and its device and that a clean start shows no warning or error notification, opens the
// model picker, types a function header and accepts the ghost text with Tab, asks the
// side-panel chat a question and watches the reply stream in several visible updates, then
// stops a long reply. Screenshots go to media/screenshots/. `scripts/e2e` installs what it
// needs and runs it; `scripts/test` runs that.
//
//   CODE_SERVER=/path/to/code-server LSP_LLM_PYTHON=../.venv/bin/python node test/e2e/run.mjs
//
// Needs: lsp-llm.vsix (npm run package), code-server 4.139.1 on Node 24, /usr/bin/chromium.
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { chromium } from "playwright-core";

const root = resolve(import.meta.dirname, "../..");
const codeServer = process.env.CODE_SERVER ?? "code-server";
const python = resolve(process.env.LSP_LLM_PYTHON ?? join(root, "..", ".venv", "bin", "python"));
const shots = join(root, "media", "screenshots");
const port = 20000 + Math.floor(Math.random() * 20000);
const work = mkdtempSync(join(tmpdir(), "lsp-llm-e2e-"));
const [userData, extensions, folder] = ["user", "extensions", "project"].map((d) => join(work, d));
for (const d of [join(userData, "User"), extensions, folder, shots]) mkdirSync(d, { recursive: true });
// LSP_LLM_E2E_SCENARIO=setup: a new user with no server configured (python3 has no
// lsp-llm): the extension offers to set the server up, the test accepts, and ghost text
// then works. Otherwise the extension is pointed at this repository's environment.
const setup = process.env.LSP_LLM_E2E_SCENARIO === "setup";
writeFileSync(
  join(userData, "User", "settings.json"),
  JSON.stringify({
    "security.workspace.trust.enabled": false,
    "workbench.startupEditor": "none",
    "editor.inlineSuggest.enabled": true,
    ...(setup
      ? { "lspLlm.setup.torchIndexUrl": process.env.LSP_LLM_E2E_TORCH_INDEX ?? "" }
      : { "lspLlm.pythonPath": python }),
    "lspLlm.completion.maxNewTokens": 32,
    "lspLlm.chat.maxNewTokens": 32768,
    "lspLlm.chat.temperature": 0,
  }),
);
writeFileSync(join(folder, "shapes.py"), readFileSync(join(root, "..", "examples", "shapes.py"), "utf8"));

function step(msg) {
  console.log(`[e2e] ${msg}`);
}
async function waitFor(what, fn, timeoutMs = 60000, everyMs = 100) {
  const t0 = Date.now();
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

const dirs = ["--user-data-dir", userData, "--extensions-dir", extensions];
step("installing lsp-llm.vsix");
execFileSync(codeServer, [...dirs, "--install-extension", join(root, "lsp-llm.vsix")], { stdio: "inherit" });
const server = spawn(
  codeServer,
  [...dirs, "--auth", "none", "--bind-addr", `127.0.0.1:${port}`, "--disable-telemetry", "--disable-update-check", folder],
  { stdio: ["ignore", "pipe", "pipe"] },
);
server.stderr.on("data", (d) => process.stderr.write(`[code-server] ${d}`));
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});
let failed = false;
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 860 } });
  await waitFor("code-server", async () => {
    try { return (await fetch(`http://127.0.0.1:${port}/healthz`)).ok; } catch { return false; }
  });
  await page.goto(`http://127.0.0.1:${port}/?folder=${encodeURIComponent(folder)}`);
  await page.waitForSelector(".monaco-workbench", { timeout: 60000 });
  step("workbench up; opening shapes.py");
  await page.keyboard.press("Control+P");
  await page.keyboard.type("shapes.py");
  await page.locator(".quick-input-list .monaco-list-row", { hasText: "shapes.py" }).first().waitFor();
  await page.keyboard.press("Enter");
  await page.waitForSelector(".monaco-editor .view-lines", { timeout: 30000 });
  if (setup) {
    step("no server yet: accepting the offer to set it up");
    const offer = page.locator(".notification-list-item", { hasText: "Set it up now" });
    await offer.first().waitFor({ timeout: 60000 });
    await page.screenshot({ path: join(shots, "setup-offer.png") });
    await offer.first().locator(".monaco-button", { hasText: "Set up lsp-llm" }).click();
    await page.locator(".notification-list-item", { hasText: "setting up the server" }).first().waitFor({ timeout: 30000 });
    step("installing (a Python environment, torch, the wheel inside the .vsix, the model)");
  }
  step("waiting for the model to load (status bar)");
  // The default model (no lspLlm.model set): on a CPU, Qwen2.5-Coder-0.5B-Instruct, which
  // scripts/env.sh (and the set-up) install. Ours, once ready: the model's name and its
  // device ("qwen2.5-coder-0.5b (cpu, 4bit)"), not VS Code's progress item for the load
  // ("lsp-llm: loading qwen2.5-coder-0.5b …").
  const model = (process.env.LSP_LLM_E2E_MODEL ?? "qwen2.5-coder-0.5b").replace(/\./g, "\\.");
  const ready = page.locator(".statusbar-item", { hasText: new RegExp(`^\\W*${model}[^\\n]*\\((cpu|cuda|mps)`, "i") });
  await ready.first().waitFor({ timeout: setup ? 900000 : 180000 });
  step(`status bar: ${JSON.stringify((await ready.first().innerText()).trim())}`);

  // A clean start shows no warning or error notification (toasts, or the notification
  // centre's list). (The set-up scenario starts with the error that offers the set-up.)
  if (!setup) await new Promise((r) => setTimeout(r, 1500));
  const noisy = page.locator(".notification-list-item", {
    has: page.locator(".codicon-warning, .codicon-error, .codicon-notifications-warning, .codicon-notifications-error"),
  });
  const complaints = (await noisy.allInnerTexts()).map((t) => t.replace(/\s+/g, " ").trim());
  if (!setup && complaints.length) throw new Error(`notifications on a clean start: ${JSON.stringify(complaints)}`);
  if (!setup) step("no warning or error notifications");

  if (!setup) {
    step("the model picker");
    await page.keyboard.press("F1");
    await page.keyboard.type("lsp-llm: Select Model");
    await page.keyboard.press("Enter");
    const choice = page.locator(".quick-input-list .monaco-list-row", { hasText: "Bundled demo pair" });
    await choice.first().waitFor({ timeout: 10000 });
    await page.screenshot({ path: join(shots, "model-picker.png") });
    await page.keyboard.press("Escape");
  }

  step("typing a function header; waiting for ghost text");
  await page.locator(".monaco-editor .view-lines").first().click();
  await page.keyboard.press("Control+End");
  await page.keyboard.press("Enter");
  await page.keyboard.type("def is_prime(n):");
  await page.keyboard.press("Enter");
  // VS Code indents the new line once Python's language configuration is loaded; on a
  // fresh profile that can come late, and a suggestion that starts with the indentation at
  // column 1 makes Tab indent first (VS Code's rule), not accept. Wait for the indentation
  // the way the user's editor gives it; type it if it never comes.
  const column = async () => {
    const text = await page.locator(".statusbar-item", { hasText: /Ln \d+, Col \d+/ }).first().innerText();
    return Number(/Col (\d+)/.exec(text)?.[1] ?? 0);
  };
  const indented = await waitFor("the auto-indent", async () => (await column()) === 5, 5000).catch(() => false);
  if (!indented) {
    step(`the editor did not indent the new line (column ${await column()}): typing the indentation`);
    await page.keyboard.press("Home");
    await page.keyboard.type("    ");
  }
  const ghost = page.locator(".ghost-text-decoration, .ghost-text");
  await ghost.first().waitFor({ state: "visible", timeout: 30000 });
  // A multi-line suggestion is drawn as several pieces (the cursor's line, then view zones).
  const pieces = (await ghost.allInnerTexts()).map((t) => t.trim()).filter(Boolean);
  const suggested = pieces.join(" ");
  await page.screenshot({ path: join(shots, "ghost-text.png") });
  step(`ghost text: ${JSON.stringify(suggested.slice(0, 60))}`);
  await page.keyboard.press("Tab");
  await waitFor("the ghost text to be accepted", async () => (await ghost.count()) === 0, 5000);
  const norm = (t) => t.replace(/\u00a0/g, " ");
  const lines = norm(await page.locator(".monaco-editor .view-lines").first().innerText());
  for (const piece of pieces) {
    const head = norm(piece).slice(0, 8);
    if (!lines.includes(head)) throw new Error(`Tab did not insert the suggestion (${JSON.stringify(head)})`);
  }
  await page.screenshot({ path: join(shots, setup ? "setup-ghost-text.png" : "ghost-text-accepted.png") });
  step("Tab inserted the suggestion");
  if (!setup) await chatStreamsAndStops(page); // the set-up scenario ends with ghost text
  step("PASS");
} catch (err) {
  failed = true;
  console.error(`[e2e] FAIL: ${err.stack ?? err}`);
  const pages = browser.contexts().flatMap((c) => c.pages());
  if (pages[0]) await pages[0].screenshot({ path: join(shots, "failure.png") }).catch(() => {});
} finally {
  await browser.close();
  server.kill();
}
process.exit(failed ? 1 : 0);

async function chatStreamsAndStops(page) {
  step("opening the chat view");
  await page.keyboard.press("F1");
  await page.keyboard.type("lsp-llm: Open Chat");
  await page.keyboard.press("Enter");
  const webview = page.frameLocator("iframe.webview.ready").frameLocator("#active-frame");
  await webview.locator("#question").waitFor({ timeout: 30000 });
  await webview.locator("#attach").selectOption("file");
  // A question with a long answer, so Stop comes while it streams (greedy: over
  // 2,000 characters).
  await webview.locator("#question").fill("Write a long tutorial on Python's math module, with many examples.");
  await webview.locator("#question").press("Enter");
  const reply = webview.locator(".message.assistant .body").last();
  const seen = new Set();
  await waitFor("several visible updates of the reply", async () => {
    const text = await reply.innerText().catch(() => "");
    if (text && text !== "…") seen.add(text);
    return seen.size >= 5;
  }, 60000, 20);
  step(`reply streamed: ${seen.size} distinct visible states so far`);
  await page.screenshot({ path: join(shots, "chat-streaming.png") });
  await webview.locator("#stop").click();
  await webview.locator(".finish", { hasText: "Stopped." }).waitFor({ timeout: 10000 });
  const stopped = await reply.innerText();
  await new Promise((r) => setTimeout(r, 1500));
  if ((await reply.innerText()) !== stopped) throw new Error("the reply kept growing after Stop");
  await page.screenshot({ path: join(shots, "chat-stopped.png") });
  step(`Stop ended the reply after ${stopped.length} characters`);

  // A reply with code: rendered as a code block with Copy and Insert (greedy: the same
  // reply every run).
  await webview.locator("#attach").selectOption("none");
  await webview.locator("#question").fill("Write a Python function that reverses a string.");
  await webview.locator("#question").press("Enter");
  const answer = webview.locator(".message.assistant").last();
  await answer.locator("pre code").first().waitFor({ timeout: 120000 });
  await webview.locator("#stop").waitFor({ state: "hidden", timeout: 120000 });
  await answer.locator("button.insert").first().waitFor({ timeout: 5000 });
  await page.screenshot({ path: join(shots, "chat-code-block.png") });
  step("a reply with a code block (Copy, Insert)");
}
