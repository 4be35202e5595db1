/**
 * One `lspLlm/chat` request, streamed: the side-panel chat and the `@lsp-llm` participant
 * both ask through `streamChat`. The deltas arrive as `$/progress` on the request's
 * `partialResultToken`; cancelling the token sends `$/cancelRequest`, and the server stops
 * generating. No `vscode` import, so it is unit-tested with a stand-in client.
 */
import { type CancellationToken, ProgressType } from "vscode-jsonrpc";

export interface ChatMessage {
  role: "system" | "user" | "assistant";
  content: string;
}

export interface ChatContext {
  uri: string;
  range?: { start: { line: number; character: number }; end: { line: number; character: number } };
}

/** `lspLlm/chat`'s params and result: lsp_llm/server/wire.py, field for field (tests/test_wire.py). */
export interface ChatParams {
  messages: ChatMessage[];
  context?: ChatContext;
  partialResultToken?: string | number;
}

export interface ChatUsage {
  promptTokens: number;
  completionTokens: number;
}

export interface ChatTimings {
  queueMs: number;
  firstTokenMs: number | null;
  totalMs: number;
  tokensPerSecond: number;
  serverMs: number;
}

export interface ChatResult {
  content: string;
  finishReason: string;
  usage: ChatUsage;
  timings: ChatTimings;
}

/** What `streamChat` needs of a language client. */
export interface ChatClient {
  onProgress<P>(type: ProgressType<P>, token: string, handler: (value: P) => void): { dispose(): void };
  sendRequest<R>(method: string, params: unknown, token: CancellationToken): Promise<R>;
}

let seq = 0;

/** Ask `messages` (with optional code `context`); `onDelta` gets each streamed piece. */
export async function streamChat(
  client: ChatClient,
  messages: ChatMessage[],
  context: ChatContext | undefined,
  onDelta: (text: string) => void,
  cancel: CancellationToken,
): Promise<ChatResult> {
  const partial = `lsp-llm-chat-${++seq}`;
  const progress = client.onProgress(new ProgressType<{ delta?: string }>(), partial, (value) => {
    if (typeof value?.delta === "string") onDelta(value.delta);
  });
  try {
    const params: ChatParams = { messages, partialResultToken: partial, ...(context ? { context } : {}) };
    return await client.sendRequest<ChatResult>("lspLlm/chat", params, cancel);
  } finally {
    progress.dispose();
  }
}
