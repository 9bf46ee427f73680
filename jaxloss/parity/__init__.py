"""Parity tooling: seeded cases over torch's argument space, the comparison against torch, and
the report (``python -m jaxloss.parity``). Needs torch (``pip install 'jaxloss[parity]'``)."""

from .report import main

__all__ = ["main"]
