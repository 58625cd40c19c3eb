"""exocm.core: the headless engine; imports no UI library and never the sandbox."""
import sys as _sys

# httpx's package __init__ imports its optional command-line client (click, rich, pygments)
# whenever those happen to be installed; the engine must not load UI libraries
# (tests/test_architecture.py). A None entry in sys.modules makes that optional import
# raise ImportError, and httpx falls back to its stub `main` (Python import system rule).
if "httpx" not in _sys.modules:
    _sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]

import logging as _logging

# A library's loggers stay silent until a face configures them (core/logs.py): no lastResort output.
_logging.getLogger("exocm").addHandler(_logging.NullHandler())
