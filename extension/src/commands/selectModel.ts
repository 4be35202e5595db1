/** "lsp-llm: Select Model". */
import * as vscode from "vscode";
import * as fs from "node:fs";
import * as os from "node:os";
import { installModel, readCatalogue } from "../catalogue";
import {
  cachedModels,
  checkEngineUrl,
  checkTypedModel,
  hubCacheDir,
  type ModelChoice,
  modelChoices,
  settingsFor,
} from "../models";
import { serverCommand } from "../settings";

/** "lsp-llm: Select Model": the automatic default, the server's catalogue (a model not yet
 * installed is installed first, with a progress notification), the models in the Hugging
 * Face cache, one typed in, or a remote engine; written to the user settings, after which
 * the server reloads (with its progress in the status bar). */
export async function selectModel(): Promise<void> {
  const config = vscode.workspace.getConfiguration("lspLlm");
  const server = serverCommand((key) => config.get(key));
  const catalogue = await readCatalogue(server);
  let entries: string[] = [];
  try {
    entries = fs.readdirSync(hubCacheDir(process.env, os.homedir()));
  } catch {
    entries = []; // no cache yet
  }
  const now = {
    model: (config.get<string | null>("model") ?? null) || null,
    backendUrl: (config.get<string | null>("backend.url") ?? null) || null,
  };
  type Item = vscode.QuickPickItem & { choice: ModelChoice };
  const items: Item[] = modelChoices(cachedModels(entries), now, catalogue).map((choice) => ({
    label: `${choice.current ? "$(check) " : ""}${choice.label}`,
    description: choice.description,
    choice,
  }));
  const picked = await vscode.window.showQuickPick(items, { title: "lsp-llm: Select Model", matchOnDescription: true });
  if (!picked) return;
  const { choice } = picked;
  let typed: string | undefined;
  if (choice.kind === "typed") {
    typed = await vscode.window.showInputBox({
      title: "lsp-llm: model",
      prompt: "A Hugging Face id (downloaded on first use), org/repo:FILE.gguf, a model folder or a .gguf file",
      value: now.model ?? "",
      validateInput: checkTypedModel,
    });
  } else if (choice.kind === "remote") {
    typed = await vscode.window.showInputBox({
      title: "lsp-llm: engine URL",
      prompt: "The engine's OpenAI-compatible base URL (lspLlm.model then names the tokenizer)",
      value: now.backendUrl ?? "http://127.0.0.1:8080/v1",
      validateInput: checkEngineUrl,
    });
  }
  if ((choice.kind === "typed" || choice.kind === "remote") && typed === undefined) return;
  if (choice.install && choice.model) {
    const alias = choice.model;
    try {
      await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Notification, title: `lsp-llm: installing ${choice.label}`, cancellable: true },
        async (progress, token) => {
          let done = 0;
          await installModel(
            server,
            alias,
            (fraction, message) => {
              const percent = Math.round(fraction * 100);
              progress.report({ message, increment: Math.max(0, percent - done) });
              done = Math.max(done, percent);
            },
            () => token.isCancellationRequested,
          );
        },
      );
    } catch (err) {
      void vscode.window.showErrorMessage(`lsp-llm: ${err instanceof Error ? err.message : String(err)}`);
      return;
    }
  }
  for (const [key, value] of Object.entries(settingsFor(choice, typed))) {
    await config.update(key, value, vscode.ConfigurationTarget.Global);
  }
}
