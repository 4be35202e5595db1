/**
 * The side-panel chat: a webview view showing the conversation (markdown rendered in the
 * webview by markdown-it), streaming replies from `lspLlm/chat` partial results, a Stop
 * button that cancels the request (`$/cancelRequest`), and "include selection / current
 * file" context.
 */
import * as vscode from "vscode";
import { CancellationTokenSource } from "vscode-languageclient";
import type { LanguageClient } from "vscode-languageclient/node";
import { type ChatContext, streamChat } from "./chatStream";
import { Conversation } from "./conversation";
import { type Attach, type HostMessage, readViewMessage, type ViewMessage } from "./messages";


/** The editor the chat works with: the active one, or (while the chat view has focus and
 * no editor is active) the first visible one. */
function chatEditor(): vscode.TextEditor | undefined {
  return vscode.window.activeTextEditor ?? vscode.window.visibleTextEditors[0];
}

export class ChatViewProvider implements vscode.WebviewViewProvider {
  static readonly viewId = "lspLlm.chat";
  private view?: vscode.WebviewView;
  private readonly conversation = new Conversation();
  private cancel?: CancellationTokenSource;
  private attach: Attach = "selection";

  constructor(
    private readonly extensionUri: vscode.Uri,
    private readonly client: () => LanguageClient | undefined,
    private readonly log: vscode.OutputChannel,
  ) {}

  resolveWebviewView(view: vscode.WebviewView): void {
    this.view = view;
    const media = vscode.Uri.joinPath(this.extensionUri, "media");
    const out = vscode.Uri.joinPath(this.extensionUri, "out");
    view.webview.options = { enableScripts: true, localResourceRoots: [media, out] };
    const script = view.webview.asWebviewUri(vscode.Uri.joinPath(out, "webview.js"));
    const style = view.webview.asWebviewUri(vscode.Uri.joinPath(media, "chat.css"));
    const nonce = Math.random().toString(36).slice(2);
    view.webview.html = `<!DOCTYPE html><html><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src ${view.webview.cspSource}; script-src 'nonce-${nonce}';">
<link rel="stylesheet" href="${style}"></head><body>
<div id="messages" aria-live="polite"></div>
<form id="ask">
  <textarea id="question" rows="3" placeholder="Ask about your code (Enter to send, Shift+Enter for a new line)"></textarea>
  <div class="row">
    <select id="attach" title="Code sent with the question">
      <option value="selection">Include selection</option>
      <option value="file">Include current file</option>
      <option value="none">No code</option>
    </select>
    <button type="button" id="new" class="secondary" title="Start a new conversation">New chat</button>
    <button type="button" id="stop" class="secondary" hidden>Stop</button>
    <button type="submit" id="send">Send</button>
  </div>
</form>
<script nonce="${nonce}" src="${script}"></script></body></html>`;
    view.webview.onDidReceiveMessage((raw: unknown) => {
      const msg = readViewMessage(raw);
      if (msg) void this.onMessage(msg);
      else this.log.appendLine(`chat view: ignored a malformed message ${JSON.stringify(raw)?.slice(0, 200)}`);
    });
    view.onDidChangeVisibility(() => view.visible && this.render());
  }

  private post(msg: HostMessage): void {
    void this.view?.webview.postMessage(msg);
  }

  private render(): void {
    this.post({
      type: "state",
      messages: this.conversation.messages,
      streaming: this.conversation.streaming,
      attach: this.attach,
    });
  }

  private async onMessage(msg: ViewMessage): Promise<void> {
    switch (msg.type) {
      case "ready":
        return this.render();
      case "ask":
        this.attach = msg.attach;
        return this.ask(msg.text);
      case "stop":
        return this.stop();
      case "new":
        return this.newChat();
      case "attach":
        this.attach = msg.attach;
        return;
      case "copy":
        await vscode.env.clipboard.writeText(msg.text);
        void vscode.window.setStatusBarMessage("lsp-llm: code copied", 2000);
        return;
      case "insert": {
        const editor = chatEditor();
        if (!editor) {
          void vscode.window.showWarningMessage("lsp-llm: open an editor to insert the code into.");
          return;
        }
        await editor.edit((b) => b.replace(editor.selection, msg.text));
        return;
      }
    }
  }

  /** Open the view and ask `question` with the editor's selection (or file) attached. */
  async askFromEditor(question: string, attach: Attach): Promise<void> {
    await vscode.commands.executeCommand(`${ChatViewProvider.viewId}.focus`);
    this.attach = attach;
    await this.ask(question);
  }

  newChat(): void {
    this.stop();
    this.conversation.clear();
    this.render();
  }

  stop(): void {
    this.cancel?.cancel();
  }

  private codeContext(): { context?: ChatContext; label?: string } {
    const editor = chatEditor();
    if (!editor || this.attach === "none") return {};
    const doc = editor.document;
    const name = vscode.workspace.asRelativePath(doc.uri);
    if (this.attach === "selection" && !editor.selection.isEmpty) {
      const s = editor.selection;
      return {
        context: {
          uri: doc.uri.toString(),
          range: { start: { line: s.start.line, character: s.start.character }, end: { line: s.end.line, character: s.end.character } },
        },
        label: `selection in ${name}:${s.start.line + 1}-${s.end.line + 1}`,
      };
    }
    return { context: { uri: doc.uri.toString() }, label: name };
  }

  private async ask(question: string): Promise<void> {
    const text = question.trim();
    const client = this.client();
    if (!text || this.conversation.streaming) return;
    if (!client || !client.isRunning()) {
      void vscode.window.showErrorMessage("lsp-llm: the server is not running (see the status bar).");
      return;
    }
    const { context, label } = this.codeContext();
    const messages = this.conversation.ask(text, label);
    this.render();
    const cancel = (this.cancel = new CancellationTokenSource());
    let pending = "";
    let flushTimer: NodeJS.Timeout | undefined;
    const flush = () => {
      flushTimer = undefined;
      if (!pending) return;
      this.conversation.append(pending);
      this.post({ type: "delta", text: pending });
      pending = "";
    };
    const onDelta = (delta: string) => {
      pending += delta;
      // at most ~30 updates a second: a fast model must not flood the webview
      flushTimer ??= setTimeout(flush, 33);
    };
    try {
      const result = await streamChat(client, messages, context, onDelta, cancel.token);
      flush();
      this.conversation.finish(result.finishReason, result.content);
    } catch (err) {
      flush();
      if (cancel.token.isCancellationRequested) {
        this.conversation.finish("cancelled");
      } else {
        const message = err instanceof Error ? err.message : String(err);
        this.log.appendLine(`chat failed: ${message}`);
        this.conversation.append(`\n\n_Error: ${message}_`);
        this.conversation.finish("error");
      }
    } finally {
      if (flushTimer) clearTimeout(flushTimer);
      cancel.dispose();
      this.cancel = undefined;
      this.render();
    }
  }
}
