/** The editor commands that run the server's code actions: "Add Docstring" (found by its
 * code action kind, never by its title) and "Edit Selection with an Instruction…". */
import * as vscode from "vscode";
import type { LanguageClient } from "vscode-languageclient/node";

/** The server's code action kinds (lsp_llm/server/codeactions.py). */
export const DOCSTRING_KIND = vscode.CodeActionKind.RefactorRewrite.append("lspLlm").append("docstring");

/** Run the server's "Add docstring" code action for the function at the cursor. */
export async function addDocstring(): Promise<void> {
  const editor = vscode.window.activeTextEditor;
  if (!editor) return;
  const actions = await vscode.commands.executeCommand<vscode.CodeAction[]>(
    "vscode.executeCodeActionProvider",
    editor.document.uri,
    editor.selection,
    DOCSTRING_KIND.value,
    10,
  );
  const action = actions?.find((a) => a.kind !== undefined && DOCSTRING_KIND.contains(a.kind));
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
export async function editSelection(current: () => LanguageClient | undefined): Promise<void> {
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
