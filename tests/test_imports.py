"""The package's imports, read from the source: no import circle, no private Lightning/Ray names."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "nwave_lightning"
# Private attributes and methods of Lightning and Ray the package must not touch (issue #12).
PRIVATE_NAMES = ("_data_source", "_given_hyperparameters", "internal_kv", "_get_report_dict", "_handle(",
                 "callback_metrics.update", "logged_metrics.update", "progress_bar_metrics.update",
                 "_instantiate_trainer", "_hparams_initial", "_current_fx_name", "getattr(obj, \"_metric\"")


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Modules of the package that ``name`` imports anywhere (inside functions too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        out.update(t for t in targets if t in modules and t != name)
    return out


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    # A package's __init__ re-exporting its own submodules is how packages work, not a circle:
    # keep the edges that leave a package or enter it from outside.
    for name in graph:
        graph[name] = {t for t in graph[name] if not (t.startswith(name + ".") and (PACKAGE / "/".join(name.split(".")[1:]) / "__init__.py").exists())}
    return graph


def test_a_circle_is_found_by_the_check():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_the_package_has_no_import_circle():
    assert _cycle(_graph()) is None


def test_nothing_below_the_commands_imports_them():
    importers = sorted(name for name, targets in _graph().items()
                       if not name.startswith(("nwave_lightning.cli", "nwave_lightning.__main__"))
                       and any(t == "nwave_lightning.cli" or t.startswith("nwave_lightning.cli.") for t in targets))
    assert importers == []


def test_no_private_lightning_or_ray_name_is_used():
    hits = []
    for path in PACKAGE.rglob("*.py"):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]
            hits += [f"{path.relative_to(PACKAGE.parent)}:{number}: {name}" for name in PRIVATE_NAMES if name in code]
            if re.search(r"\btrainer\._[a-z]", code):
                hits.append(f"{path.relative_to(PACKAGE.parent)}:{number}: trainer._<private>")
    assert hits == []


def test_the_nwave_command_loads_ray_only_to_tune():
    """`nwave fit` imports the command package; Ray (seconds to import) is loaded by `nwave tune` alone."""
    import subprocess
    import sys

    probe = "import sys, nwave_lightning.cli; print(sorted(m for m in ('ray', 'nwave_lightning.hpo') if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]"


def test_no_underscored_method_of_a_lightning_or_ray_class_is_overridden():
    """A subclass's own ``_name`` that its Lightning/Ray/torchmetrics base also has replaces their private code
    (TrialLines._print replaced TrialProgressCallback._print, with another signature)."""
    import importlib
    import inspect
    import pkgutil
    import warnings

    import nwave_lightning

    hits = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the warning alias nwave_lightning.module
        modules = [importlib.import_module(info.name) for info in pkgutil.walk_packages(nwave_lightning.__path__, "nwave_lightning.")
                   if not info.name.endswith("__main__")]
    for module in modules:
        for _, cls in inspect.getmembers(module, inspect.isclass):
            bases = [base for base in cls.__mro__[1:] if base.__module__.split(".")[0] in ("lightning", "ray", "torchmetrics")]
            hits += [f"{cls.__module__}.{cls.__qualname__}.{name} ({base.__module__}.{base.__qualname__})"
                     for base in bases for name in vars(cls)
                     if cls.__module__ == module.__name__ and name.startswith("_") and not name.startswith("__")
                     and name != "_abc_impl" and name in vars(base)]
    assert hits == []
