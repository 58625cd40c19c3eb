"""Where exocm keeps its files, and the connection profiles in config.toml.

`config_dir()` holds config.toml (profiles); `data_dir()` holds the token cache, snapshots,
plans, journals and runbook state. `EXOCM_CONFIG_DIR` / `EXOCM_DATA_DIR` override the
platform directories (tests and CI use them). Every file exocm writes here is 0600 in a
0700 directory, written atomically (temp file + rename).

Secrets never live in config.toml: a profile names the *environment variable* that holds
its client secret or certificate passphrase. The one exception is documented at
`store_sandbox_secret`.
"""
from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import platformdirs
import tomlkit
from tomlkit.exceptions import TOMLKitError

from ..files import private_dir, write_atomic
from .clouds import CLOUDS, CUSTOM, get_cloud

APP_NAME: Final = "exocm"
AUTH_KINDS: Final = ("secret", "certificate", "device_code")


class ConfigError(Exception):
    """The configuration is missing or wrong; `str(exc)` is one line the user can act on."""


def config_dir() -> Path:
    """Directory of config.toml: $EXOCM_CONFIG_DIR, else the platform config dir."""
    override = os.environ.get("EXOCM_CONFIG_DIR")
    return Path(override) if override else Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))


def data_dir() -> Path:
    """Directory of caches, snapshots, plans and journals: $EXOCM_DATA_DIR, else the platform data dir."""
    override = os.environ.get("EXOCM_DATA_DIR")
    return Path(override) if override else Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def embedded_sandbox_state(size: int, seed: int) -> Path:
    """State file of the embedded sandbox of `size` users and `seed` (kept between commands)."""
    return data_dir() / "sandbox" / f"embedded-{size}-{seed}.sqlite"


def config_path() -> Path:
    """Path of config.toml."""
    return config_dir() / "config.toml"


def token_cache_path() -> Path:
    """Path of the persisted MSAL token cache (used when no OS keyring is available)."""
    return data_dir() / "token_cache.json"


def sandbox_secrets_path() -> Path:
    """Path of the file holding sandbox profiles' throwaway client secrets (see store_sandbox_secret)."""
    return data_dir() / "sandbox_secrets.json"


#: Kept for callers that know it by this name; the one definition is `files.private_dir`.
ensure_private_dir = private_dir


def write_private_file(path: Path, text: str) -> None:
    """Write `text` to `path` atomically (temp file in the same dir, fsync, rename), mode 0600."""
    private_dir(path.parent)
    write_atomic(path, text.encode("utf-8"))


@dataclass
class Profile:
    """A named way to reach one tenant: cloud or custom endpoints, and how to sign in.

    `secret_env` / `pfx_passphrase_env` name environment variables; the values are never
    stored here. `extra` carries settings of later features (on-prem WinRM URL and user,
    Graph URL, ...).
    """

    name: str
    tenant: str
    client_id: str
    cloud: str = "commercial"
    auth: str = "secret"
    secret_env: str | None = None
    cert_pem_file: str | None = None
    key_pem_file: str | None = None
    cert_thumbprint: str | None = None
    pfx_file: str | None = None
    pfx_passphrase_env: str | None = None
    username: str | None = None
    authority: str | None = None
    rest_base_url: str | None = None
    scope: str | None = None
    ca_file: str | None = None
    sandbox: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    #: A multi-tenant app registration shared by several profiles (`[apps.NAME]` in config.toml):
    #: its client id, credential and cloud apply unless the profile sets its own.
    app: str | None = None
    #: Keys this profile took from its app (not written back into the profile's own table).
    inherited: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    # -- resolved endpoints ------------------------------------------------------------
    def resolved_authority(self) -> str:
        """MSAL authority URL: the profile's own (a "{tenant}" in it is this profile's tenant: one
        authority template for a multi-tenant app), else the cloud's for this tenant."""
        if self.authority:
            return self.authority.replace("{tenant}", self.tenant).rstrip("/")
        return get_cloud(self.cloud).authority(self.tenant)

    def resolved_rest_base_url(self) -> str:
        """Base URL of the EXO REST endpoint (scheme://host[:port][/prefix])."""
        if self.rest_base_url:
            return self.rest_base_url.rstrip("/")
        return get_cloud(self.cloud).rest_base_url

    def resolved_scope(self) -> str:
        """OAuth scope for the REST endpoint."""
        if self.scope:
            return self.scope
        if self.cloud != CUSTOM and not self.rest_base_url:
            return get_cloud(self.cloud).scope
        parts = urlsplit(self.resolved_rest_base_url())
        return f"{parts.scheme}://{parts.netloc}/.default"

    @property
    def is_custom(self) -> bool:
        """True when the profile names its own endpoints instead of a Microsoft cloud."""
        return self.cloud == CUSTOM

    def validate(self) -> None:
        """Raise ConfigError (one line) when the profile cannot work as written."""
        where = f"profile {self.name!r}"
        if not self.tenant:
            raise ConfigError(f"{where}: 'tenant' is required")
        if not self.client_id:
            raise ConfigError(f"{where}: 'client_id' is required")
        if self.auth not in AUTH_KINDS:
            raise ConfigError(f"{where}: 'auth' must be one of {', '.join(AUTH_KINDS)}, not {self.auth!r}")
        if self.cloud != CUSTOM and self.cloud not in CLOUDS:
            try:
                get_cloud(self.cloud)
            except ValueError as exc:
                raise ConfigError(f"{where}: {exc}") from None
        if self.cloud == CUSTOM and not (self.authority and self.rest_base_url):
            raise ConfigError(f"{where}: cloud 'custom' needs 'authority' and 'rest_base_url'")
        for key in ("authority", "rest_base_url"):
            url = getattr(self, key)
            if url and urlsplit(url).scheme != "https":
                raise ConfigError(f"{where}: '{key}' must be an https:// URL (TLS stays on)")
        if self.auth == "secret" and not self.secret_env and not self.sandbox:
            raise ConfigError(f"{where}: auth 'secret' needs 'secret_env' (the variable holding the secret)")
        if self.auth == "certificate" and not (self.pfx_file or (self.cert_pem_file and self.cert_thumbprint)):
            raise ConfigError(
                f"{where}: auth 'certificate' needs 'pfx_file', or 'cert_pem_file' and 'cert_thumbprint'")
        if self.ca_file and not Path(self.ca_file).expanduser().is_file():
            raise ConfigError(f"{where}: CA bundle {self.ca_file!r} does not exist")

    def to_table(self) -> dict[str, Any]:
        """The profile as a TOML table (no name; None fields left out)."""
        table: dict[str, Any] = {}
        for f in fields(self):
            if f.name in ("name", "inherited") or f.name in self.inherited:
                continue
            value = getattr(self, f.name)
            if value is None or (f.name == "extra" and not value):
                continue
            table[f.name] = value
        return table


_FIELD_TYPES: Final[dict[str, type]] = {
    f.name: (bool if f.name == "sandbox" else dict if f.name == "extra" else str)
    for f in fields(Profile) if f.name not in ("name", "inherited")
}
#: Keys an `[apps.NAME]` table may hold: everything of a profile but the tenant and its own name.
APP_KEYS: Final = frozenset(_FIELD_TYPES) - {"tenant", "app", "sandbox", "extra"}
_TYPE_NAMES: Final = {str: "a string", bool: "true or false", dict: "a table"}


def _toml_type(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a float", str: "a string",
            list: "an array", dict: "a table"}.get(type(value), type(value).__name__)


#: Keys someone may try to put a secret under, and the key that names its variable instead.
_SECRET_KEYS: Final[dict[str, str]] = {
    "client_secret": "secret_env", "secret": "secret_env", "password": "secret_env",
    "pfx_passphrase": "pfx_passphrase_env", "passphrase": "pfx_passphrase_env",
}


def profile_from_table(name: str, table: Mapping[str, Any], *, source: str = "config",
                       apps: Mapping[str, Any] | None = None) -> Profile:
    """Build a Profile from a TOML table; wrong keys or types give one ConfigError line.

    A table with `app = "NAME"` takes the keys of `[apps.NAME]` (client id, credential, cloud) it
    does not set itself: one multi-tenant app registration, an authority per customer tenant.
    """
    where = f"{source}: profile {name!r}"
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where} must be a table, got {_toml_type(table)}")
    inherited: set[str] = set()
    app_name = table.get("app")
    if app_name is not None:
        app = (apps or {}).get(app_name) if isinstance(app_name, str) else None
        if not isinstance(app, Mapping):
            raise ConfigError(f"{where}: app {app_name!r} is not defined (add [apps.{app_name}] to the config)")
        wrong = sorted(set(app) - APP_KEYS)
        if wrong:
            raise ConfigError(f"{source}: app {app_name!r}: unknown key(s) {', '.join(map(repr, wrong))} "
                              f"(known: {', '.join(sorted(APP_KEYS))})")
        inherited = {k for k in app if k not in table}
        table = {**{k: app[k] for k in inherited}, **table}
    values: dict[str, Any] = {}
    for key, value in table.items():
        expected = _FIELD_TYPES.get(key)
        if expected is None:
            if key.lower() in _SECRET_KEYS:  # never echo its value
                raise ConfigError(f"{where}: unknown key {key!r}: secrets are never stored in the config; "
                                  f"remove it, put the value in an environment variable and name that "
                                  f"variable in {_SECRET_KEYS[key.lower()]!r}")
            known = ", ".join(sorted(_FIELD_TYPES))
            raise ConfigError(f"{where}: unknown key {key!r} (known: {known})")
        if not isinstance(value, expected) or (expected is str and isinstance(value, bool)):
            raise ConfigError(f"{where}: {key!r} must be {_TYPE_NAMES[expected]}, got {_toml_type(value)}")
        values[key] = dict(value) if isinstance(value, Mapping) else value
    for required in ("tenant", "client_id"):
        if required not in values:
            raise ConfigError(f"{where}: {required!r} is required")
    return Profile(name=name, **values, inherited=frozenset(inherited))


@dataclass
class Config:
    """config.toml in memory: profiles and the default profile name."""

    profiles: dict[str, Profile] = field(default_factory=dict)
    default: str | None = None


def _read_document(path: Path) -> tomlkit.TOMLDocument:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return tomlkit.document()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read ({exc.__class__.__name__})") from None
    try:
        return tomlkit.parse(text)
    except TOMLKitError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def _read_data(path: Path) -> dict[str, Any]:
    """config.toml as plain data (the standard library's reader: several times faster than
    tomlkit's, which the writers keep for its round trip of comments and layout)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read ({exc.__class__.__name__})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def load_config(path: Path | None = None) -> Config:
    """Read config.toml (missing file = no profiles); one ConfigError line when it is wrong."""
    path = path or config_path()
    data = _read_data(path)
    default = data.get("default")
    if default is not None and not isinstance(default, str):
        raise ConfigError(f"{path}: 'default' must be a string, got {_toml_type(default)}")
    raw_profiles = data.get("profiles", {})
    if not isinstance(raw_profiles, dict):
        raise ConfigError(f"{path}: 'profiles' must be a table, got {_toml_type(raw_profiles)}")
    apps = data.get("apps", {})
    if not isinstance(apps, dict):
        raise ConfigError(f"{path}: 'apps' must be a table, got {_toml_type(apps)}")
    profiles = {name: profile_from_table(name, table, source=str(path), apps=apps)
                for name, table in raw_profiles.items()}
    return Config(profiles=profiles, default=default)


def save_profile(profile: Profile, *, make_default: bool | None = None, path: Path | None = None) -> None:
    """Add or replace `profile` in config.toml (comments kept), atomically, mode 0600.

    `make_default=None` makes it the default only when there is no default yet.
    """
    profile.validate()
    path = path or config_path()
    doc = _read_document(path)
    load_config(path)  # refuse to rewrite a file we cannot read back
    profiles = doc.get("profiles")
    if profiles is None:
        profiles = tomlkit.table(is_super_table=True)
        doc["profiles"] = profiles
    table = tomlkit.table()
    for key, value in profile.to_table().items():
        table[key] = value
    profiles[profile.name] = table
    if make_default or (make_default is None and "default" not in doc):
        doc["default"] = profile.name
    write_private_file(path, tomlkit.dumps(doc))


def save_app(name: str, settings: Mapping[str, Any], *, path: Path | None = None) -> None:
    """Add or replace the multi-tenant app registration `[apps.NAME]` (no secret: `secret_env` names
    the variable; certificates by file), atomically, mode 0600."""
    wrong = sorted(set(settings) - APP_KEYS)
    if wrong:
        raise ConfigError(f"app {name!r}: unknown key(s) {', '.join(wrong)}")
    if not settings.get("client_id"):
        raise ConfigError(f"app {name!r}: 'client_id' is required")
    path = path or config_path()
    doc = _read_document(path)
    load_config(path)
    apps = doc.get("apps")
    if apps is None:
        apps = tomlkit.table(is_super_table=True)
        doc["apps"] = apps
    table = tomlkit.table()
    for key, value in settings.items():
        if value is not None:
            table[key] = value
    apps[name] = table
    write_private_file(path, tomlkit.dumps(doc))


def remove_profile(name: str, *, path: Path | None = None) -> bool:
    """Remove profile `name` (and its sandbox secret, if any); False when there was none."""
    path = path or config_path()
    doc = _read_document(path)
    profiles = doc.get("profiles")
    if profiles is None or name not in profiles:
        return False
    del profiles[name]
    if doc.get("default") == name:
        del doc["default"]
    write_private_file(path, tomlkit.dumps(doc))
    forget_sandbox_secret(name)
    return True


def get_profile(name: str, *, path: Path | None = None) -> Profile:
    """Return profile `name`; ConfigError lists the known ones when it does not exist."""
    config = load_config(path)
    try:
        return config.profiles[name]
    except KeyError:
        known = ", ".join(sorted(config.profiles)) or "none; run 'exocm login' or 'exocm profiles add'"
        raise ConfigError(f"no profile named {name!r} (known: {known})") from None


def default_profile_name(config: Config) -> str | None:
    """The profile used when none is named: `default`, else the only one, else None."""
    if config.default and config.default in config.profiles:
        return config.default
    if len(config.profiles) == 1:
        return next(iter(config.profiles))
    return None


# -- sandbox secrets ---------------------------------------------------------------------
# Design choice (issue 3/9): a real tenant's client secret is never written by exocm; the
# profile names an environment variable instead. A *sandbox* profile (sandbox = true)
# points at a local, throwaway tenant whose secret the sandbox printed itself; to make
# `exocm profiles add NAME --from-sandbox FILE` work out of the box, that secret is kept
# in a separate 0600 JSON file under the data dir (never in config.toml, never in argv).
# The environment variable, when set, still wins.


def _read_sandbox_secrets() -> dict[str, dict[str, str]]:
    try:
        data = json.loads(sandbox_secrets_path().read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError, OSError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {name: {k: v for k, v in kinds.items() if isinstance(k, str) and isinstance(v, str)}
            for name, kinds in data.items() if isinstance(name, str) and isinstance(kinds, dict)}


def store_sandbox_secret(profile_name: str, secret: str, *, kind: str = "client_secret") -> None:
    """Keep a sandbox profile's throwaway secret (`kind` client_secret or pfx_passphrase), 0600 file."""
    secrets = _read_sandbox_secrets()
    secrets.setdefault(profile_name, {})[kind] = secret
    write_private_file(sandbox_secrets_path(), json.dumps(secrets, indent=1))


def sandbox_secret(profile_name: str, *, kind: str = "client_secret") -> str | None:
    """The stored throwaway secret of sandbox profile `profile_name`, if any."""
    return _read_sandbox_secrets().get(profile_name, {}).get(kind)


def forget_sandbox_secret(profile_name: str) -> None:
    """Drop a sandbox profile's stored secrets (no-op when there are none)."""
    secrets = _read_sandbox_secrets()
    if secrets.pop(profile_name, None) is not None:
        write_private_file(sandbox_secrets_path(), json.dumps(secrets, indent=1))


def _env_suffix(profile_name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in profile_name.upper())


def default_secret_env(profile_name: str) -> str:
    """Conventional environment variable name for a profile's client secret."""
    return f"EXOCM_SECRET_{_env_suffix(profile_name)}"


def default_passphrase_env(profile_name: str) -> str:
    """Conventional environment variable name for a profile's certificate passphrase."""
    return f"EXOCM_PFX_PASSPHRASE_{_env_suffix(profile_name)}"


#: Keys of the JSON line `exocm sandbox serve --print-json` prints that a profile needs.
SANDBOX_INFO_KEYS: Final = ("tenant", "authority", "client_id", "rest_base_url", "scope", "ca_file")


def sandbox_profile(name: str, info: Mapping[str, Any], *, auth: str = "secret") -> Profile:
    """A profile for a running sandbox from its info (the `--print-json` line or `Sandbox.info`).

    The secret itself is not in the profile: for auth "secret" the caller keeps
    `info["client_secret"]` with `store_sandbox_secret` or hands it over in an env mapping.
    """
    missing = [k for k in SANDBOX_INFO_KEYS if not isinstance(info.get(k), str) or not info.get(k)]
    if missing:
        raise ConfigError(f"sandbox info lacks {', '.join(missing)} (expected the JSON line of "
                          "'exocm sandbox serve --print-json')")
    if auth not in AUTH_KINDS:
        raise ConfigError(f"'auth' must be one of {', '.join(AUTH_KINDS)}, not {auth!r}")
    extra: dict[str, Any] = {}
    if isinstance(info.get("graph_base_url"), str):
        extra["graph_base_url"] = info["graph_base_url"]
    profile = Profile(
        name=name,
        tenant=str(info["tenant"]),
        client_id=str(info["client_id"]),
        cloud=CUSTOM,
        auth=auth,
        authority=str(info["authority"]),
        rest_base_url=str(info["rest_base_url"]),
        scope=str(info["scope"]),
        ca_file=str(info["ca_file"]),
        sandbox=True,
        extra=extra,
    )
    if auth == "secret":
        profile.secret_env = default_secret_env(name)
    elif auth == "certificate":
        if info.get("client_pfx_file"):
            profile.pfx_file = str(info["client_pfx_file"])
            if info.get("client_pfx_passphrase"):
                profile.pfx_passphrase_env = default_passphrase_env(name)
        else:
            profile.cert_pem_file = str(info.get("client_cert_pem_file") or "")
            profile.key_pem_file = str(info.get("client_key_pem_file") or "") or None
            profile.cert_thumbprint = str(info.get("client_cert_thumbprint") or "")
    else:
        profile.client_id = str(info.get("device_client_id") or info["client_id"])
    return profile
