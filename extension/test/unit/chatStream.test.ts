import assert from "node:assert/strict";
import { test } from "node:test";
import { CancellationTokenSource, type ProgressType } from "vscode-jsonrpc";
import { type ChatClient, streamChat } from "../../src/chatStream";

/** A client that streams `pieces` as progress on the request's token, then answers (or fails). */
function client(pieces: unknown[], fail?: Error) {
  const sent: { method: string; params: Record<string, unknown> }[] = [];
  let live = 0;
  const handlers = new Map<string, (v: unknown) => void>();
  const c: ChatClient = {
    onProgress<P>(_type: ProgressType<P>, token: string, handler: (value: P) => void) {
      live++;
      handlers.set(token, handler as (v: unknown) => void);
      return { dispose: () => { live--; handlers.delete(token); } };
    },
    async sendRequest<R>(method: string, params: unknown): Promise<R> {
      const p = params as Record<string, unknown>;
      sent.push({ method, params: p });
      for (const piece of pieces) handlers.get(p.partialResultToken as string)?.(piece);
      if (fail) throw fail;
      return { content: "ab", finishReason: "stop" } as R;
    },
  };
  return { c, sent, live: () => live };
}

test("deltas are handed on and the progress handler is removed after the answer", async () => {
  const { c, sent, live } = client([{ delta: "a" }, { other: 1 }, { delta: "b" }]);
  const got: string[] = [];
  const messages = [{ role: "user" as const, content: "hi" }];
  const result = await streamChat(c, messages, undefined, (d) => got.push(d), new CancellationTokenSource().token);
  assert.deepEqual(got, ["a", "b"]);
  assert.equal(result.content, "ab");
  assert.equal(live(), 0);
  assert.equal(sent[0].method, "lspLlm/chat");
  assert.ok(!("context" in sent[0].params));
  await streamChat(c, messages, { uri: "file:///a.py" }, () => undefined, new CancellationTokenSource().token);
  assert.notEqual(sent[0].params.partialResultToken, sent[1].params.partialResultToken);
  assert.deepEqual(sent[1].params.context, { uri: "file:///a.py" });
});

test("a failed request also removes its progress handler", async () => {
  const { c, live } = client([{ delta: "a" }], new Error("cancelled"));
  await assert.rejects(
    streamChat(c, [{ role: "user", content: "hi" }], undefined, () => undefined, new CancellationTokenSource().token),
    /cancelled/,
  );
  assert.equal(live(), 0);
});
