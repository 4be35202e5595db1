/**
 * The VS Code client of `lsp-llm serve`: a `ServerController` starts the server (restarting
 * it with back-off when it crashes) and shows its state in the status bar; this wires ghost
 * text (LSP inline completion, through vscode-languageclient), the side-panel chat, the
 * `@lsp-llm` chat participant and the commands (each in `commands/`). The model logic stays
 * in the server.
 */
import * as vscode from "vscode";
import type { LanguageClient } from "vscode-languageclient/node";
import { ChatViewProvider } from "./chatView";
import { addDocstring, editSelection } from "./commands/editing";
import { installServer } from "./commands/installServer";
import { selectModel } from "./commands/selectModel";
import { statusMenu } from "./commands/statusMenu";
import { ServerController } from "./controller";
import { registerParticipant } from "./participant";
import { shippedServer } from "./setup";

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
    vscode.commands.registerCommand("lspLlm.editSelection", () => editSelection(current)),
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

export async function deactivate(): Promise<void> {
  await controller?.dispose();
  controller = undefined;
}
