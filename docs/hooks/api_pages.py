"""The API reference pages follow the families' own lists: a mkdocs hook.

- A line ``<!-- the functions of jaxloss.FAMILY -->`` in a page becomes one ``::: jaxloss.NAME``
  entry per name in ``jaxloss.FAMILY.__all__``, in that order, so a new loss appears on its
  family's page once it is in the family's ``__all__``.
- After the build, every public function of ``jaxloss`` (``jaxloss.__all__``) and of
  ``jaxloss.parallel`` must have an entry on some page; one without is a warning, which
  ``mkdocs build --strict`` turns into a failure naming it.
"""

from __future__ import annotations

import importlib
import logging
import re

log = logging.getLogger("mkdocs.plugins.jaxloss.api_pages")
_MARKER = re.compile(r"^<!-- the functions of (jaxloss\.[a-z0-9_.]+) -->$", re.MULTILINE)
_ENTRY = re.compile(r"^::: (jaxloss\.[A-Za-z0-9_.]+)\s*$", re.MULTILINE)
_documented: set[str] = set()


def _entries(match: re.Match) -> str:
    module = importlib.import_module(match.group(1))
    return "\n\n".join(f"::: jaxloss.{name}" for name in module.__all__)


def on_pre_build(config, **kwargs) -> None:
    _documented.clear()


def on_page_markdown(markdown: str, page, config, files) -> str:
    markdown = _MARKER.sub(_entries, markdown)
    _documented.update(_ENTRY.findall(markdown))
    return markdown


def on_post_build(config, **kwargs) -> None:
    import jaxloss

    public = {
        f"jaxloss.{name}"
        for name in jaxloss.__all__
        if callable(getattr(jaxloss, name)) and name != "parallel"
    }
    public |= {f"jaxloss.parallel.{name}" for name in jaxloss.parallel.__all__}
    for name in sorted(public - _documented):
        log.warning("%s is public but has no entry on any docs page", name)
