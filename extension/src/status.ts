/**
 * The status bar item's text, tooltip and colour from the server's `lspLlm/status`
 * notification (and from the client's own state before the server speaks).
 */

export interface ServerStatus {
  state: "loading" | "ready" | "busy" | "error" | "stopped" | "starting";
  model?: string | null;
  draftModel?: string | null;
  device?: string | null;
  quantization?: string | null;
  message?: string | null;
  percentage?: number | null;
}

export interface StatusView {
  text: string;
  tooltip: string;
  error: boolean;
}

function shortName(model?: string | null): string {
  if (!model) return "model";
  const parts = model.replace(/[\\/]+$/, "").split(/[\\/]/);
  return parts[parts.length - 1];
}

export function statusView(s: ServerStatus): StatusView {
  const model = shortName(s.model);
  const where = [s.device, s.quantization && s.quantization !== "none" ? s.quantization : null]
    .filter(Boolean)
    .join(", ");
  const draft = s.draftModel ? `\nDraft: ${s.draftModel}` : "";
  const detail = `${s.model ?? ""}${where ? ` (${where})` : ""}${draft}`;
  switch (s.state) {
    case "starting":
      return { text: "$(loading~spin) lsp-llm", tooltip: "Starting the server…", error: false };
    case "loading": {
      const pct = typeof s.percentage === "number" ? ` ${Math.round(s.percentage)}%` : "";
      return {
        text: `$(loading~spin) lsp-llm${pct}`,
        tooltip: `Loading ${detail}${s.message ? `\n${s.message}` : ""}`,
        error: false,
      };
    }
    case "ready":
      return {
        text: `$(sparkle) ${model}${where ? ` (${where})` : ""}`,
        tooltip: `Ready: ${detail}\nClick for the lsp-llm menu`,
        error: false,
      };
    case "busy":
      return { text: `$(sync~spin) ${model}`, tooltip: `Generating: ${detail}`, error: false };
    case "stopped":
      return { text: "$(circle-slash) lsp-llm", tooltip: s.message ?? "The server is stopped", error: true };
    case "error":
    default:
      return {
        text: "$(error) lsp-llm",
        tooltip: `${s.message ?? "The server reported an error"}\nClick for the lsp-llm menu (log, model, restart)`,
        error: true,
      };
  }
}
