// Puts the lsp-llm server into the extension for its set-up command (src/setup.ts): the
// wheel of the repository's Python package and the tested versions (constraints.txt), in
// server/. Uses $LSP_LLM_PYTHON (else python3) with pip, in an isolated build environment:
// the interpreter's own setuptools may be too old for the project's metadata (Debian 12's
// rejects `project.license` as an SPDX string), so pip gets the one pyproject.toml asks for.
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, readdirSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";

const root = resolve(import.meta.dirname, "..", "..");
const out = resolve(import.meta.dirname, "..", "server");
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const python = process.env.LSP_LLM_PYTHON ?? "python3";
execFileSync(python, ["-m", "pip", "wheel", "-q", "--no-deps", "-w", out, root], {
  stdio: "inherit",
});
copyFileSync(join(root, "constraints.txt"), join(out, "constraints.txt"));
console.log(`server/: ${readdirSync(out).join(", ")}`);
