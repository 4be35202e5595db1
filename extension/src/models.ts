/**
 * "lsp-llm: Select Model": the choices offered and the settings a choice writes. Plain
 * functions (no `vscode` import) so they are unit-tested; the quick pick lives in
 * extension.ts.
 */

export type ChoiceKind = "default" | "catalogue" | "cached" | "typed" | "remote";

export interface ModelChoice {
  label: string;
  description: string;
  kind: ChoiceKind;
  /** The `lspLlm.model` value it writes (null: the server's default). */
  model?: string | null;
  /** Whether it is what the settings hold now. */
  current: boolean;
  /** A catalogue model that must be installed first (`lsp-llm models install`). */
  install?: boolean;
}

/** One row of `lsp-llm models --json`: the server's catalogue of known models. */
export interface CatalogueRow {
  alias: string;
  title: string;
  summary: string;
  installed: boolean;
  size: number;
  licence: string;
  default: boolean;
}

/** What a choice writes to the `lspLlm` settings (`undefined`: leave as it is). */
export interface ModelSettings {
  model?: string | null;
  "backend.url"?: string | null;
}

export interface Current {
  model: string | null;
  backendUrl: string | null;
}

/** The catalogue as the server printed it (`lsp-llm models --json`); rows that are not
 * shaped as expected are left out. */
export function parseCatalogue(stdout: string): CatalogueRow[] {
  let data: unknown;
  try {
    data = JSON.parse(stdout);
  } catch {
    return [];
  }
  if (!Array.isArray(data)) return [];
  return data.filter(
    (r): r is CatalogueRow =>
      typeof r === "object" &&
      r !== null &&
      typeof r.alias === "string" &&
      typeof r.title === "string" &&
      typeof r.summary === "string" &&
      typeof r.installed === "boolean" &&
      typeof r.size === "number" &&
      typeof r.licence === "string" &&
      typeof r.default === "boolean",
  );
}

/** The server command with `models ...` in place of `serve ...` (the same Python and
 * package), or undefined when the command has no `serve` to replace. */
export function modelsCommand(server: { command: string; args: string[] }, ...args: string[]): { command: string; args: string[] } | undefined {
  const at = server.args.indexOf("serve");
  return at < 0 ? undefined : { command: server.command, args: [...server.args.slice(0, at), "models", ...args] };
}

/** One line of `lsp-llm models install NAME --json`: progress, the result, or an error. */
export type InstallLine = { progress: number; message: string } | { installed: string; path: string } | { error: string };

export function parseInstallLine(line: string): InstallLine | undefined {
  try {
    const v = JSON.parse(line);
    if (typeof v?.progress === "number" && typeof v?.message === "string") return { progress: v.progress, message: v.message };
    if (typeof v?.installed === "string" && typeof v?.path === "string") return { installed: v.installed, path: v.path };
    if (typeof v?.error === "string") return { error: v.error };
  } catch {
    // not a JSON line (pip's own output): ignored
  }
  return undefined;
}

function megabytes(size: number): string {
  return `${Math.round(size / 1e6).toLocaleString("en")} MB`;
}

/** Where the Hugging Face cache keeps models: $HF_HUB_CACHE, $HF_HOME/hub, else
 * ~/.cache/huggingface/hub (the hub library's own order). */
export function hubCacheDir(env: Record<string, string | undefined>, home: string): string {
  if (env.HF_HUB_CACHE) return env.HF_HUB_CACHE;
  if (env.HF_HOME) return `${env.HF_HOME}/hub`;
  const cache = env.XDG_CACHE_HOME || `${home}/.cache`;
  return `${cache}/huggingface/hub`;
}

/** Hub ids of the models in the cache, from its folder names (`models--org--name`). */
export function cachedModels(entries: string[]): string[] {
  return entries
    .filter((e) => e.startsWith("models--"))
    .map((e) => e.slice("models--".length).split("--").join("/"))
    .filter((id) => /^[\w.-]+\/[\w.-]+$/.test(id))
    .sort((a, b) => a.localeCompare(b));
}

/** The quick pick's model entries, the current one marked: the automatic choice, the
 * catalogue (with what installing costs), the Hugging Face cache, one typed in, a remote
 * engine. */
export function modelChoices(cached: string[], now: Current, catalogue: CatalogueRow[] = []): ModelChoice[] {
  const local = now.backendUrl === null;
  const auto = catalogue.find((r) => r.default);
  const out: ModelChoice[] = [
    {
      label: "Automatic (default)",
      description: auto ? `now ${auto.title}: the best installed model for this machine` : "the best installed model for this machine",
      kind: "default",
      model: null,
      current: local && (now.model === null || now.model === "auto"),
    },
  ];
  for (const row of catalogue) {
    const state = row.installed ? "installed" : row.size ? `installs ${megabytes(row.size)}` : "not installed";
    out.push({
      label: row.title,
      description: `${row.alias} · ${row.licence} · ${state} · ${row.summary}`,
      kind: "catalogue",
      model: row.alias,
      current: local && now.model === row.alias,
      install: !row.installed,
    });
  }
  for (const id of cached) {
    out.push({ label: id, description: "in the Hugging Face cache", kind: "cached", model: id, current: local && now.model === id });
  }
  out.push({
    label: "Hugging Face id or GGUF file…",
    description: now.model && !out.some((c) => c.current) && local ? `now: ${now.model}` : "type it",
    kind: "typed",
    current: false,
  });
  out.push({
    label: "Remote engine (OpenAI-compatible URL)…",
    description: now.backendUrl ? `now: ${now.backendUrl}` : "vLLM, TGI, llama.cpp's server, Ollama",
    kind: "remote",
    current: now.backendUrl !== null,
  });
  return out;
}

/** Why a typed model is not one the server can load, or undefined when it may be. */
export function checkTypedModel(text: string): string | undefined {
  const value = text.trim();
  if (!value) return "Type a Hugging Face id (org/name), org/repo:FILE.gguf, a folder or a .gguf file";
  if (/^[\w.-]+\/[\w.-]+(:[\w.-]+\.gguf)?$/.test(value)) return undefined;
  if (value.startsWith("/") || value.startsWith("~") || /^[A-Za-z]:[\\/]/.test(value)) return undefined;
  return "Not a Hugging Face id (org/name), org/repo:FILE.gguf, or an absolute path";
}

/** Why a typed engine URL is not usable, or undefined when it is. */
export function checkEngineUrl(text: string): string | undefined {
  return /^https?:\/\/[^\s/?#]+(\/[^\s?#]*)?$/.test(text.trim())
    ? undefined
    : "An http(s) URL such as http://127.0.0.1:8080/v1";
}

/** The settings a choice writes: a local model clears the engine URL, an engine keeps the
 * model (it then names the tokenizer prompts are built with). */
export function settingsFor(choice: ModelChoice, typed?: string): ModelSettings {
  switch (choice.kind) {
    case "typed":
      return { model: typed?.trim() ?? null, "backend.url": null };
    case "remote":
      return { "backend.url": typed?.trim() ?? null };
    default:
      return { model: choice.model ?? null, "backend.url": null };
  }
}
