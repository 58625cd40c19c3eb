"""Record views: a property set defined once as Python expressions over an object `o`, compiled
into (a) one record-builder function (a single dict display: fast pages) and (b) a getter per
property (what OPATH filters call). Both read the object's current state; nothing is cached.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

Getter = Callable[[Any], Any]
_EMPTY: dict[Any, Any] = {}


class View:
    """Builder + filter vocabulary for one cmdlet's property set."""

    __slots__ = ("build", "getters", "filterable", "properties", "sources")

    def __init__(self, exprs: Mapping[str, str], props: tuple[str, ...], namespace: Mapping[str, Any]) -> None:
        ns = {"_E": _EMPTY, **namespace}
        body = ", ".join(f"{p!r}: {exprs[p]}" for p in props)
        src = f"def build(o):\n    return {{{body}}}\n"
        exec(compile(src, f"<view {props[0]}..>", "exec"), ns)  # noqa: S102 - our own constant expressions
        self.build: Callable[[Any], dict[str, Any]] = ns["build"]
        self.getters: dict[str, Getter] = {
            p: eval(compile(f"lambda o: {exprs[p]}", f"<getter {p}>", "eval"), ns)  # noqa: S307 - constant source
            for p in props
        }
        self.filterable = {p.lower(): g for p, g in self.getters.items()}
        self.properties = props
        #: Lower-case property name -> its defining expression (what filter indexes are keyed by).
        self.sources: dict[str, str] = {p.lower(): exprs[p] for p in props}
