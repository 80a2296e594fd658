"""The engine never reaches up into the views: no module under tui_trainer/engine/ imports
tui_trainer.frontends, Textual or Rich - at the top or inside a function, directly or through
another module of the package. `Trainer.train(ui=...)` wires the views from above
(tui_trainer/trainer.py)."""

from __future__ import annotations

import ast
from pathlib import Path

import tui_trainer

PACKAGE = Path(tui_trainer.__file__).parent
FORBIDDEN = ("tui_trainer.frontends", "textual", "rich")


def imported_modules(path: Path, root: Path = PACKAGE) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in `path` (a module of the package at
    `root`), relative ones resolved."""
    package = ".".join(path.relative_to(root.parent).with_suffix("").parts[:-1])
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([node.module] if node.module else []))
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]  # from .. import frontends
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
                "import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant):
            found.append((node.lineno, str(node.args[0].value)))
    return found


def is_forbidden(module: str) -> bool:
    return any(module == name or module.startswith(name + ".") for name in FORBIDDEN)


def module_path(name: str, root: Path = PACKAGE) -> Path | None:
    """The file of module `name` inside the package at `root`, or None (another package)."""
    parts = name.split(".")
    if parts[0] != root.name:
        return None
    base = root.parent.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def reached_views(path: Path, root: Path = PACKAGE) -> list[str]:
    """The forbidden imports `path` makes, directly or through the package's other modules it
    imports (a lazy import in any of them counts: it runs the day the function is called)."""
    seen, queue, offences = {path}, [path], []
    while queue:
        current = queue.pop()
        for line, name in imported_modules(current, root):
            if is_forbidden(name):
                offences.append(f"{current.relative_to(root.parent)}:{line} imports {name}")
                continue
            target = module_path(name, root)
            if target is not None and target not in seen:
                seen.add(target)
                queue.append(target)
    return offences


def test_no_engine_module_imports_a_view_textual_or_rich():
    modules = sorted((PACKAGE / "engine").rglob("*.py"))
    assert len(modules) > 5
    offences = sorted({o for path in modules for o in reached_views(path)})
    assert offences == []


def test_the_scan_sees_every_way_of_importing(tmp_path):
    """The checker itself: relative, absolute, lazy (inside a function) and importlib imports."""
    engine = tmp_path / "tui_trainer" / "engine"
    engine.mkdir(parents=True)
    module = engine / "probe.py"
    module.write_text("import os\n"
                      "from ..frontends.tui import launch\n"
                      "def f():\n"
                      "    from .. import frontends\n"
                      "    import rich.text\n"
                      "    importlib.import_module('textual.app')\n"
                      "from . import control\n")
    names = [name for _, name in imported_modules(module, tmp_path / "tui_trainer") if is_forbidden(name)]
    assert names == ["tui_trainer.frontends.tui", "tui_trainer.frontends.tui.launch", "tui_trainer.frontends",
                     "rich.text", "textual.app"]


def test_a_view_reached_through_another_module_counts(tmp_path):
    package = tmp_path / "tui_trainer"
    (package / "engine").mkdir(parents=True)
    (package / "engine" / "loop.py").write_text("def train():\n    from ..script_run import go\n")
    (package / "script_run.py").write_text("def go():\n    from .frontends.tui.launch import run\n")
    assert reached_views(package / "engine" / "loop.py", package) == [
        "tui_trainer/script_run.py:2 imports tui_trainer.frontends.tui.launch",
        "tui_trainer/script_run.py:2 imports tui_trainer.frontends.tui.launch.run"]
