"""Which language a document is in, as LSP language ids (`python`, `typescriptreact`, ...):
the client's `languageId` when it is one we know, else the file's extension. Neovim
without filetype detection sends `""`, and eglot derives ids from major modes
(`python-ts-mode` gives `python-ts`), so the id alone is not enough."""

from __future__ import annotations

BY_EXTENSION = {
    "py": "python",
    "pyi": "python",
    "js": "javascript",
    "mjs": "javascript",
    "cjs": "javascript",
    "jsx": "javascriptreact",
    "ts": "typescript",
    "mts": "typescript",
    "cts": "typescript",
    "tsx": "typescriptreact",
    "go": "go",
    "rs": "rust",
    "java": "java",
    "c": "c",
    "h": "c",
    "cc": "cpp",
    "cpp": "cpp",
    "cxx": "cpp",
    "hpp": "cpp",
    "hh": "cpp",
    "hxx": "cpp",
    "cs": "csharp",
    "kt": "kotlin",
    "kts": "kotlin",
    "swift": "swift",
    "scala": "scala",
    "php": "php",
    "rb": "ruby",
    "lua": "lua",
    "sql": "sql",
    "hs": "haskell",
    "sh": "shellscript",
    "bash": "shellscript",
    "zsh": "shellscript",
}
"""File extensions (lower case) to LSP language ids."""

KNOWN = frozenset(BY_EXTENSION.values())

ALIASES = {
    "py": "python",
    "python3": "python",
    "js": "javascript",
    "ts": "typescript",
    "c++": "cpp",
    "cs": "csharp",
    "sh": "shellscript",
    "bash": "shellscript",
    "golang": "go",
    "rustic": "rust",
    "js2": "javascript",
    "rjsx": "javascriptreact",
    "tsx": "typescriptreact",
    "typescript-tsx": "typescriptreact",
    "c-or-c++": "cpp",
}
"""Other names clients use (eglot's major-mode names, editors' file types)."""


def language_id(client_id: str | None, path: str) -> str:
    """The language of the document at `path` (a path or URI) whose client said
    `client_id`: a known id as it is, a known alias or major-mode name mapped, else the
    extension's language, else the client's id (lower case), else `text`."""
    given = (client_id or "").strip().lower()
    for candidate in (given, given.removesuffix("-mode"), given.removesuffix("-ts")):
        if candidate in KNOWN:
            return candidate
        if candidate in ALIASES:
            return ALIASES[candidate]
    name = path.rsplit("/", 1)[-1]
    extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if extension in BY_EXTENSION:
        return BY_EXTENSION[extension]
    return given or "text"
