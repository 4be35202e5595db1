"""What a server session knows about its connection (`Connection`): over stdio, the one
editor that started the process; in a `--tcp` daemon (`daemon.py`), one of several
editors, who must show the daemon's token and may not read files through it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Connection:
    daemon: bool = False
    """One editor's session in a `--tcp` daemon: daemon-only settings are refused, and
    extra context comes from open documents only, never the disk."""
    auth_token: str | None = None
    """The daemon's token, which this connection's `initialize` must carry (None: no
    token asked, stdio)."""

    @classmethod
    def of_daemon(cls, token: str) -> Connection:
        return cls(daemon=True, auth_token=token)

    @property
    def reads_disk(self) -> bool:
        """Whether extra context may read workspace files the editor has not opened."""
        return not self.daemon
