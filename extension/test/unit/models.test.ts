import assert from "node:assert/strict";
import { test } from "node:test";
import {
  cachedModels,
  checkEngineUrl,
  checkTypedModel,
  hubCacheDir,
  modelChoices,
  modelsCommand,
  parseCatalogue,
  parseInstallLine,
  settingsFor,
} from "../../src/models";

const CATALOGUE = JSON.stringify([
  { alias: "qwen2.5-coder-0.5b", title: "Qwen2.5-Coder-0.5B-Instruct", summary: "s", installed: true, size: 491400064, sha256: "x", licence: "Apache-2.0", default: true },
  { alias: "qwen2.5-coder-1.5b", title: "Qwen2.5-Coder-1.5B-Instruct", summary: "s", installed: false, size: 1117320768, licence: "Apache-2.0", default: false },
  { alias: "bundled", title: "Bundled demo pair", summary: "s", installed: true, size: 0, licence: "Apache-2.0", default: false },
  { alias: "broken", title: 3 },
]);

test("the Hugging Face cache is found as the hub library finds it", () => {
  assert.equal(hubCacheDir({ HF_HUB_CACHE: "/c" }, "/h"), "/c");
  assert.equal(hubCacheDir({ HF_HOME: "/hf" }, "/h"), "/hf/hub");
  assert.equal(hubCacheDir({ XDG_CACHE_HOME: "/x" }, "/h"), "/x/huggingface/hub");
  assert.equal(hubCacheDir({}, "/h"), "/h/.cache/huggingface/hub");
});

test("cached models are read from the cache's folder names", () => {
  const found = cachedModels(["models--Qwen--Qwen2.5-Coder-1.5B", "datasets--x--y", ".locks", "models--bad", "models--a--b--c"]);
  assert.deepEqual(found, ["Qwen/Qwen2.5-Coder-1.5B"]);
});

test("the choices mark what the settings hold now", () => {
  const fresh = modelChoices(["Qwen/Qwen2.5-Coder-1.5B"], { model: null, backendUrl: null });
  assert.deepEqual(fresh.map((c) => c.kind), ["default", "cached", "typed", "remote"]);
  assert.deepEqual(fresh.filter((c) => c.current).map((c) => c.kind), ["default"]);
  const cached = modelChoices(["Qwen/Qwen2.5-Coder-1.5B"], { model: "Qwen/Qwen2.5-Coder-1.5B", backendUrl: null });
  assert.deepEqual(cached.filter((c) => c.current).map((c) => c.label), ["Qwen/Qwen2.5-Coder-1.5B"]);
  const typed = modelChoices([], { model: "/m/x.gguf", backendUrl: null });
  assert.equal(typed.find((c) => c.kind === "typed")?.description, "now: /m/x.gguf");
  const remote = modelChoices([], { model: "smollm2", backendUrl: "http://e:8080/v1" });
  assert.deepEqual(remote.filter((c) => c.current).map((c) => c.kind), ["remote"]);
});

test("what is typed is checked before it is written", () => {
  for (const ok of ["Qwen/Qwen2.5-Coder-1.5B", "org/repo:model-Q4_K_M.gguf", "/models/x.gguf", "~/m", "C:\\m\\x.gguf"]) {
    assert.equal(checkTypedModel(ok), undefined, ok);
  }
  for (const bad of ["", "qwen", "rm -rf /", "org/name extra"]) assert.notEqual(checkTypedModel(bad), undefined, bad);
  assert.equal(checkEngineUrl("http://127.0.0.1:8080/v1"), undefined);
  assert.notEqual(checkEngineUrl("ftp://x"), undefined);
  assert.notEqual(checkEngineUrl("http://a b"), undefined);
});

test("a local model clears the engine; an engine keeps the model as its tokenizer", () => {
  const [def, , , bundled] = modelChoices([], { model: "bundled", backendUrl: "http://e/v1" }, parseCatalogue(CATALOGUE));
  assert.deepEqual(settingsFor(def), { model: null, "backend.url": null });
  assert.deepEqual(settingsFor(bundled), { model: "bundled", "backend.url": null });
  const typed = modelChoices([], { model: null, backendUrl: null }).find((c) => c.kind === "typed")!;
  assert.deepEqual(settingsFor(typed, " org/name "), { model: "org/name", "backend.url": null });
  const remote = modelChoices([], { model: null, backendUrl: null }).find((c) => c.kind === "remote")!;
  assert.deepEqual(settingsFor(remote, "http://e:8080/v1"), { "backend.url": "http://e:8080/v1" });
});

test("the catalogue is offered with what installing costs, the default named", () => {
  const rows = parseCatalogue(CATALOGUE);
  assert.deepEqual(rows.map((r) => r.alias), ["qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b", "bundled"]);
  assert.deepEqual(parseCatalogue("not json"), []);
  const choices = modelChoices([], { model: "qwen2.5-coder-1.5b", backendUrl: null }, rows);
  assert.deepEqual(choices.map((c) => c.kind), ["default", "catalogue", "catalogue", "catalogue", "typed", "remote"]);
  assert.match(choices[0].description, /Qwen2.5-Coder-0.5B-Instruct/);
  const big = choices[2];
  assert.equal(big.current, true);
  assert.equal(big.install, true);
  assert.match(big.description, /installs 1,117 MB/);
  assert.equal(choices[1].install, false);
  assert.deepEqual(settingsFor(big), { model: "qwen2.5-coder-1.5b", "backend.url": null });
  assert.equal(modelChoices([], { model: "auto", backendUrl: null }, rows)[0].current, true);
});

test("the models command runs the server's own Python and package", () => {
  assert.deepEqual(modelsCommand({ command: "/v/bin/python", args: ["-m", "lsp_llm", "serve"] }, "--json"), {
    command: "/v/bin/python",
    args: ["-m", "lsp_llm", "models", "--json"],
  });
  assert.deepEqual(modelsCommand({ command: "lsp-llm", args: ["serve", "--stdio"] }, "install", "x"), {
    command: "lsp-llm",
    args: ["models", "install", "x"],
  });
  assert.equal(modelsCommand({ command: "nc", args: ["localhost", "4000"] }), undefined);
  assert.deepEqual(parseInstallLine('{"progress": 0.5, "message": "part 1 of 6"}'), { progress: 0.5, message: "part 1 of 6" });
  assert.deepEqual(parseInstallLine('{"error": "no"}'), { error: "no" });
  assert.equal(parseInstallLine("Collecting x"), undefined);
});
