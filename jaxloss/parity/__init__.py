"""Parity tooling: seeded cases over torch's argument space, the comparison against torch, the
report (``python -m jaxloss.parity``) and `check_port`, which checks a ported criterion
on your own inputs. Needs torch (``pip install 'jaxloss[parity]' -c constraints.txt``)."""

from .port import PortCheck, check_port
from .report import main

__all__ = ["PortCheck", "check_port", "main"]
