/**
 * The side-panel conversation, held by the extension host so it survives the view being
 * hidden or re-created: messages, the reply being streamed, and what goes to the server.
 */

export type Role = "user" | "assistant";

export interface Message {
  role: Role;
  content: string;
  /** The attached code's label ("selection in a.py", "a.py"), shown above the question. */
  context?: string;
  /** How the reply ended: "stop", "length", "cancelled", "error". */
  finish?: string;
}

export class Conversation {
  readonly messages: Message[] = [];
  streaming = false;

  /** Add the user's question and an empty reply to stream into; returns the messages to
   * send (the conversation so far, without the empty reply). */
  ask(question: string, context?: string): { role: Role; content: string }[] {
    if (this.streaming) throw new Error("a reply is still streaming");
    this.messages.push({ role: "user", content: question, context });
    const wire = this.messages
      .filter((m) => m.finish !== "error")
      .map((m) => ({ role: m.role, content: m.content }));
    this.messages.push({ role: "assistant", content: "" });
    this.streaming = true;
    return wire;
  }

  private get reply(): Message {
    const last = this.messages[this.messages.length - 1];
    if (!last || last.role !== "assistant") throw new Error("no reply is streaming");
    return last;
  }

  append(delta: string): void {
    if (this.streaming) this.reply.content += delta;
  }

  /** End the reply; `content` (the server's whole reply) wins over the streamed deltas. */
  finish(reason: string, content?: string): void {
    if (!this.streaming) return;
    const reply = this.reply;
    if (content !== undefined) reply.content = content;
    reply.finish = reason;
    this.streaming = false;
  }

  clear(): void {
    this.messages.length = 0;
    this.streaming = false;
  }
}
