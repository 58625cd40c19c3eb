"""Exit codes of every exocm command, in one place."""
from __future__ import annotations

OK = 0
#: Something to do / findings at or above --fail-on / a plan with changes (like `kubectl diff`).
CHANGES = 1
#: Usage error (click's own) or any error the user must fix before rerunning.
ERROR = 2
#: A runbook stopped at a gate or manual step that needs a person.
NEEDS_CONFIRMATION = 3
#: Authentication failed: wrong tenant, bad credentials, consent or role missing.
AUTH_FAILED = 4
#: Interrupted (Ctrl-C); the journal is flushed and the run can be resumed.
INTERRUPTED = 130
