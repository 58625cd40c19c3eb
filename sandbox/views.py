"""Record views: a property set defined once as Python expressions over an object `o`, compiled
into (a) one record-builder function (a single dict display: fast pages) and (b) a getter per
property (what OPATH filters call). Both read the object's current state; nothing is cached.
A view projected onto fewer properties (an OData `$select`) has a builder of its own, so a
record costs only the properties asked for.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

Getter = Callable[[Any], Any]
_EMPTY: dict[Any, Any] = {}


class View:
    """Builder + filter vocabulary for one cmdlet's property set."""

    __slots__ = ("build", "getters", "filterable", "properties", "sources", "_exprs", "_namespace", "_projections")

    def __init__(self, exprs: Mapping[str, str], props: tuple[str, ...], namespace: Mapping[str, Any]) -> None:
        ns = {"_E": _EMPTY, **namespace}
        body = ", ".join(f"{p!r}: {exprs[p]}" for p in props)
        src = f"def build(o):\n    return {{{body}}}\n"
        exec(compile(src, f"<view {props[0] if props else '(none)'}..>", "exec"), ns)  # noqa: S102 - our own constant expressions
        self.build: Callable[[Any], dict[str, Any]] = ns["build"]
        self.getters: dict[str, Getter] = {
            p: eval(compile(f"lambda o: {exprs[p]}", f"<getter {p}>", "eval"), ns)  # noqa: S307 - constant source
            for p in props
        }
        self.filterable = {p.lower(): g for p, g in self.getters.items()}
        self.properties = props
        #: Lower-case property name -> its defining expression (what filter indexes are keyed by).
        self.sources: dict[str, str] = {p.lower(): exprs[p] for p in props}
        self._exprs = exprs
        self._namespace = namespace
        self._projections: dict[tuple[str, ...], View] = {}

    def projected(self, names: Iterable[str]) -> View:
        """This view restricted to `names` (matched case-insensitively, kept in this view's order;
        names it does not have are ignored). Projections are compiled once and cached."""
        wanted = {str(n).strip().lower() for n in names}
        props = tuple(p for p in self.properties if p.lower() in wanted)
        if props == self.properties:
            return self
        view = self._projections.get(props)
        if view is None:
            view = View(self._exprs, props, self._namespace)
            self._projections[props] = view
        return view
