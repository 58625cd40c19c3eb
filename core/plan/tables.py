"""A plan as tables: one line per row (what `exocm show` and the TUI's preview list), counts per reason."""
from __future__ import annotations

from typing import Any, Final

import pandas as pd

from .planfile import REASON_TEXT, Plan

#: The columns of `plan_rows_frame`, in order.
PLAN_ROW_COLUMNS: Final = ("Identity", "DisplayName", "UserPrincipalName", "Action", "Reason", "Detail",
                           "IsExchangeCloudManaged", "Target", "WhenChanged", "Overwritten")
#: The columns a plan's table shows on a screen (`exocm show`, the TUI's preview), in order.
PLAN_TABLE_COLUMNS: Final = ("Action", "Identity", "DisplayName", "UserPrincipalName", "IsExchangeCloudManaged",
                             "Reason", "Detail")


def short_text(value: Any, limit: int = 60) -> str:
    """A value in at most `limit` characters: lists joined by ';', None as '(empty)', long text cut with '...'."""
    if value is None:
        return "(empty)"
    text = ";".join(map(str, value)) if isinstance(value, list) else str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def state_column(plan: Plan) -> str:
    """The property a plan sets, as its column is named: isCloudManaged for Graph objects."""
    return "isCloudManaged" if plan.is_graph else "IsExchangeCloudManaged"


def _kind_columns(plan: Plan, columns: tuple[str, ...]) -> list[str]:
    """The columns for this plan's kind: Graph's state name, and the apply wave for object plans."""
    out = [state_column(plan) if c == "IsExchangeCloudManaged" else c for c in columns]
    return out + (["Wave"] if plan.is_graph else [])


def plan_rows_frame(plan: Plan) -> pd.DataFrame:
    """One line per plan row (PLAN_ROW_COLUMNS; for groups, contacts and users the state column is
    isCloudManaged and a Wave column follows), for tables, CSV and the TUI's preview."""
    state = state_column(plan)
    rows = []
    for row in plan.rows:
        overwritten = ""
        if row.overwritten:
            overwritten = "; ".join(f"{attr}: {short_text(v.get('cloud'))} -> {short_text(v.get('onprem'))}"
                                    for attr, v in sorted(row.overwritten.items()))
        rows.append({
            "Identity": row.identity, "DisplayName": row.display_name, "UserPrincipalName": row.upn,
            "Action": row.action, "Reason": row.reason, "Detail": row.detail,
            state: row.observed.is_cloud_managed,
            "Target": plan.value if row.action == "set" else None,
            "WhenChanged": row.observed.when_changed, "Overwritten": overwritten,
            "Wave": "" if row.wave is None else row.wave,
        })
    return pd.DataFrame(rows, columns=_kind_columns(plan, PLAN_ROW_COLUMNS))


def plan_table_frame(plan: Plan) -> pd.DataFrame:
    """The plan's rows with the columns a screen shows (PLAN_TABLE_COLUMNS)."""
    return plan_rows_frame(plan)[_kind_columns(plan, PLAN_TABLE_COLUMNS)]


def plan_counts_frame(plan: Plan) -> pd.DataFrame:
    """Counts per action and reason: columns `action`, `reason`, `count`, `meaning` (admin words)."""
    rows = []
    for key, count in plan.counts().items():
        action, _, reason = key.partition(":")
        meaning = "will be changed" if action == "set" else REASON_TEXT.get(reason, reason.replace("_", " "))
        rows.append({"action": action, "reason": reason, "count": int(count), "meaning": meaning})
    return pd.DataFrame(rows, columns=["action", "reason", "count", "meaning"])
