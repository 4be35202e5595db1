import assert from "node:assert/strict";
import { test } from "node:test";
import {
  CLIENT_ONLY,
  NULLABLE,
  SERVER_KEYS,
  answerConfiguration,
  missingInstall,
  serverCommand,
  serverSettings,
} from "../../src/settings";

const LOCAL = { url: null, model: null, apiKey: null, apiKeyEnv: null };
const lookup = (values: Record<string, unknown>) => (key: string) => values[key];

test("server settings are nested camelCase, client-only keys stay out", () => {
  const s = serverSettings(
    lookup({
      serverCommand: ["x"],
      pythonPath: "/usr/bin/python3",
      model: "Qwen/Qwen2.5-Coder-1.5B-Instruct",
      "completion.maxNewTokens": 64,
      "chat.temperature": 0,
      "speculation.mode": "promptLookup",
    }),
  );
  assert.deepEqual(s, {
    model: "Qwen/Qwen2.5-Coder-1.5B-Instruct",
    draftModel: null,
    completion: { maxNewTokens: 64 },
    chat: { temperature: 0, seed: null },
    speculation: { mode: "promptLookup" },
    backend: LOCAL,
  });
});

test("a remote engine is sent, and clearing its URL goes back to the local model", () => {
  const url = "http://127.0.0.1:8080/v1";
  const s = serverSettings(lookup({ "backend.url": url, "backend.apiKeyEnv": "KEY" }));
  assert.deepEqual(s.backend, { url, model: null, apiKey: null, apiKeyEnv: "KEY" });
  assert.deepEqual(serverSettings(lookup({ "backend.url": "" })).backend, LOCAL);
});

test("an unset or emptied model goes back to the bundled one; other empties are left out", () => {
  const s = serverSettings(lookup({ model: "", draftModel: null, "chat.systemPrompt": "", device: "cpu" }));
  assert.deepEqual(s, { model: null, draftModel: null, device: "cpu", chat: { seed: null }, backend: LOCAL });
});

test("the server command: the configured one, else python -m lsp_llm serve", () => {
  assert.deepEqual(serverCommand(lookup({ serverCommand: ["/v/bin/lsp-llm", "serve"] })), {
    command: "/v/bin/lsp-llm",
    args: ["serve"],
  });
  assert.deepEqual(serverCommand(lookup({ serverCommand: [], pythonPath: "/v/bin/python" })), {
    command: "/v/bin/python",
    args: ["-m", "lsp_llm", "serve"],
  });
  assert.deepEqual(serverCommand(lookup({ serverCommand: [1, 2] })).command, "python3");
});

test("a missing Python or package is recognised in the start-up output", () => {
  assert.match(missingInstall("spawn python9 ENOENT") ?? "", /not found/);
  assert.match(missingInstall("/usr/bin/python3: No module named lsp_llm") ?? "", /not installed/);
  assert.equal(missingInstall("Traceback: ValueError: bad"), undefined);
});

test("the server settings come from package.json (generated from the server's schema)", async () => {
  const { readFileSync } = await import("node:fs");
  const { join } = await import("node:path");
  const pkg = JSON.parse(readFileSync(join(__dirname, "..", "..", "package.json"), "utf8"));
  const contributed = Object.keys(pkg.contributes.configuration.properties).map((k) => k.replace(/^lspLlm\./, ""));
  assert.deepEqual([...SERVER_KEYS, ...CLIENT_ONLY].sort(), contributed.sort());
  for (const key of ["chat.contextTokens", "chat.seed", "completion.fimOrder", "backend.apiKeyEnv"]) {
    assert.ok(SERVER_KEYS.includes(key), key);
  }
  assert.deepEqual(
    [...NULLABLE].sort(),
    ["backend.apiKey", "backend.apiKeyEnv", "backend.model", "backend.url", "chat.seed", "draftModel", "model"],
  );
});

test("the server's configuration pull gets only server settings for lspLlm", () => {
  const get = lookup({ serverCommand: ["x"], pythonPath: "/p", "completion.maxNewTokens": 8 });
  const answered = [{ serverCommand: ["x"], pythonPath: "/p", completion: { maxNewTokens: 8 } }, { tabSize: 4 }];
  const [ours, other] = answerConfiguration([{ section: "lspLlm" }, { section: "editor" }], answered, get) as [
    Record<string, unknown>,
    unknown,
  ];
  assert.equal("serverCommand" in ours || "pythonPath" in ours, false);
  assert.deepEqual(ours.completion, { maxNewTokens: 8 });
  assert.deepEqual(other, { tabSize: 4 });
});
