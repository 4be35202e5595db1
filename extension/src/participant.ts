/**
 * `@lsp-llm` in VS Code's own Chat view, where the editor has the chat participant API:
 * the request (with earlier turns of this participant) goes to `lspLlm/chat` and the
 * deltas are streamed into the response.
 */
import * as vscode from "vscode";
import { CancellationTokenSource } from "vscode-languageclient";
import type { LanguageClient } from "vscode-languageclient/node";
import { type ChatMessage, streamChat } from "./chatStream";

export function registerParticipant(context: vscode.ExtensionContext, client: () => LanguageClient | undefined): void {
  const api = (vscode as unknown as { chat?: typeof vscode.chat }).chat;
  if (!api?.createChatParticipant) return;
  const participant = api.createChatParticipant("lsp-llm.chat", async (request, chatContext, stream, token) => {
    const c = client();
    if (!c?.isRunning()) {
      stream.markdown("The lsp-llm server is not running; see the status bar.");
      return;
    }
    const messages: ChatMessage[] = [];
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
    const cancel = new CancellationTokenSource();
    const sub = token.onCancellationRequested(() => cancel.cancel());
    try {
      await streamChat(c, messages, ctx, (delta) => stream.markdown(delta), cancel.token);
    } finally {
      sub.dispose();
      cancel.dispose();
    }
  });
  participant.iconPath = vscode.Uri.joinPath(context.extensionUri, "media", "icon.svg");
  context.subscriptions.push(participant);
}
