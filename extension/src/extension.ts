/**
 * The VS Code client of `lsp-llm serve`: a `ServerController` starts the server (restarting
 * it with back-off when it crashes) and shows its state in the status bar; this wires ghost
 * text (LSP inline completion, through vscode-languageclient), the side-panel chat, the
 * `@lsp-llm` chat participant, the model picker, the status menu and the editor commands.
 * The model logic stays in the server.
 */
import * as vscode from "vscode";
import type { LanguageClient } from "vscode-languageclient/node";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { installModel, readCatalogue } from "./catalogue";
import { ChatViewProvider } from "./chatView";
import { ServerController } from "./controller";
import {
  cachedModels,
  checkEngineUrl,
  checkTypedModel,
  hubCacheDir,
  type ModelChoice,
  modelChoices,
  settingsFor,
} from "./models";
import { registerParticipant } from "./participant";
import { serverCommand } from "./settings";
import { CPU_TORCH_INDEX, runSetup, setupSteps, shippedServer } from "./setup";

let controller: ServerController | undefined;
/** The running language client (for the commands that talk to the server directly). */
const current = (): LanguageClient | undefined => controller?.current;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  const log = vscode.window.createOutputChannel("lsp-llm", { log: true });
  const get = (key: string) => vscode.workspace.getConfiguration("lspLlm").get(key);
  const canInstall = shippedServer(context.extensionPath) !== undefined;
  const setupHelp = async (why: string) => {
    const choice = await vscode.window.showErrorMessage(
      canInstall
        ? `lsp-llm: ${why}. Set it up now (a Python environment of its own, about 1 GB with torch), or use your own server (lspLlm.serverCommand or lspLlm.pythonPath).`
        : `lsp-llm: ${why}. Install the server (Python ≥ 3.10) and point lspLlm.serverCommand or lspLlm.pythonPath at it.`,
      ...(canInstall ? ["Set up lsp-llm"] : []),
      "Set-up instructions",
      "Open settings",
    );
    if (choice === "Set up lsp-llm") await vscode.commands.executeCommand("lspLlm.installServer");
    if (choice === "Set-up instructions") await vscode.commands.executeCommand("lspLlm.setupHelp");
    if (choice === "Open settings") await vscode.commands.executeCommand("workbench.action.openSettings", "lspLlm");
  };
  const server = (controller = new ServerController(log, get, setupHelp));
  const chat = new ChatViewProvider(context.extensionUri, current, log);
  context.subscriptions.push(
    log,
    server,
    vscode.window.registerWebviewViewProvider(ChatViewProvider.viewId, chat, {
      webviewOptions: { retainContextWhenHidden: true },
    }),
    vscode.commands.registerCommand("lspLlm.showLog", () => log.show()),
    vscode.commands.registerCommand("lspLlm.setupHelp", () =>
      vscode.commands.executeCommand("markdown.showPreview", vscode.Uri.joinPath(context.extensionUri, "README.md")),
    ),
    vscode.commands.registerCommand("lspLlm.restartServer", () => server.restart()),
    vscode.commands.registerCommand("lspLlm.installServer", () => installServer(context, log)),
    vscode.commands.registerCommand("lspLlm.openChat", () => vscode.commands.executeCommand(`${ChatViewProvider.viewId}.focus`)),
    vscode.commands.registerCommand("lspLlm.selectModel", () => selectModel()),
    vscode.commands.registerCommand("lspLlm.statusMenu", () => statusMenu()),
    vscode.commands.registerCommand("lspLlm.newChat", () => chat.newChat()),
    vscode.commands.registerCommand("lspLlm.explainSelection", () =>
      chat.askFromEditor("Explain this code.", vscode.window.activeTextEditor?.selection.isEmpty ? "file" : "selection"),
    ),
    vscode.commands.registerCommand("lspLlm.addDocstring", () => addDocstring()),
    vscode.commands.registerCommand("lspLlm.editSelection", () => editSelection()),
    vscode.workspace.onDidChangeConfiguration(async (e) => {
      if (!e.affectsConfiguration("lspLlm")) return;
      if (e.affectsConfiguration("lspLlm.serverCommand") || e.affectsConfiguration("lspLlm.pythonPath")) {
        await server.restart();
      } else {
        await server.settingsChanged();
      }
    }),
  );
  registerParticipant(context, current);
  await server.start();
}

/** Whether `nvidia-smi` finds a GPU (then torch with CUDA is offered). */
function hasNvidiaGpu(): boolean {
  const probe = spawnSync("nvidia-smi", ["-L"], { encoding: "utf8", timeout: 5000 });
  return probe.status === 0 && /GPU \d/.test(probe.stdout ?? "");
}

/** "lsp-llm: Set Up the Server": a virtual environment of the extension's own with torch,
 * the lsp-llm wheel inside the .vsix and the default model, then `serverCommand` points
 * at it (which restarts the server). */
async function installServer(context: vscode.ExtensionContext, log: vscode.LogOutputChannel): Promise<void> {
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

/** "lsp-llm: Select Model": the automatic default, the server's catalogue (a model not yet
 * installed is installed first, with a progress notification), the models in the Hugging
 * Face cache, one typed in, or a remote engine; written to the user settings, after which
 * the server reloads (with its progress in the status bar). */
async function selectModel(): Promise<void> {
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

/** The status bar item's menu: the model, inline suggestions on or off (everywhere, or for
 * the current language), the chat, the log, a restart. */
async function statusMenu(): Promise<void> {
  const language = vscode.window.activeTextEditor?.document.languageId;
  const editor = vscode.workspace.getConfiguration("editor", language ? { languageId: language } : undefined);
  const enabled = editor.get<boolean>("inlineSuggest.enabled", true);
  const items: (vscode.QuickPickItem & { run: () => Thenable<unknown> })[] = [
    { label: "$(symbol-class) Select model…", run: () => selectModel() },
    {
      label: `$(${enabled ? "eye-closed" : "eye"}) ${enabled ? "Disable" : "Enable"} inline suggestions`,
      description: "everywhere",
      run: () =>
        vscode.workspace
          .getConfiguration("editor")
          .update("inlineSuggest.enabled", !enabled, vscode.ConfigurationTarget.Global),
    },
  ];
  if (language) {
    items.push({
      label: `$(${enabled ? "eye-closed" : "eye"}) ${enabled ? "Disable" : "Enable"} inline suggestions for ${language}`,
      run: () => editor.update("inlineSuggest.enabled", !enabled, vscode.ConfigurationTarget.Global, true),
    });
  }
  items.push(
    { label: "$(comment-discussion) Open chat", run: () => vscode.commands.executeCommand("lspLlm.openChat") },
    { label: "$(output) Show server log", run: () => vscode.commands.executeCommand("lspLlm.showLog") },
    { label: "$(debug-restart) Restart server", run: () => vscode.commands.executeCommand("lspLlm.restartServer") },
  );
  const picked = await vscode.window.showQuickPick(items, { title: "lsp-llm" });
  if (picked) await picked.run();
}

/** Run the server's "Add docstring" code action for the function at the cursor. */
async function addDocstring(): Promise<void> {
  const editor = vscode.window.activeTextEditor;
  if (!editor) return;
  const actions = await vscode.commands.executeCommand<vscode.CodeAction[]>(
    "vscode.executeCodeActionProvider",
    editor.document.uri,
    editor.selection,
    vscode.CodeActionKind.RefactorRewrite.value,
    10,
  );
  const action = actions?.find((a) => a.title.includes("Add docstring"));
  if (!action) {
    void vscode.window.showInformationMessage("lsp-llm: put the cursor in a function without a docstring.");
    return;
  }
  await vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title: "lsp-llm: writing a docstring…" },
    async () => {
      if (action.edit) await vscode.workspace.applyEdit(action.edit);
      if (action.command) await vscode.commands.executeCommand(action.command.command, ...(action.command.arguments ?? []));
    },
  );
}

/** Ask for an instruction and run the server's `lspLlm.rewriteSelection` command. */
async function editSelection(): Promise<void> {
  const editor = vscode.window.activeTextEditor;
  const client = current();
  if (!editor || editor.selection.isEmpty || !client) {
    void vscode.window.showInformationMessage("lsp-llm: select the code to edit first.");
    return;
  }
  const instruction = await vscode.window.showInputBox({
    prompt: "How should the selection change?",
    placeHolder: "e.g. use a list comprehension",
  });
  if (!instruction) return;
  const s = editor.selection;
  const range = { start: { line: s.start.line, character: s.start.character }, end: { line: s.end.line, character: s.end.character } };
  await vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title: "lsp-llm: editing the selection…", cancellable: true },
    (_p, token) =>
      client.sendRequest("workspace/executeCommand", {
        command: "lspLlm.rewriteSelection",
        arguments: [editor.document.uri.toString(), range, instruction],
      }, token),
  );
}

export async function deactivate(): Promise<void> {
  await controller?.dispose();
  controller = undefined;
}
