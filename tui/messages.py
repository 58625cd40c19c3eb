"""Every message of the app, in one place.

Workers (thread workers doing I/O through core.Session) talk back to screens and widgets only by
posting these; widgets announce user intent with them. Payloads are plain data or core objects.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from exocm.core.events import Progress
from exocm.core.execute.apply import ApplyResult
from exocm.core.execute.journal import JournalInfo
from exocm.core.plan.planfile import Plan
from textual.message import Message

# -- connection and inventory (workers -> screens) ----------------------------------------------


class Connected(Message):
    """The session is open (bridge connected or sandbox started)."""

    def __init__(self, session: Any) -> None:
        super().__init__()
        self.session = session


class ConnectFailed(Message):
    """Opening the session failed; `error` is one line for the user."""

    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error


class InventoryProgress(Message):
    """A progress event of an inventory fetch."""

    def __init__(self, progress: Progress) -> None:
        super().__init__()
        self.progress = progress


class InventoryPreviewed(Message):
    """The saved snapshot's list columns are read (core SnapshotPreview): paint them while the rest loads.

    The worker waits for `painted` (set by the screen once the table is on screen) before the heavy load.
    """

    def __init__(self, preview: Any, painted: Any) -> None:
        super().__init__()
        self.preview = preview
        self.painted = painted


class InventoryLoaded(Message):
    """An inventory (fresh or from a snapshot) and its view are ready to show."""

    def __init__(self, inventory: Any, view: Any) -> None:
        super().__init__()
        self.inventory = inventory
        self.view = view


class InventoryFailed(Message):
    """An inventory fetch failed or was cancelled."""

    def __init__(self, error: str, cancelled: bool = False) -> None:
        super().__init__()
        self.error = error
        self.cancelled = cancelled


class DetectionFailed(Message):
    """Detection could not run (its on-prem data could not be read); `error` is one line for the user."""

    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error


class FindingsLoaded(Message):
    """Detection finished: `findings` is the findings DataFrame."""

    def __init__(self, findings: Any) -> None:
        super().__init__()
        self.findings = findings


# -- mailbox table (widget -> screen) --------------------------------------------------------------


class MailboxHighlighted(Message):
    """The cursor moved to the mailbox at inventory `position` (None: empty table)."""

    def __init__(self, position: int | None) -> None:
        super().__init__()
        self.position = position


class SelectionChanged(Message):
    """The set of selected mailboxes changed; `count` is how many are selected."""

    def __init__(self, count: int) -> None:
        super().__init__()
        self.count = count


class SortRequested(Message):
    """The user asked to sort by `column` (a MAILBOX_COLUMNS key)."""

    def __init__(self, column: str) -> None:
        super().__init__()
        self.column = column


class FilterChanged(Message):
    """The filter bar changed: search text and quick filters (a core.views.QuickFilter)."""

    def __init__(self, text: str, quick: Any) -> None:
        super().__init__()
        self.text = text
        self.quick = quick


class JumpToMailbox(Message):
    """Show the mailbox with this ExternalDirectoryObjectId on the Mailboxes screen."""

    def __init__(self, identity: str) -> None:
        super().__init__()
        self.identity = identity


# -- plan / apply / journals -----------------------------------------------------------------------


class PlanBuilt(Message):
    """A plan (core Plan) is ready to preview."""

    def __init__(self, plan: Plan, title: str = "") -> None:
        super().__init__()
        self.plan = plan
        self.title = title


class PlanFailed(Message):
    """Building a plan failed; `error` is one line."""

    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error


class PlanSaved(Message):
    """The plan was written to `path`."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path


class OverwrittenExported(Message):
    """The cloud values a disable overwrites were saved as CSV to `path` (`count` rows)."""

    def __init__(self, path: Path, count: int) -> None:
        super().__init__()
        self.path = path
        self.count = count


class ApplyProgress(Message):
    """A progress event of a running apply."""

    def __init__(self, progress: Progress) -> None:
        super().__init__()
        self.progress = progress


class ApplyRowFailed(Message):
    """One row failed during apply (for the scrolling failure log)."""

    def __init__(self, identity: str, error: str) -> None:
        super().__init__()
        self.identity = identity
        self.error = error


class ApplyFinished(Message):
    """The apply run ended (completed, cancelled or failed); `result` is core's run result."""

    def __init__(self, result: ApplyResult | None, error: str | None = None) -> None:
        super().__init__()
        self.result = result
        self.error = error


class JournalsLoaded(Message):
    """The list of past runs (core.execute.journal.JournalInfo, newest first)."""

    def __init__(self, journals: list[JournalInfo]) -> None:
        super().__init__()
        self.journals = journals


class JournalRows(Message):
    """The rows of one journal (a DataFrame), read in a worker."""

    def __init__(self, path: Path, rows: Any) -> None:
        super().__init__()
        self.path = path
        self.rows = rows


class SelectionImported(Message):
    """A CSV selection was resolved: `identities` to select, `unmatched` lines to report."""

    def __init__(self, identities: list[str], unmatched: list[str], path: Path) -> None:
        super().__init__()
        self.identities = identities
        self.unmatched = unmatched
        self.path = path
