"""The user's key bindings for the TUI: the `[keys]` table of config.toml (binding id -> key)."""
from __future__ import annotations

from pathlib import Path

import tomlkit
from exocm.core.access.config import ConfigError, config_path
from tomlkit.exceptions import TOMLKitError


def load_keymap(path: Path | None = None) -> dict[str, str]:
    """The `[keys]` table of config.toml: binding id -> key(s), e.g. `"mailboxes.preview" = "ctrl+p"`.

    A missing file or table gives {}; a value that is not a string is a ConfigError (one line).
    """
    path = path or config_path()
    try:
        data = tomlkit.parse(path.read_text(encoding="utf-8")).unwrap()
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, TOMLKitError) as exc:
        raise ConfigError(f"{path}: cannot read the [keys] table ({exc.__class__.__name__})") from None
    keys = data.get("keys", {})
    if not isinstance(keys, dict):
        raise ConfigError(f"{path}: 'keys' must be a table of binding id = \"key\"")
    out: dict[str, str] = {}
    for binding_id, key in keys.items():
        if isinstance(key, dict):  # dotted ids written as nested tables: [keys.mailboxes] preview = "x"
            for sub, value in key.items():
                if not isinstance(value, str):
                    raise ConfigError(f"{path}: keys.{binding_id}.{sub} must be a string")
                out[f"{binding_id}.{sub}"] = value
        elif isinstance(key, str):
            out[str(binding_id)] = key
        else:
            raise ConfigError(f"{path}: keys.{binding_id} must be a string such as \"ctrl+p\"")
    return out
