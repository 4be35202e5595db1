/**
 * The extension's `lspLlm.*` settings: the nested camelCase object the server reads as
 * `initializationOptions` / `workspace/didChangeConfiguration`, and the command that
 * starts the server. Plain functions (no `vscode` import) so they are unit-tested.
 */

import manifest from "../package.json";

/** Settings that only configure the client; never sent to the server. */
export const CLIENT_ONLY = new Set(["serverCommand", "pythonPath", "setup.torchIndexUrl"]);

interface Property {
  type?: string | string[];
}

const PROPERTIES = manifest.contributes.configuration.properties as Record<string, Property>;

/** Every server setting, as its dotted key under `lspLlm.`: the contributed settings
 * (generated from the server's schema, `python -m lsp_llm.settings_schema`) that are not
 * client-only. */
export const SERVER_KEYS: readonly string[] = Object.keys(PROPERTIES)
  .map((key) => key.replace(/^lspLlm\./, ""))
  .filter((key) => !CLIENT_ONLY.has(key));

export type Lookup = (key: string) => unknown;

/** Settings whose unset value is sent as null (the server's "use the default model", "no
 * remote engine"): clearing one must reach the server, not leave its previous value. Those
 * the schema types as nullable. */
export const NULLABLE = new Set(
  SERVER_KEYS.filter((key) => {
    const type = PROPERTIES[`lspLlm.${key}`].type;
    return Array.isArray(type) && type.includes("null");
  }),
);

/** The nested settings object for the server. An unset model is sent as null (so clearing
 * the setting goes back to the default model); other unset values are left out. */
export function serverSettings(get: Lookup): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of SERVER_KEYS) {
    let value = get(key);
    if (value === undefined || value === "") value = null;
    if (value === null && !NULLABLE.has(key)) continue;
    const parts = key.split(".");
    let node = out;
    for (const part of parts.slice(0, -1)) {
      node = (node[part] ??= {}) as Record<string, unknown>;
    }
    node[parts[parts.length - 1]] = value;
  }
  return out;
}

export interface ServerCommand {
  command: string;
  args: string[];
}

/** `serverCommand` when set, otherwise `<pythonPath> -m lsp_llm serve`. */
export function serverCommand(get: Lookup): ServerCommand {
  const custom = get("serverCommand");
  if (Array.isArray(custom) && custom.length > 0 && custom.every((p) => typeof p === "string")) {
    return { command: custom[0], args: custom.slice(1) };
  }
  const python = typeof get("pythonPath") === "string" && get("pythonPath") ? String(get("pythonPath")) : "python3";
  return { command: python, args: ["-m", "lsp_llm", "serve"] };
}

/** Why the server could not start, when its output says Python or the package is missing
 * (then the user is offered the set-up instructions), else undefined. */
export function missingInstall(output: string): string | undefined {
  if (/ENOENT|command not found|No such file or directory/.test(output)) {
    return "the server command or Python interpreter was not found";
  }
  if (/No module named '?lsp_llm'?/.test(output)) {
    return "the lsp-llm package is not installed for this Python";
  }
  return undefined;
}

/**
 * The answer to the server's `workspace/configuration` request: for the `lspLlm` section
 * only the server's own settings, exactly as in `initializationOptions` (VS Code's answer
 * would also hold `serverCommand` and `pythonPath`, which the server reports as unknown);
 * other sections as VS Code answered them.
 */
export function answerConfiguration(
  items: readonly { section?: string }[],
  answered: readonly unknown[],
  get: Lookup,
): unknown[] {
  return items.map((item, i) => (item.section === "lspLlm" ? serverSettings(get) : answered[i]));
}
