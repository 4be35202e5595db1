import assert from "node:assert/strict";
import { test } from "node:test";
import { readViewMessage } from "../../src/messages";

test("webview messages are read as their declared shapes, anything else is refused", () => {
  assert.deepEqual(readViewMessage({ type: "ask", text: "hi", attach: "file", extra: 1 }), {
    type: "ask",
    text: "hi",
    attach: "file",
  });
  assert.deepEqual(readViewMessage({ type: "stop" }), { type: "stop" });
  assert.deepEqual(readViewMessage({ type: "insert", text: "x = 1" }), { type: "insert", text: "x = 1" });
  for (const bad of [null, "ask", { type: "ask", text: "hi" }, { type: "attach", attach: "disk" }, { type: "insert" }, { type: "eval", text: "x" }]) {
    assert.equal(readViewMessage(bad), undefined, JSON.stringify(bad));
  }
});
