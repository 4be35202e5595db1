"""The layers, as the tree shows them: server → context → generation contract ←
engine / remote backends. Every import between lsp_llm's packages (function-level and
type-checking ones included) must go one of the ways below; one that goes back up a layer,
or that would close a cycle, fails here."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parent.parent / "lsp_llm"

TOOLING = {"bench", "evaluation", "train", "cli", "commands", "client", "settings_schema"}
"""Commands and their tools: they may import any product layer, and none imports them."""

ALLOWED: dict[str, set[str]] = {
    "config": set(),
    "spinwaits": set(),  # set by the package's __init__ before anything loads torch
    "generation": {"config"},
    "context": {"config", "generation"},
    "engine": {"config", "generation"},
    # a remote engine's prompts are built with the model's tokenizer (engine's loading)
    "remote": {"config", "generation", "engine"},
    "backends": {"config", "generation", "engine", "remote"},
    "server": {"config", "generation", "context", "engine", "backends", "lsp_llm"},
    "lsp_llm": {"spinwaits"},  # the package's __init__ (its version, OpenMP's spin waits)
    "__main__": {"cli"},
}


def unit(module: str) -> str:
    """The layer a module belongs to: its first part under lsp_llm."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "lsp_llm"


def imports(package: Path = PACKAGE) -> list[tuple[str, str, str]]:
    """(importing module's layer, imported layer, where) for every lsp_llm import."""
    found = []
    for path in package.rglob("*.py"):
        module = ".".join(path.relative_to(package.parent).with_suffix("").parts)
        module = module.removesuffix(".__init__")
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            for target in targets:
                inside = target == "lsp_llm" or target.startswith("lsp_llm.")
                if inside and unit(target) != unit(module):
                    found.append((unit(module), unit(target), f"{path.name}:{node.lineno}"))
    return found


def going_up(package: Path = PACKAGE) -> list[str]:
    return [
        f"{source} imports {target} ({where})"
        for source, target, where in imports(package)
        if source not in TOOLING and target not in ALLOWED.get(source, set())
    ]


def test_every_import_between_layers_goes_down():
    wrong = going_up()
    assert not wrong, "\n".join(wrong)


def test_nothing_in_the_product_imports_the_tooling():
    wrong = [
        f"{source} imports {target} ({where})"
        for source, target, where in imports()
        if source not in TOOLING and target in TOOLING and source != "__main__"
    ]
    assert not wrong, "\n".join(wrong)


def test_the_allowed_layers_have_no_cycle():
    state: dict[str, str] = {}

    def visit(layer: str, path: list[str]) -> None:
        if state.get(layer) == "done":
            return
        assert state.get(layer) != "open", " -> ".join([*path, layer])
        state[layer] = "open"
        for below in ALLOWED.get(layer, set()):
            visit(below, [*path, layer])
        state[layer] = "done"

    for layer in ALLOWED:
        visit(layer, [])


def test_the_rule_catches_an_import_back_up(tmp_path):
    """An engine module importing the server, even inside a function, is reported."""
    engine = tmp_path / "lsp_llm" / "engine"
    engine.mkdir(parents=True)
    (engine / "ok.py").write_text("from lsp_llm.generation.types import Done\n")
    (engine / "bad.py").write_text("def f():\n    from lsp_llm.server.app import X\n")
    assert going_up(tmp_path / "lsp_llm") == ["engine imports server (bad.py:2)"]


def test_the_cpu_kernels_are_a_leaf_of_the_engine():
    """engine/cpu/ (the kernels and the layers over them) is used by loading and by the
    scheduling core, never the other way: a kernel module reading a file format, a
    catalogue entry or the lean forward fails here. Only the cache folder is shared."""
    allowed = ("lsp_llm.engine.cpu", "lsp_llm.engine.cachedir")
    wrong = [
        f"{path.name}:{line} imports {target}"
        for path in (PACKAGE / "engine" / "cpu").rglob("*.py")
        for target, line in imported_modules(path)
        if (target == "lsp_llm.engine" or target.startswith("lsp_llm.engine."))
        and not any(target == a or target.startswith(a + ".") for a in allowed)
    ]
    assert not wrong, "\n".join(wrong)


def imported_modules(path: Path, root: Path = PACKAGE) -> list[tuple[str, int]]:
    """Every module `path` (under the package `root`) imports, relative imports resolved,
    with its line."""
    package = ".".join(path.relative_to(root.parent).parts[:-1])
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            found += [(base, node.lineno)]
            found += [(f"{base}.{alias.name}", node.lineno) for alias in node.names]
    return found


def test_the_import_reader_sees_every_form(tmp_path):
    cpu = tmp_path / "lsp_llm" / "engine" / "cpu"
    cpu.mkdir(parents=True)
    (cpu / "bad.py").write_text(
        "import lsp_llm.engine.load.ggufmap\n"
        "from ..load import sources\n"
        "def f():\n    from lsp_llm.engine import load\n"
    )
    seen = {t for t, _ in imported_modules(cpu / "bad.py", tmp_path / "lsp_llm")}
    load = "lsp_llm.engine.load"
    assert {f"{load}.ggufmap", load, f"{load}.sources"} <= seen
