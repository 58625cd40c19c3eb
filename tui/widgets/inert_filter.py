"""A line filter that keeps text from the service inert on the terminal.

Display names, attributes and error messages come from the tenant and may hold anything:
ESC sequences (clear screen, OSC 8 links, OSC 52 clipboard writes), BEL, bidi overrides.
Widgets draw such text as segments, and Textual writes segment text to the terminal as is,
so the App runs every rendered line through this filter: control characters and bidi
controls are dropped from text segments (they occupy no cell, so no layout changes), while
Textual's own control segments pass untouched. Markup is a separate matter: widgets render
service text as `Text`/segments, never as markup.
"""
from __future__ import annotations

import re

from rich.segment import Segment
from textual.color import Color
from textual.filter import LineFilter

#: C0/C1 controls (ESC, BEL, NUL, CR, ...) and the bidi embedding/override/isolate controls.
UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def inert(text: str) -> str:
    """`text` without control characters and bidi controls."""
    return UNSAFE.sub("", text)


class InertText(LineFilter):
    """Drops control and bidi characters from every text segment of a rendered line."""

    def apply(self, segments: list[Segment], background: Color) -> list[Segment]:
        """Return the line with its text segments made inert (unchanged segments are reused)."""
        out: list[Segment] = []
        changed = False
        for segment in segments:
            text, style, control = segment
            if control is None and UNSAFE.search(text):
                out.append(Segment(inert(text), style))
                changed = True
            else:
                out.append(segment)
        return out if changed else segments
