"""What a `--tcp` daemon asks of and allows its clients (anyone who can reach the port).

Its token: a random secret made at start, written to a file only the
user can read, and asked of every connection in `initializationOptions.authToken` (any
process that can reach the port otherwise could use the GPU and send settings). Its model
policy (`ModelPolicy`): which models a client may have it load.

The default file is `$XDG_RUNTIME_DIR/lsp-llm/tcp-PORT.token` (a per-user folder that
lives as long as the login), else `~/.cache/lsp-llm/tcp-PORT.token`. No pygls here: the
daemon writes it, clients (`lsp-llm complete --connect`, editors' set-ups) read it.
"""

from __future__ import annotations

import hmac
import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

TOKEN_KEY = "authToken"
"""Where a client puts the token: `initializationOptions.authToken`."""


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def token_path(port: int) -> Path:
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    root = Path(runtime) if runtime else Path.home() / ".cache"
    return root / "lsp-llm" / f"tcp-{port}.token"


def create_token(path: Path) -> str:
    """A new token in `path` (mode 0600, its folder 0700), replacing an old one."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    folder = path.parent.stat()
    if folder.st_uid != os.getuid() or folder.st_mode & 0o022:
        raise PermissionError(
            f"{path.parent} is not a folder only you can write to: the token would not be "
            "safe there (use --token-file in a private folder)"
        )
    token = secrets.token_urlsafe(32)
    # mkstemp: a new file (O_EXCL, mode 0600) under an unpredictable name, then renamed:
    # readers never see a half-written token, and nobody can have opened it before.
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(token + "\n")
    os.replace(temp, path)
    return token


def read_token(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip() or None
    except (OSError, UnicodeDecodeError):
        return None


def token_matches(expected: str, given: object) -> bool:
    """Constant-time comparison (the time taken says nothing about the token)."""
    return isinstance(given, str) and hmac.compare_digest(
        expected.encode("utf-8"), given.encode("utf-8", "replace")
    )


@dataclass(frozen=True)
class ModelPolicy:
    """The models a daemon's clients may name in `model`/`draftModel`: the aliases
    (the catalogue's and `auto`), the ids the daemon's command line allows (`--allow-model`), and
    models inside its `--model-dir` folders. Anything else is refused with the same words
    whether or not it exists (a client learns nothing about the daemon's files), and the
    daemon never downloads or opens what a client chose outside these."""

    dirs: tuple[Path, ...] = ()
    ids: tuple[str, ...] = ()

    def allows(self, spec: str | None) -> bool:
        if spec is None or spec in catalogue_aliases() or spec in self.ids:
            return True
        if not os.path.isabs(spec):  # a hub id, or a path relative to the daemon's folder
            return False
        path = os.path.realpath(spec)
        return any(
            path == root or path.startswith(root.rstrip(os.sep) + os.sep)
            for root in (os.path.realpath(d) for d in self.dirs)
        )

    def describe(self) -> str:
        allowed = [*catalogue_aliases(), *self.ids]
        where = f", or a model inside {', '.join(map(str, self.dirs))}" if self.dirs else ""
        return f"{', '.join(allowed)}{where}"


def catalogue_aliases() -> tuple[str, ...]:
    """The names a daemon's client may always use: the catalogue's models and `auto`."""
    from lsp_llm.engine.load.catalogue import MODELS
    from lsp_llm.engine.load.sources import AUTO

    return (AUTO, *(m.alias for m in MODELS))
