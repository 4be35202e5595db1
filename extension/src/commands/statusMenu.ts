/** The status bar item's menu. */
import * as vscode from "vscode";
import { selectModel } from "./selectModel";

/** The status bar item's menu: the model, inline suggestions on or off (everywhere, or for
 * the current language), the chat, the log, a restart. */
export async function statusMenu(): Promise<void> {
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
