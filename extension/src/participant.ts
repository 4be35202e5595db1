/**
 * `@lsp-llm` in VS Code's own Chat view, where the editor has the chat participant API:
 * the request (with earlier turns of this participant) goes to `lspLlm/chat` and the
 * deltas are streamed into the response.
 */
import * as vscode from "vscode";
import { CancellationTokenSource, ProgressType } from "vscode-languageclient";
import type { LanguageClient } from "vscode-languageclient/node";

export function registerParticipant(context: vscode.ExtensionContext, client: () => LanguageClient | undefined): void {
  const api = (vscode as unknown as { chat?: typeof vscode.chat }).chat;
  if (!api?.createChatParticipant) return;
  let seq = 0;
  const participant = api.createChatParticipant("lsp-llm.chat", async (request, chatContext, stream, token) => {
    const c = client();
    if (!c?.isRunning()) {
      stream.markdown("The lsp-llm server is not running; see the status bar.");
      return;
    }
    const messages: { role: string; content: string }[] = [];
    for (const turn of chatContext.history) {
      if (turn instanceof vscode.ChatRequestTurn) messages.push({ role: "user", content: turn.prompt });
      else if (turn instanceof vscode.ChatResponseTurn) {
        const text = turn.response
          .map((p) => (p instanceof vscode.ChatResponseMarkdownPart ? p.value.value : ""))
          .join("");
        messages.push({ role: "assistant", content: text });
      }
    }
    messages.push({ role: "user", content: request.prompt });
    const editor = vscode.window.activeTextEditor;
    const ctx = editor ? { uri: editor.document.uri.toString() } : undefined;
    const partial = `lsp-llm-participant-${++seq}`;
    const cancel = new CancellationTokenSource();
    const sub = token.onCancellationRequested(() => cancel.cancel());
    const progress = c.onProgress(new ProgressType<{ delta?: string }>(), partial, (v) => {
      if (typeof v?.delta === "string") stream.markdown(v.delta);
    });
    try {
      await c.sendRequest("lspLlm/chat", { messages, partialResultToken: partial, ...(ctx ? { context: ctx } : {}) }, cancel.token);
    } finally {
      progress.dispose();
      sub.dispose();
      cancel.dispose();
    }
  });
  participant.iconPath = vscode.Uri.joinPath(context.extensionUri, "media", "icon.svg");
  context.subscriptions.push(participant);
}
