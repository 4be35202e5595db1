"""Start-up and configuration: settings from `initializationOptions`, then
`workspace/configuration`; model load after `initialized`; live changes through
`workspace/didChangeConfiguration` (a model change reloads it, other changes apply at once)."""

from __future__ import annotations

import logging

from lsprotocol import types

from lsp_llm.server.app import CONFIG_SECTION, LspLlmServer
from lsp_llm.server.auth import TOKEN_KEY
from lsp_llm.server.host import model_settings_changed

logger = logging.getLogger(__name__)


def register(server: LspLlmServer) -> None:
    @server.feature(types.INITIALIZE)
    def initialize(ls: LspLlmServer, params: types.InitializeParams) -> None:
        options = params.initialization_options
        if isinstance(options, dict):  # the daemon's token (checked already) is no setting
            options = {k: v for k, v in options.items() if k != TOKEN_KEY}
        ls.apply_settings(options, "initializationOptions")

    @server.feature(types.INITIALIZED)
    async def initialized(ls: LspLlmServer, params: types.InitializedParams) -> None:
        pulled = await ls.pull_configuration()
        if pulled is not None:
            ls.apply_settings(pulled, f"configuration section {CONFIG_SECTION!r}")
        await ls.reload()

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    async def did_change_configuration(
        ls: LspLlmServer, params: types.DidChangeConfigurationParams
    ) -> None:
        # Settings pushed in the notification apply before anything else is handled, so a
        # request sent right after it sees them; only an empty push makes us pull.
        raw = params.settings
        data = raw.get(CONFIG_SECTION, raw) if isinstance(raw, dict) else None
        if not data:
            data = await ls.pull_configuration()
        if not data:
            return
        old = ls.settings
        new = ls.apply_settings(data, "didChangeConfiguration")
        if model_settings_changed(old, new):
            logger.info("model settings changed: reloading")
            await ls.reload()
