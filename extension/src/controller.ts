/**
 * `ServerController`: owns the language client of `lsp-llm serve`, its restart policy (back
 * off after a crash, give up after repeated ones) and the status bar item that shows the
 * server's state. Disposing it stops the server.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import * as vscode from "vscode";
import {
  CloseAction,
  DidChangeConfigurationNotification,
  ErrorAction,
  LanguageClient,
  type LanguageClientOptions,
  type ServerOptions,
  State,
} from "vscode-languageclient/node";
import { RestartPolicy } from "./restart";
import { answerConfiguration, type Lookup, missingInstall, serverCommand, serverSettings } from "./settings";
import { type ServerStatus, statusView } from "./status";

/** The output channel the client writes the server's stderr to: the log, whose last
 * few thousand characters are also kept to explain a server that fails to start. */
class TailChannel implements vscode.LogOutputChannel {
  tail = "";
  constructor(private readonly log: vscode.LogOutputChannel) {}
  private keep(value: string): void {
    this.tail = (this.tail + value).slice(-4000);
  }
  get name(): string {
    return this.log.name;
  }
  get logLevel(): vscode.LogLevel {
    return this.log.logLevel;
  }
  get onDidChangeLogLevel(): vscode.Event<vscode.LogLevel> {
    return this.log.onDidChangeLogLevel;
  }
  append(value: string): void {
    this.keep(value);
    this.log.append(value);
  }
  appendLine(value: string): void {
    this.keep(`${value}\n`);
    this.log.appendLine(value);
  }
  replace(value: string): void {
    this.tail = value.slice(-4000);
    this.log.replace(value);
  }
  trace(message: string, ...args: unknown[]): void {
    this.log.trace(message, ...args);
  }
  debug(message: string, ...args: unknown[]): void {
    this.log.debug(message, ...args);
  }
  info(message: string, ...args: unknown[]): void {
    this.keep(`${message}\n`);
    this.log.info(message, ...args);
  }
  warn(message: string, ...args: unknown[]): void {
    this.keep(`${message}\n`);
    this.log.warn(message, ...args);
  }
  error(error: string | Error, ...args: unknown[]): void {
    this.keep(`${error instanceof Error ? error.message : error}\n`);
    this.log.error(error, ...args);
  }
  clear(): void {
    this.log.clear();
  }
  show(columnOrPreserve?: vscode.ViewColumn | boolean, preserveFocus?: boolean): void {
    this.log.show(typeof columnOrPreserve === "boolean" ? columnOrPreserve : preserveFocus);
  }
  hide(): void {
    this.log.hide();
  }
  dispose(): void {
    // the log belongs to the extension
  }
}

export class ServerController implements vscode.Disposable {
  private client?: LanguageClient;
  private restartTimer?: NodeJS.Timeout;
  private stopping = false;
  private readonly policy = new RestartPolicy();
  private readonly status: vscode.StatusBarItem;
  private readonly output: TailChannel;

  constructor(
    private readonly log: vscode.LogOutputChannel,
    private readonly get: Lookup,
    private readonly onSetupNeeded: (why: string) => Promise<void>,
  ) {
    this.output = new TailChannel(log);
    this.status = vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Right, 100);
    this.status.command = "lspLlm.statusMenu";
    this.status.name = "lsp-llm";
  }

  /** The running client, if any (the chat and the participant ask through it). */
  get current(): LanguageClient | undefined {
    return this.client;
  }

  private show(s: ServerStatus): void {
    const view = statusView(s);
    this.status.text = view.text;
    this.status.tooltip = view.tooltip;
    this.status.backgroundColor = view.error ? new vscode.ThemeColor("statusBarItem.errorBackground") : undefined;
    this.status.show();
  }

  /** Why the server cannot start (Python or the package missing), found before starting
   * it: a server that exits at once would otherwise be restarted until the policy gives
   * up, and the user told only that it "kept crashing". */
  private probe(command: string, args: string[]): string | undefined {
    if (args[0] === "-m" && args[1] === "lsp_llm") {
      const run = spawnSync(command, ["-c", "import lsp_llm"], { encoding: "utf8", timeout: 30000 });
      if (run.error) return missingInstall(String(run.error.message)) ?? String(run.error.message);
      if (run.status !== 0) return missingInstall(run.stderr ?? "") ?? `${command} failed: ${(run.stderr ?? "").trim().slice(-300)}`;
      return undefined;
    }
    if (path.isAbsolute(command) && !fs.existsSync(command)) return missingInstall("ENOENT");
    return undefined;
  }

  async start(): Promise<void> {
    if (this.restartTimer) clearTimeout(this.restartTimer);
    const { command, args } = serverCommand(this.get);
    const missing = this.probe(command, args);
    if (missing) {
      this.log.appendLine(`cannot start ${command} ${args.join(" ")}: ${missing}`);
      this.show({ state: "error", message: missing });
      await this.onSetupNeeded(missing);
      return;
    }
    const serverOptions: ServerOptions = {
      command,
      args,
      options: { env: { ...process.env, PYTHONUNBUFFERED: "1" } },
    };
    const clientOptions: LanguageClientOptions = {
      documentSelector: [{ scheme: "file" }, { scheme: "untitled" }],
      initializationOptions: serverSettings(this.get),
      middleware: {
        workspace: {
          configuration: async (params, token, next) => {
            const answered = await next(params, token);
            return Array.isArray(answered) ? answerConfiguration(params.items, answered, this.get) : answered;
          },
        },
      },
      outputChannel: this.output,
      errorHandler: {
        error: () => ({ action: ErrorAction.Continue }),
        closed: () => {
          if (!this.stopping) this.scheduleRestart();
          return { action: CloseAction.DoNotRestart, handled: true };
        },
      },
    };
    const c = new LanguageClient("lspLlm", "lsp-llm", serverOptions, clientOptions);
    this.client = c;
    c.onNotification("lspLlm/status", (s: ServerStatus) => {
      if (s.state === "ready") this.policy.reset();
      this.show(s);
    });
    this.show({ state: "starting" });
    this.policy.started(Date.now());
    this.output.tail = "";
    try {
      await c.start();
    } catch (err) {
      const message = `${err instanceof Error ? err.message : String(err)}\n${this.output.tail}`;
      this.log.appendLine(`could not start ${command} ${args.join(" ")}: ${message}`);
      const why = missingInstall(message);
      this.show({ state: "error", message: why ?? message });
      if (why) await this.onSetupNeeded(why);
    }
  }

  /** Stop the server and start it again (a user's restart: the crash count starts over). */
  async restart(): Promise<void> {
    this.policy.reset();
    await this.stop();
    await this.start();
  }

  /** Send changed server settings to the running server. */
  async settingsChanged(): Promise<void> {
    if (this.client?.state !== State.Running) return;
    await this.client.sendNotification(DidChangeConfigurationNotification.type, {
      settings: { lspLlm: serverSettings(this.get) },
    });
  }

  private scheduleRestart(): void {
    const delay = this.policy.crashed(Date.now());
    if (delay === undefined) {
      this.show({ state: "stopped", message: "The server kept crashing; see the log. Run “lsp-llm: Restart Server” to try again." });
      void vscode.window
        .showErrorMessage("lsp-llm: the server kept crashing and was not restarted.", "Show log")
        .then((c) => c && this.log.show());
      return;
    }
    this.log.appendLine(`server stopped unexpectedly; restarting in ${delay / 1000}s`);
    this.show({ state: "starting" });
    this.restartTimer = setTimeout(() => void this.start(), delay);
  }

  private async stop(): Promise<void> {
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.stopping = true;
    await this.client?.stop().catch(() => undefined);
    this.stopping = false;
  }

  async dispose(): Promise<void> {
    await this.stop();
    this.status.dispose();
  }
}
