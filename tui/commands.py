"""Command palette: every action of the current screen (and the app's), with a one-line description each."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

from exocm.core.app.views import MAILBOX_COLUMNS
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.dom import DOMNode


@dataclass(frozen=True)
class Command:
    """One palette entry."""

    title: str
    help: str
    callback: Callable[[], Any]


def bindings_of(node: DOMNode) -> Iterator[Binding]:
    """The Binding objects a node declares (class BINDINGS, tuples normalised)."""
    for item in getattr(node, "BINDINGS", []):
        if isinstance(item, Binding):
            yield item
        elif isinstance(item, tuple):
            yield Binding(*item)


def _binding_commands(app: Any, node: DOMNode, prefix: str) -> Iterator[Command]:
    keymap: dict[str, str] = getattr(app, "_keymap", {}) or {}
    for binding in bindings_of(node):
        if not binding.description or binding.action in ("quit",):
            continue
        key = keymap.get(binding.id or "", binding.key) if binding.id else binding.key
        yield Command(
            title=f"{prefix}{binding.description}",
            help=f"key: {app.get_key_display(Binding(key, binding.action))}  ·  id: {binding.id or '-'}",
            callback=partial(app.run_action, binding.action, node),
        )


def commands_for(app: Any, screen: Any) -> list[Command]:
    """Every action that makes sense on `screen`: its bindings, its extra commands, and the app's."""
    from .screens.mailboxes import MailboxesScreen

    commands: list[Command] = list(_binding_commands(app, screen, ""))
    if isinstance(screen, MailboxesScreen):
        from .widgets.mailbox_table import MailboxTable

        tables = screen.query(MailboxTable)
        if tables:
            commands += list(_binding_commands(app, tables.first(), ""))
        commands += [
            Command("Preview: enable cloud management for the selection",
                    "Build a plan that sets IsExchangeCloudManaged = True", partial(screen.preview, True)),
            Command("Preview: disable cloud management for the selection",
                    "Build a plan that sets IsExchangeCloudManaged = False (lists values that sync overwrites)",
                    partial(screen.preview, False)),
        ]
        for key, heading in MAILBOX_COLUMNS:
            commands.append(Command(f"Sort by {heading}", f"Order the table by {key}",
                                    partial(screen.sort_by, key, False)))
        commands.append(Command("Sort: inventory order", "No sort", partial(screen.sort_by, None, False)))
        types = screen.view.type_names() if screen.view is not None else []
        for type_name in types:
            commands.append(Command(f"Filter: only {type_name}", "Quick filter by RecipientTypeDetails",
                                    partial(screen.filter_type, type_name)))
        commands.append(Command("Filter: any type", "Remove the type filter", partial(screen.filter_type, None)))
    from exocm.core.model import KIND_LABELS

    from .screens.objects import ObjectsScreen

    if isinstance(screen, ObjectsScreen):
        commands += [
            Command("Preview: convert the selection to cloud-managed",
                    "Build a plan that sets isCloudManaged = True (nested groups children first)",
                    partial(screen.preview, True)),
            Command("Preview: hand the selection back to AD",
                    "Build a plan that sets isCloudManaged = False", partial(screen.preview, False)),
        ]
    for kind, label in KIND_LABELS.items():
        commands.append(Command(f"Kind: {label}", f"List {label.lower()} (the kind switcher)",
                                partial(app.action_kind, kind)))
    commands += list(_binding_commands(app, app, "Go: "))
    if len(app.screen_stack) > 2:
        commands.append(Command("Go: Mailboxes", "Back to the mailbox list", app.back_to_mailboxes))
    return commands


class ExocmCommands(Provider):
    """Offers `commands_for` the screen the palette was opened on."""

    def _commands(self) -> Iterable[Command]:
        return commands_for(self.app, self.screen)

    async def discover(self) -> Hits:
        for command in self._commands():
            yield DiscoveryHit(command.title, command.callback, help=command.help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for command in self._commands():
            score = matcher.match(command.title)
            if score > 0:
                yield Hit(score, matcher.highlight(command.title), command.callback, help=command.help)
