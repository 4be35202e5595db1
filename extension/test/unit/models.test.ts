import assert from "node:assert/strict";
import { test } from "node:test";
import {
  cachedModels,
  checkEngineUrl,
  checkTypedModel,
  hubCacheDir,
  modelChoices,
  settingsFor,
} from "../../src/models";

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
  assert.deepEqual(fresh.map((c) => c.kind), ["default", "bundled", "cached", "typed", "remote"]);
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
  const [def, bundled] = modelChoices([], { model: "bundled", backendUrl: "http://e/v1" });
  assert.deepEqual(settingsFor(def), { model: null, "backend.url": null });
  assert.deepEqual(settingsFor(bundled), { model: "bundled", "backend.url": null });
  const typed = modelChoices([], { model: null, backendUrl: null }).find((c) => c.kind === "typed")!;
  assert.deepEqual(settingsFor(typed, " org/name "), { model: "org/name", "backend.url": null });
  const remote = modelChoices([], { model: null, backendUrl: null }).find((c) => c.kind === "remote")!;
  assert.deepEqual(settingsFor(remote, "http://e:8080/v1"), { "backend.url": "http://e:8080/v1" });
});
