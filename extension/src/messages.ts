/**
 * The messages between the chat webview (webview/chat.ts) and the extension host
 * (src/chatView.ts), typed once for both sides as discriminated unions on `type`.
 */
import type { Message } from "./conversation";

export type Attach = "none" | "selection" | "file";

/** Extension host to webview. */
export type HostMessage =
  | { type: "state"; messages: Message[]; streaming: boolean; attach: Attach }
  | { type: "delta"; text: string };

/** Webview to extension host. */
export type ViewMessage =
  | { type: "ready" }
  | { type: "ask"; text: string; attach: Attach }
  | { type: "attach"; attach: Attach }
  | { type: "stop" }
  | { type: "new" }
  | { type: "copy"; text: string }
  | { type: "insert"; text: string };

const ATTACH: readonly string[] = ["none", "selection", "file"];

/** A message from the webview as the host may trust it (anything else: undefined). */
export function readViewMessage(value: unknown): ViewMessage | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const m = value as Record<string, unknown>;
  const text = typeof m.text === "string" ? m.text : undefined;
  const attach = typeof m.attach === "string" && ATTACH.includes(m.attach) ? (m.attach as Attach) : undefined;
  switch (m.type) {
    case "ready":
    case "stop":
    case "new":
      return { type: m.type };
    case "ask":
      return text !== undefined && attach ? { type: "ask", text, attach } : undefined;
    case "attach":
      return attach ? { type: "attach", attach } : undefined;
    case "copy":
    case "insert":
      return text !== undefined ? { type: m.type, text } : undefined;
    default:
      return undefined;
  }
}
