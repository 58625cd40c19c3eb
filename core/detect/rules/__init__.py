"""Built-in detection rules, one module per concern; importing this package registers them.

To add a rule: write one function decorated with ``@rule(...)`` (see ``exocm.core.detect.engine``) in
the module it belongs to (or a new one imported below) and one test in ``tests/test_detect_rules.py``.
"""
from __future__ import annotations

from . import cloud as cloud
from . import flip as flip
from . import mailbox as mailbox
from . import sync as sync
from . import tenant as tenant

__all__ = ["cloud", "flip", "mailbox", "sync", "tenant"]
