import assert from "node:assert/strict";
import { test } from "node:test";
import { Conversation } from "../../src/conversation";

test("a reply streams into the last message and the server's whole reply wins", () => {
  const c = new Conversation();
  const wire = c.ask("What does f do?", "a.py");
  assert.deepEqual(wire, [{ role: "user", content: "What does f do?" }]);
  c.append("It ");
  c.append("adds.");
  assert.equal(c.messages[1].content, "It adds.");
  c.finish("stop", "It adds two numbers.");
  assert.equal(c.messages[1].content, "It adds two numbers.");
  assert.equal(c.streaming, false);
  const next = c.ask("And g?");
  assert.equal(next.length, 3);
});

test("one reply at a time; failed replies are not sent back; New chat clears", () => {
  const c = new Conversation();
  c.ask("q1");
  assert.throws(() => c.ask("q2"));
  c.finish("error", "boom");
  assert.deepEqual(c.ask("q2").map((m) => m.content), ["q1", "q2"]);
  c.clear();
  assert.equal(c.messages.length, 0);
  c.append("ignored");
  assert.equal(c.messages.length, 0);
});
