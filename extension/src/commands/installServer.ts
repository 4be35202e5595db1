/** "lsp-llm: Set Up the Server". */
import * as vscode from "vscode";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { CPU_TORCH_INDEX, runSetup, setupSteps, shippedServer } from "../setup";

/** Whether `nvidia-smi` finds a GPU (then torch with CUDA is offered). */
function hasNvidiaGpu(): boolean {
  const probe = spawnSync("nvidia-smi", ["-L"], { encoding: "utf8", timeout: 5000 });
  return probe.status === 0 && /GPU \d/.test(probe.stdout ?? "");
}

/** "lsp-llm: Set Up the Server": a virtual environment of the extension's own with torch,
 * the lsp-llm wheel inside the .vsix and the default model, then `serverCommand` points
 * at it (which restarts the server). */
export async function installServer(context: vscode.ExtensionContext, log: vscode.LogOutputChannel): Promise<void> {
  const shipped = shippedServer(context.extensionPath);
  if (!shipped) {
    void vscode.window.showErrorMessage("lsp-llm: this build of the extension carries no server to install.");
    return;
  }
  const config = vscode.workspace.getConfiguration("lspLlm");
  let torchIndex = config.get<string>("setup.torchIndexUrl") ?? CPU_TORCH_INDEX;
  if (hasNvidiaGpu()) {
    const choice = await vscode.window.showInformationMessage(
      "lsp-llm: nvidia-smi found a GPU. Install torch with CUDA (a few GB), or the CPU build?",
      "CUDA",
      "CPU only",
    );
    if (!choice) return;
    if (choice === "CUDA") torchIndex = "";
  }
  const base = config.get<string>("pythonPath") || "python3";
  const venv = path.join(context.globalStorageUri.fsPath, "venv");
  fs.mkdirSync(context.globalStorageUri.fsPath, { recursive: true });
  const plan = setupSteps(base, venv, shipped, torchIndex);
  log.info(`setting up the server in ${venv}`);
  try {
    await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: "lsp-llm: setting up the server", cancellable: true },
      (progress, token) =>
        runSetup(
          plan.steps,
          (title, i) => progress.report({ message: `${title} (${i + 1}/${plan.steps.length})`, increment: 100 / plan.steps.length }),
          (line) => log.appendLine(line),
          () => token.isCancellationRequested,
        ),
    );
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    log.error(`set-up failed: ${message}`);
    const choice = await vscode.window.showErrorMessage(`lsp-llm: ${message}`, "Show log");
    if (choice) log.show();
    return;
  }
  log.info("set-up done; starting the server");
  await config.update("serverCommand", [plan.python, "-m", "lsp_llm", "serve"], vscode.ConfigurationTarget.Global);
}
