import assert from "node:assert/strict";
import { test } from "node:test";
import { statusView } from "../../src/status";

test("ready shows the model's short name, device and quantization", () => {
  const v = statusView({ state: "ready", model: "Qwen/Qwen2.5-Coder-1.5B", device: "cuda", quantization: "4bit" });
  assert.equal(v.text, "$(sparkle) Qwen2.5-Coder-1.5B (cuda, 4bit)");
  assert.match(v.tooltip, /Qwen\/Qwen2.5-Coder-1.5B \(cuda, 4bit\)/);
  assert.equal(v.error, false);
});

test("loading shows progress; errors are flagged with their message", () => {
  assert.match(statusView({ state: "loading", percentage: 42.4 }).text, /42%/);
  const e = statusView({ state: "error", message: "CUDA out of memory" });
  assert.equal(e.error, true);
  assert.match(e.tooltip, /CUDA out of memory/);
  assert.match(statusView({ state: "busy", model: "/m/bundled/" }).text, /bundled/);
});
