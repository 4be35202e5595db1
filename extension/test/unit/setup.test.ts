import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { test } from "node:test";
import { CPU_TORCH_INDEX, runSetup, setupSteps, shippedServer } from "../../src/setup";

test("the .vsix's wheel and constraints are found, or nothing is", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "lsp-llm-ext-"));
  assert.equal(shippedServer(dir), undefined);
  fs.mkdirSync(path.join(dir, "server"));
  fs.writeFileSync(path.join(dir, "server", "lsp_llm-0.1.0-py3-none-any.whl"), "");
  assert.equal(shippedServer(dir), undefined); // no constraints: no set-up
  fs.writeFileSync(path.join(dir, "server", "constraints.txt"), "torch==2.13.0\n");
  const found = shippedServer(dir);
  assert.equal(found?.wheel, path.join(dir, "server", "lsp_llm-0.1.0-py3-none-any.whl"));
});

test("the steps: a venv, torch (CPU index unless told), the wheel, the model, all pinned", () => {
  const plan = setupSteps("python3", "/s/venv", { wheel: "/x/lsp_llm.whl", constraints: "/x/c.txt" }, CPU_TORCH_INDEX, "linux");
  assert.equal(plan.python, "/s/venv/bin/python");
  assert.deepEqual(plan.steps[0], { title: "creating a Python environment", command: "python3", args: ["-m", "venv", "/s/venv"] });
  const torch = plan.steps[1].args;
  assert.ok(torch.includes("--extra-index-url") && torch.includes(CPU_TORCH_INDEX) && torch.at(-1) === "torch");
  for (const step of plan.steps.slice(1, 3)) {
    assert.equal(step.command, "/s/venv/bin/python");
    assert.ok(step.args.join(" ").includes("-c /x/c.txt"), step.title);
  }
  assert.equal(plan.steps[2].args.at(-1), "/x/lsp_llm.whl");
  // the model: pinned by the catalogue, assembled and hash checked by the server
  assert.deepEqual(plan.steps[3].args, ["-m", "lsp_llm", "models", "install", "qwen2.5-coder-0.5b"]);
  const cuda = setupSteps("py", "C:\\v", { wheel: "w", constraints: "c" }, "", "win32");
  assert.ok(!cuda.steps[1].args.includes("--extra-index-url"));
  assert.match(cuda.python, /Scripts/);
});

test("steps run in order and a failing one stops the set-up with its output", async () => {
  const node = process.execPath;
  const titles: string[] = [];
  const lines: string[] = [];
  await runSetup(
    [
      { title: "one", command: node, args: ["-e", "console.log('first')"] },
      { title: "two", command: node, args: ["-e", "console.error('second')"] },
    ],
    (t) => titles.push(t),
    (l) => lines.push(l),
  );
  assert.deepEqual(titles, ["one", "two"]);
  assert.ok(lines.includes("first") && lines.includes("second"));
  await assert.rejects(
    runSetup([{ title: "bad", command: node, args: ["-e", "console.error('no wheel'); process.exit(3)"] }], () => {}, () => {}),
    /bad failed \(exit 3\): no wheel/,
  );
});
