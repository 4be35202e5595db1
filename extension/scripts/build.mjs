// Bundles the extension (node, CommonJS) and the chat webview script (browser) with esbuild;
// `--tests` also bundles the unit tests into out/test/ for `node --test`.
import { build } from "esbuild";
import { readdirSync } from "node:fs";

const production = process.argv.includes("--production");
const common = { bundle: true, sourcemap: !production, minify: production, logLevel: "warning" };
await build({ ...common, entryPoints: ["src/extension.ts"], outfile: "out/extension.js",
  platform: "node", format: "cjs", target: "node20", external: ["vscode"] });
await build({ ...common, entryPoints: ["webview/chat.ts"], outfile: "out/webview.js",
  platform: "browser", format: "iife", target: "es2022" });
if (process.argv.includes("--tests")) {
  const tests = readdirSync("test/unit").filter((f) => f.endsWith(".test.ts"));
  await build({ ...common, entryPoints: tests.map((f) => `test/unit/${f}`), outdir: "out/test",
    platform: "node", format: "cjs", target: "node20", external: ["vscode"] });
}
