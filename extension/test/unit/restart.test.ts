import assert from "node:assert/strict";
import { test } from "node:test";
import { RestartPolicy } from "../../src/restart";

test("restarts back off exponentially and give up on a crash loop", () => {
  const p = new RestartPolicy(1000, 3, 60_000);
  p.started(0);
  assert.equal(p.crashed(10), 1000);
  assert.equal(p.crashed(20), 2000);
  assert.equal(p.crashed(30), 4000);
  assert.equal(p.crashed(40), undefined);
});

test("a server that stayed up long enough starts the count afresh", () => {
  const p = new RestartPolicy(1000, 3, 60_000);
  p.started(0);
  p.crashed(10);
  p.crashed(20);
  p.started(100);
  assert.equal(p.crashed(100 + 60_000), 1000);
});
