"""The API reference as the docs renderer reads it: every parameter of every public function is
documented where the renderer (griffe, reading the source) finds it, and the strict docs build
fails on a broken reference or a formula KaTeX cannot typeset."""

import inspect
import os
import shutil
import subprocess
import sys
from pathlib import Path

import griffe
import pytest

import jaxloss
import jaxloss.parallel
from jaxloss.compat import torchvision

ROOT = Path(__file__).resolve().parents[1]


def _public_functions():
    modules = {
        "jaxloss": jaxloss,
        "jaxloss.parallel": jaxloss.parallel,
        "jaxloss.compat.torchvision": torchvision,
    }
    for prefix, module in modules.items():
        for name in getattr(module, "__all__", dir(module)):
            obj = getattr(module, name)
            if inspect.isfunction(obj) and not name.startswith("_"):
                yield f"{prefix}.{name}", obj


PACKAGE = griffe.load("jaxloss", search_paths=[str(ROOT)], docstring_parser="google")


def _documented_parameters(function) -> list[str]:
    """The parameter names of the docstring's Args section, as the renderer parses them."""
    path = f"{function.__module__}.{function.__qualname__}"
    obj = PACKAGE[path.removeprefix("jaxloss.")]
    assert obj.docstring is not None, f"{path} has no docstring"
    names = []
    for section in obj.docstring.parse("google", warnings=False):
        if section.kind.value == "parameters":
            names += [parameter.name for parameter in section.value]
    return names


@pytest.mark.parametrize("name, function", sorted(_public_functions()), ids=lambda v: v)
def test_every_parameter_is_documented_where_the_renderer_reads_it(name, function):
    signature = [
        p.name
        for p in inspect.signature(function).parameters.values()
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    documented = _documented_parameters(function)
    assert set(documented) == set(signature), (
        f"{name}: missing {sorted(set(signature) - set(documented))}, "
        f"not parameters {sorted(set(documented) - set(signature))}"
    )


def _append(page: str, text: str):
    def edit(docs: Path) -> None:
        (docs / page).write_text((docs / page).read_text() + "\n" + text + "\n")

    return edit


def _drop_entry(page: str, entry: str):
    def edit(docs: Path) -> None:
        (docs / page).write_text((docs / page).read_text().replace(entry + "\n", ""))

    return edit


@pytest.mark.slow  # four strict builds of the site (~25 s)
@pytest.mark.parametrize(
    "breakage, message",
    [
        (
            _append("index.md", "See [the missing one][jaxloss.no_such_function]."),
            "Could not find cross-reference",
        ),
        (_append("index.md", "A formula: $\\notamacro{x}$."), "KaTeX cannot render"),
        (
            _drop_entry("detection.md", "::: jaxloss.siou_loss"),
            "jaxloss.siou_loss is public but has no entry",
        ),
        (
            _drop_entry("parallel.md", "::: jaxloss.parallel.linear_distillation_loss"),
            "jaxloss.parallel.linear_distillation_loss is public but has no entry",
        ),
    ],
    ids=["broken-reference", "broken-formula", "function-without-a-page", "parallel-without"],
)
def test_strict_docs_build_fails_on_a_warning(tmp_path, breakage, message):
    """What ./dev test's docs step runs (mkdocs build --strict, no --quiet) fails on a page
    with a broken reference, a formula KaTeX rejects, or a public function on no page."""
    for item in ("mkdocs.yml", "docs", "jaxloss"):
        source = ROOT / item
        if source.is_dir():
            shutil.copytree(source, tmp_path / item, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, tmp_path / item)
    breakage(tmp_path / "docs")
    mkdocs = Path(sys.executable).with_name("mkdocs")
    result = subprocess.run(
        [str(mkdocs), "build", "--strict"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert message in output
    assert "Aborted with" in output


def test_no_control_characters_in_sources_and_pages():
    """A `\\frac` or `\\beta` written through a non-raw Python string becomes a form feed or a
    backspace, which a docstring's math then silently loses: no source or page holds an ASCII
    control character other than the newline."""
    files = [ROOT / "README.md"]
    for folder, pattern in (("jaxloss", "*.py"), ("docs", "*.md"), ("tests", "*.py"),
                            ("benchmarks", "*.py"), ("examples", "*.py")):  # fmt: skip
        files += sorted((ROOT / folder).rglob(pattern))
    found = []
    for path in files:
        for number, line in enumerate(path.read_text().split("\n"), 1):
            if any(ord(c) < 32 and c != "\t" for c in line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line!r}")
    assert not found, "\n".join(found)
