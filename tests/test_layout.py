"""The package's floors, read from its imports: data flows down, never up.

- `jaxloss/_core/` (shared helpers) imports nothing else of jaxloss;
- `jaxloss/_kernels/` imports only `_core` and other kernels;
- a family module imports kernels, shared helpers and other families' *public* names, never
  another family's private ones (a leading underscore);
- nothing below `compat` and `parity` imports them.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "jaxloss"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path):
    """(imported module, [names]) of every jaxloss import in `path`, absolute."""
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.split(".")[0] == "jaxloss":
                yield module, [alias.name for alias in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "jaxloss":
                    yield alias.name, []


def _floor(module: str) -> str:
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in ("_core", "_kernels", "compat", "parity"):
        return parts[1]
    return "family"


_ALLOWED = {
    "_core": {"_core"},
    "_kernels": {"_core", "_kernels"},
    "family": {"_core", "_kernels", "family"},
}
SOURCES = sorted(PACKAGE.rglob("*.py"))


# compat and parity, the top floors, may import everything below them
CHECKED = [p for p in SOURCES if _floor(_module_name(p)) not in ("compat", "parity")]


@pytest.mark.parametrize("path", CHECKED, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_go_down_only(path):
    module = _module_name(path)
    floor = _floor(module)
    for imported, names in _imports(path):
        if imported == "jaxloss":  # `from jaxloss import x`: a submodule or a public name
            targets = [f"jaxloss.{n}" for n in names]
        else:
            targets = [imported]
        for target in targets:
            assert _floor(target) in _ALLOWED[floor], f"{module} imports {target} (upward)"
        if floor == "family" and _floor(imported) == "family" and imported != "jaxloss":
            private = [n for n in names if n.startswith("_")]
            assert not private, f"{module} imports {imported}'s private names {private}"


def test_the_floors_are_checked():
    """The rule above has something to read in each floor."""
    floors = {_floor(_module_name(p)) for p in SOURCES}
    assert {"_core", "_kernels", "family", "compat", "parity"} <= floors


# Every public module at the top of the package but the shard_map namespace is a family.
FAMILIES = sorted(
    p.stem for p in PACKAGE.glob("*.py") if not p.stem.startswith("_") and p.stem != "parallel"
)


@pytest.mark.parametrize("family", FAMILIES)
def test_a_family_s_all_is_its_public_functions(family):
    """A loss is registered once, in its family's `__all__`: jaxloss exports it from there and
    the family's docs page lists it from there (docs/hooks/api_pages.py), so every public
    function of the module must be in it and nothing else."""
    import importlib
    import inspect

    import jaxloss

    module = importlib.import_module(f"jaxloss.{family}")
    defined = {
        name
        for name, obj in vars(module).items()
        if inspect.isfunction(obj)
        and not name.startswith("_")
        and obj.__module__ == module.__name__
    }
    assert set(module.__all__) == defined, sorted(set(module.__all__) ^ defined)
    assert set(module.__all__) <= set(jaxloss.__all__), "jaxloss does not export this family"
    assert all(getattr(jaxloss, name) is getattr(module, name) for name in module.__all__)
