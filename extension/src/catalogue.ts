/**
 * The server's model catalogue from the extension's side: `lsp-llm models --json` read
 * through the server's own command (same Python, same package), and `lsp-llm models install
 * NAME --json` run with its progress reported line by line. No `vscode` import: the model
 * picker in extension.ts shows the results.
 */
import { spawn } from "node:child_process";
import { type CatalogueRow, type InstallLine, modelsCommand, parseCatalogue, parseInstallLine } from "./models";

type Command = { command: string; args: string[] };

function run(cmd: Command, onLine: (line: string) => void, cancelled: () => boolean): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd.command, cmd.args, { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    let pending = "";
    const timer = setInterval(() => {
      if (cancelled()) child.kill();
    }, 250);
    child.stdout.on("data", (data: Buffer) => {
      const text = data.toString();
      stdout += text;
      pending += text;
      const lines = pending.split("\n");
      pending = lines.pop() ?? "";
      for (const line of lines) if (line.trim()) onLine(line);
    });
    child.stderr.on("data", (data: Buffer) => {
      stderr = (stderr + data.toString()).slice(-4000);
    });
    child.on("error", (err) => {
      clearInterval(timer);
      reject(err);
    });
    child.on("close", (code) => {
      clearInterval(timer);
      if (pending.trim()) onLine(pending);
      resolve({ code, stdout, stderr });
    });
  });
}

/** The catalogue, or [] when the server's command cannot list it (an older server, a
 * command without `serve`, no Python). */
export async function readCatalogue(server: Command): Promise<CatalogueRow[]> {
  const cmd = modelsCommand(server, "--json");
  if (!cmd) return [];
  try {
    const { code, stdout } = await run(cmd, () => undefined, () => false);
    return code === 0 ? parseCatalogue(stdout) : [];
  } catch {
    return [];
  }
}

/** Install catalogue model `alias` through the server's command; `report` hears each
 * progress line (fraction 0-1 and a message). Rejects with the server's words. */
export async function installModel(
  server: Command,
  alias: string,
  report: (fraction: number, message: string) => void,
  cancelled: () => boolean = () => false,
): Promise<string> {
  const cmd = modelsCommand(server, "install", alias, "--json");
  if (!cmd) throw new Error("the server command has no `serve` to run `models install` with");
  let result: InstallLine | undefined;
  const { code, stderr } = await run(
    cmd,
    (line) => {
      const parsed = parseInstallLine(line);
      if (parsed && "progress" in parsed) report(parsed.progress, parsed.message);
      else if (parsed) result = parsed;
    },
    cancelled,
  );
  if (result && "installed" in result) return result.path;
  if (result && "error" in result) throw new Error(result.error);
  if (cancelled()) throw new Error("installing was cancelled");
  throw new Error(`installing ${alias} failed (exit ${code}): ${stderr.trim().split("\n").slice(-2).join(" ")}`);
}
