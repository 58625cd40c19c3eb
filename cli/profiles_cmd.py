"""`exocm login` and `exocm profiles list|show|add|remove|default`.

Profiles live in config.toml (see exocm.core.access.config); secrets never do: a profile names
the environment variable holding its client secret or certificate passphrase. A profile
made from a sandbox's JSON line keeps that sandbox's throwaway secret in a separate 0600
file (sandbox profiles only).
"""
from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click
from exocm.core.access.clouds import CLOUDS, CUSTOM
from exocm.core.access.config import (
    AUTH_KINDS,
    ConfigError,
    Profile,
    config_path,
    default_passphrase_env,
    default_profile_name,
    default_secret_env,
    get_profile,
    load_config,
    remove_profile,
    sandbox_profile,
    sandbox_secret,
    sandbox_secrets_path,
    save_profile,
    store_sandbox_secret,
)
from exocm.core.access.connect import EXO_TRANSPORTS, exo_transport, token_provider_for
from exocm.core.access.exo_host import PASSWORD_ENV as EXO_HOST_PASSWORD_ENV
from exocm.core.access.exo_host import exo_host_url, host_url
from exocm.core.inventory.onprem_live import SANDBOX_SECRET_KIND as WINRM_SECRET_KIND
from exocm.core.inventory.onprem_live import sandbox_winrm_extra

from .connection import print_device_code
from .errors import handle_errors, inert

CLOUD_CHOICES = [*CLOUDS, CUSTOM]


def _sign_in(profile: Profile) -> str | None:
    """Get a token for `profile` now; returns the signed-in user (delegated) or None."""
    provider = token_provider_for(profile, device_code_callback=print_device_code)
    provider.sign_in()
    return provider.username


def _interactive() -> bool:
    return sys.stdin.isatty()


def _ask(value: str | None, prompt: str, *, default: str | None = None, required: bool = True) -> str | None:
    if value:
        return value
    if not _interactive():
        if required and default is None:
            raise click.UsageError(f"missing --{prompt.lower().replace(' ', '-')} (no terminal to ask on)")
        return default
    answer: str = click.prompt(prompt, default=default or ("" if not required else None),
                               show_default=bool(default))
    return answer.strip() or None


LOGIN_EXAMPLES = """\b
Examples:
  export EXOCM_SECRET_CONTOSO='...'     the client secret, from the environment only
  exocm login --profile contoso --tenant contoso.onmicrosoft.com --client-id APP_ID --auth secret --secret-env EXOCM_SECRET_CONTOSO
  exocm login --profile contoso --tenant contoso.onmicrosoft.com --client-id APP_ID --auth certificate --pfx-file exocm.pfx --pfx-passphrase-env EXOCM_PFX_PASSPHRASE
  exocm login --profile me --tenant contoso.onmicrosoft.com --client-id APP_ID --auth device_code
  exocm login --profile contoso --exo-transport psrp --exo-host jump01.contoso.com --exo-host-user CONTOSO\\admin
                                        EXO through a Windows management host (password: EXOCM_EXO_HOST_PASSWORD)
  exocm login --profile contoso         sign in again with a saved profile
  exocm login                           asks for each setting on a terminal
  For a sandbox of your own: exocm profiles add NAME --from-sandbox FILE
"""


@click.command("login", epilog=LOGIN_EXAMPLES)
@click.option("--profile", "name", metavar="NAME", help="Profile to create, update or sign in with.")
@click.option("--tenant", help="Tenant: primary domain (contoso.onmicrosoft.com) or tenant id.")
@click.option("--cloud", type=click.Choice(CLOUD_CHOICES, case_sensitive=False), help="Microsoft cloud.")
@click.option("--auth", "auth", type=click.Choice(AUTH_KINDS), help="How to sign in.")
@click.option("--client-id", help="Application (client) id of the app registration.")
@click.option("--secret-env", metavar="VAR", help="Environment variable that holds the client secret.")
@click.option("--pfx-file", type=click.Path(dir_okay=False), help="Certificate as PFX/PKCS#12.")
@click.option("--pfx-passphrase-env", metavar="VAR", help="Environment variable holding the PFX passphrase.")
@click.option("--cert-pem-file", type=click.Path(dir_okay=False), help="Certificate (and key) as PEM.")
@click.option("--key-pem-file", type=click.Path(dir_okay=False), help="Private key PEM, if not in the cert PEM.")
@click.option("--cert-thumbprint", help="SHA-1 thumbprint of the certificate (with --cert-pem-file).")
@click.option("--username", help="UPN to sign in as (device code; picks the cached account).")
@click.option("--authority", help="Custom sign-in authority URL (cloud 'custom').")
@click.option("--rest-base-url", help="Custom Exchange REST base URL (cloud 'custom').")
@click.option("--scope", help="Custom OAuth scope (default: REST host + /.default).")
@click.option("--ca-file", type=click.Path(dir_okay=False), help="CA bundle for custom endpoints.")
@click.option("--exo-transport", "transport", type=click.Choice(EXO_TRANSPORTS), default=None,
              help="How to reach Exchange Online: REST (the default), or PowerShell remoting through a Windows "
                   "management host running ExchangeOnlineManagement (Connect-ExchangeOnline -AccessToken); "
                   "sets extra.exo_transport.")
@click.option("--exo-host", metavar="HOST", default=None,
              help="The management host for --exo-transport psrp: HOST (https://HOST:5986/wsman) or its WinRM "
                   "URL; sets extra.exo_host_url.")
@click.option("--exo-host-user", metavar="U", default=None,
              help=f"WinRM user on the management host (DOMAIN\\user); the password comes from {EXO_HOST_PASSWORD_ENV}.")
@click.option("--default/--no-default", "make_default", default=None,
              help="Make this the default profile (default: when it is the first one).")
@click.option("--check/--no-check", default=True, show_default=True,
              help="Sign in before saving the profile.")
@handle_errors
def login(name: str | None, tenant: str | None, cloud: str | None, auth: str | None, client_id: str | None,
          secret_env: str | None, pfx_file: str | None, pfx_passphrase_env: str | None,
          cert_pem_file: str | None, key_pem_file: str | None, cert_thumbprint: str | None,
          username: str | None, authority: str | None, rest_base_url: str | None, scope: str | None,
          ca_file: str | None, transport: str | None, exo_host: str | None, exo_host_user: str | None,
          make_default: bool | None, check: bool) -> None:
    """Sign in and save a connection profile (asks for what is missing).

    With only --profile NAME of an existing profile, signs in again with it: a fresh token from
    the authority, so a wrong or rotated credential shows here (a device-code profile shows a
    code to enter at the sign-in page when its cached sign-in no longer works).
    """
    settings = dict(tenant=tenant, cloud=cloud, auth=auth, client_id=client_id, secret_env=secret_env,
                    pfx_file=pfx_file, pfx_passphrase_env=pfx_passphrase_env, cert_pem_file=cert_pem_file,
                    key_pem_file=key_pem_file, cert_thumbprint=cert_thumbprint, username=username,
                    authority=authority, rest_base_url=rest_base_url, scope=scope, ca_file=ca_file)
    given = {k: v for k, v in settings.items() if v}
    extra_given = {k: v for k, v in (("exo_transport", transport), ("exo_host_url", exo_host and host_url(exo_host)),
                                     ("exo_host_user", exo_host_user)) if v}
    existing = load_config().profiles.get(name) if name else None
    if existing is not None and not given and not extra_given:
        who = _sign_in(existing)
        click.echo(f"signed in to {inert(existing.tenant)} with profile {existing.name!r}"
                   + (f" as {inert(who)}" if who else ""))
        return
    name = _ask(name, "Profile name", default="default")
    assert name
    base: dict[str, Any] = existing.to_table() if existing else {}
    base.update(given)
    base["tenant"] = _ask(base.get("tenant"), "Tenant")
    base["cloud"] = (_ask(base.get("cloud"), "Cloud", default="commercial") or "commercial").lower()
    base["auth"] = _ask(base.get("auth"), "Auth (secret, certificate, device_code)", default="device_code")
    base["client_id"] = _ask(base.get("client_id"), "Client id")
    if base["auth"] == "secret":
        base["secret_env"] = _ask(base.get("secret_env"), "Secret env", default=default_secret_env(name))
    elif base["auth"] == "certificate" and not (base.get("pfx_file") or base.get("cert_pem_file")):
        base["pfx_file"] = _ask(None, "PFX file")
        base["pfx_passphrase_env"] = _ask(base.get("pfx_passphrase_env"), "Passphrase env",
                                          default=default_passphrase_env(name), required=False)
    if base["cloud"] == CUSTOM:
        base["authority"] = _ask(base.get("authority"), "Authority")
        base["rest_base_url"] = _ask(base.get("rest_base_url"), "Rest base URL")
    if base.get("ca_file"):
        base["ca_file"] = str(Path(base["ca_file"]).expanduser().resolve())
    for key in ("pfx_file", "cert_pem_file", "key_pem_file"):
        if base.get(key):
            base[key] = str(Path(base[key]).expanduser().resolve())
    base["extra"] = _with_exo_transport(dict(base.get("extra") or {}), extra_given)
    profile = Profile(name=name, **{k: v for k, v in base.items() if v is not None})
    profile.validate()
    if exo_transport(profile) == "psrp":
        exo_host_url(profile)  # a management host is named (ConfigError otherwise)
    if check:
        if profile.auth == "secret" and profile.secret_env and not os.environ.get(profile.secret_env):
            raise ConfigError(f"export the client secret in {profile.secret_env} and run again "
                              "(or pass --no-check to save the profile without signing in)")
        who = _sign_in(profile)
        click.echo(f"signed in to {inert(profile.tenant)}" + (f" as {inert(who)}" if who else ""))
    save_profile(profile, make_default=make_default)
    click.echo(f"profile {name!r} saved in {config_path()}")


def _with_exo_transport(extra: dict[str, Any], given: Mapping[str, str]) -> dict[str, Any]:
    """The profile's `extra` with the EXO transport settings login was given (REST, the default, is
    written as no key, as 'profiles add' does; PSRP asks for the management host on a terminal)."""
    extra.update(given)
    if extra.get("exo_transport") == "rest":
        del extra["exo_transport"]
    if extra.get("exo_transport") == "psrp" and not (extra.get("exo_host_url") or extra.get("winrm_exo_url")):
        answer = _ask(None, "Exo host")  # missing --exo-host when there is no terminal
        assert answer
        extra["exo_host_url"] = host_url(answer)
        user = _ask(None, "Exo host user", required=False)
        if user:
            extra["exo_host_user"] = user
    return extra


@click.group("profiles")
def profiles() -> None:
    """List, show, add and remove connection profiles."""


@profiles.command("list")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="json: one JSON object per profile.")
@click.option("--json", "as_json", is_flag=True, hidden=True, help="Deprecated: same as --format json.")
@handle_errors
def list_profiles(fmt: str, as_json: bool) -> None:
    """List the configured profiles (* marks the default)."""
    as_json = as_json or fmt == "json"
    config = load_config()
    if as_json:
        for prof in config.profiles.values():
            click.echo(json.dumps({"name": prof.name, "default": prof.name == config.default,
                                   **prof.to_table()}, default=str))
        return
    if not config.profiles:
        click.echo("no profiles; run 'exocm login' or 'exocm profiles add NAME --from-sandbox FILE' "
                   "(without one, commands use the embedded SANDBOX)")
        return
    rows = [("", "NAME", "TENANT", "CLOUD", "AUTH", "")]
    for prof in config.profiles.values():
        rows.append(("*" if prof.name == config.default else "", prof.name, prof.tenant, prof.cloud,
                     prof.auth, "SANDBOX" if prof.sandbox else ""))
    widths = [max(len(inert(r[i])) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(inert(cell).ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


@profiles.command("show")
@click.argument("name")
@handle_errors
def show_profile(name: str) -> None:
    """Show one profile (secrets are never stored; shows whether their variables are set)."""
    prof = get_profile(name)
    config = load_config()
    click.echo(f"name = {prof.name}{'  (default)' if config.default == prof.name else ''}")
    for key, value in prof.to_table().items():
        if key == "extra":
            for sub, subvalue in value.items():
                click.echo(f"extra.{sub} = {inert(str(subvalue))}")
            continue
        click.echo(f"{key} = {inert(str(value))}")
    click.echo(f"authority (resolved) = {prof.resolved_authority()}")
    click.echo(f"rest_base_url (resolved) = {prof.resolved_rest_base_url()}")
    click.echo(f"scope (resolved) = {prof.resolved_scope()}")
    for var in (prof.secret_env, prof.pfx_passphrase_env):
        if var:
            click.echo(f"${var} is {'set' if os.environ.get(var) else 'NOT set'}")
    if prof.sandbox and sandbox_secret(prof.name):
        click.echo(f"sandbox secret: stored in {sandbox_secrets_path()} (0600, sandbox profiles only)")


@profiles.command("remove")
@click.argument("name")
@handle_errors
def remove(name: str) -> None:
    """Remove a profile (and a sandbox profile's stored secret)."""
    if not remove_profile(name):
        raise ConfigError(f"no profile named {name!r}")
    click.echo(f"profile {name!r} removed")


@profiles.command("default")
@click.argument("name")
@handle_errors
def set_default(name: str) -> None:
    """Make NAME the profile used when no --profile is given."""
    save_profile(get_profile(name), make_default=True)
    click.echo(f"profile {name!r} is now the default")


def _read_sandbox_info(source: str) -> Mapping[str, Any]:
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {source!r} ({exc.__class__.__name__})") from None
    for line in reversed(text.splitlines()):
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if isinstance(data, dict):
            return data
    raise ConfigError(f"{source!r} holds no JSON line from 'exocm sandbox serve --print-json'")


ADD_EXAMPLES = """\b
Examples:
  exocm sandbox serve --print-json > sandbox.json &
  exocm profiles add sbx --from-sandbox sandbox.json
  exocm profiles add sbx --from-sandbox sandbox.json --auth certificate --no-default
  exocm profiles add sbxhost --from-sandbox sandbox.json --exo-transport psrp --no-default
  exocm inventory --profile sbx
For a real tenant use 'exocm login'.
"""


@profiles.command("add", epilog=ADD_EXAMPLES)
@click.argument("name")
@click.option("--from-sandbox", "source", required=True, metavar="FILE",
              help="File with the JSON line of 'exocm sandbox serve --print-json' ('-' = stdin).")
@click.option("--auth", "auth", type=click.Choice(AUTH_KINDS), default="secret", show_default=True,
              help="Sign-in the profile uses against the sandbox.")
@click.option("--exo-transport", "transport", type=click.Choice(EXO_TRANSPORTS), default="rest",
              show_default=True,
              help="How to reach Exchange Online: REST, or PowerShell remoting through the sandbox's "
                   "Windows management host (Connect-ExchangeOnline -AccessToken); sets extra.exo_transport.")
@click.option("--default/--no-default", "make_default", default=None,
              help="Make this the default profile (default: when it is the first one).")
@handle_errors
def add(name: str, source: str, auth: str, transport: str, make_default: bool | None) -> None:
    """Add a profile for a running sandbox (`exocm sandbox serve --print-json > FILE`).

    A sandbox serving several tenants (`--tenants N`) gets one profile per tenant: NAME-1 ... NAME-N.
    """
    info = _read_sandbox_info(source)
    members = info.get("tenants")
    if isinstance(members, list):
        for k, member in enumerate(members, start=1):
            _add_one(f"{name}-{k}", member, source, auth, transport, make_default if k == 1 else False)
        click.echo(f"{len(members)} profiles saved: {name}-1 ... {name}-{len(members)}; "
                   f"use them together with --all-profiles or --profiles {name}-1,{name}-2")
        return
    _add_one(name, info, source, auth, transport, make_default)


def _add_one(name: str, info: Mapping[str, Any], source: str, auth: str, transport: str,
             make_default: bool | None) -> None:
    """Save the profile of one sandbox tenant (and its throwaway secrets)."""
    prof = sandbox_profile(name, info, auth=auth)
    prof.extra.update(sandbox_winrm_extra(info))  # the sandbox's WinRM endpoints (on-prem, EXO host)
    if transport == "psrp":
        if not prof.extra.get("winrm_exo_url"):
            raise ConfigError(f"{source!r}: this sandbox serves no WinRM management host (winrm_exo_url); "
                              "start it with WinRM on, or use --exo-transport rest")
        prof.extra["exo_transport"] = "psrp"
    prof.validate()
    save_profile(prof, make_default=make_default)
    # The sandbox's throwaway secret is kept in a 0600 file (sandbox profiles only, see
    # exocm.core.access.config); a real tenant's secret is never written by exocm.
    if auth == "secret" and isinstance(info.get("client_secret"), str):
        store_sandbox_secret(name, info["client_secret"])
    if prof.pfx_passphrase_env and isinstance(info.get("client_pfx_passphrase"), str):
        store_sandbox_secret(name, info["client_pfx_passphrase"], kind="pfx_passphrase")
    if isinstance(info.get("winrm_password"), str):
        store_sandbox_secret(name, info["winrm_password"], kind=WINRM_SECRET_KIND)
    where = (f"{prof.extra['winrm_exo_url']} (WinRM host)" if transport == "psrp"
             else prof.resolved_rest_base_url())
    click.echo(f"profile {name!r} saved (SANDBOX at {where}); "
               f"use it with --profile {name}")
    if default_profile_name(load_config()) == name:
        click.echo(f"it is now the default: commands without --profile use it, not the embedded sandbox "
                   f"('exocm profiles remove {name}' or 'exocm ... --sandbox' go back to the embedded one)")


APP_EXAMPLES = """\b
Examples (an MSP's multi-tenant app: one client id and certificate, consented in every customer):
  exocm profiles add-app msp --client-id 11111111-2222-3333-4444-555555555555 \\
      --cert-pem msp-app.pem --cert-thumbprint 0123ABCD...
  exocm profiles add-tenants --app msp --tenant contoso.onmicrosoft.com --tenant fabrikam.onmicrosoft.com
  exocm findings --all-profiles
"""


@profiles.command("add-app", epilog=APP_EXAMPLES)
@click.argument("name")
@click.option("--client-id", required=True, help="Application (client) id of the multi-tenant app.")
@click.option("--cloud", type=click.Choice(sorted(CLOUDS)), default="commercial", show_default=True)
@click.option("--cert-pem", "cert_pem_file", default=None, help="Certificate + key PEM of the app.")
@click.option("--key-pem", "key_pem_file", default=None, help="Private key PEM (when not in --cert-pem).")
@click.option("--cert-thumbprint", default=None, help="SHA-1 thumbprint of the certificate (hex).")
@click.option("--pfx", "pfx_file", default=None, help="PFX of the app's certificate.")
@click.option("--pfx-passphrase-env", default=None, metavar="VAR", help="Variable holding the PFX passphrase.")
@click.option("--secret-env", default=None, metavar="VAR", help="Variable holding a client secret (certificates are better).")
@handle_errors
def add_app(name: str, client_id: str, cloud: str, cert_pem_file: str | None, key_pem_file: str | None,
            cert_thumbprint: str | None, pfx_file: str | None, pfx_passphrase_env: str | None,
            secret_env: str | None) -> None:
    """Save a multi-tenant app registration ([apps.NAME]) that profiles of customer tenants share."""
    from exocm.core.access.config import save_app

    auth = "secret" if secret_env and not (pfx_file or cert_pem_file) else "certificate"
    if auth == "certificate" and not (pfx_file or (cert_pem_file and cert_thumbprint)):
        raise ConfigError("give --pfx FILE, or --cert-pem FILE and --cert-thumbprint, or --secret-env VAR")
    save_app(name, {"client_id": client_id, "cloud": cloud, "auth": auth, "cert_pem_file": cert_pem_file,
                    "key_pem_file": key_pem_file, "cert_thumbprint": cert_thumbprint, "pfx_file": pfx_file,
                    "pfx_passphrase_env": pfx_passphrase_env, "secret_env": secret_env})
    click.echo(f"app {name!r} saved; add its customer tenants with: exocm profiles add-tenants --app {name} "
               "--tenant ID ...")


def tenant_profile_name(prefix: str, tenant: str) -> str:
    """NAME-<first label of the tenant's domain> (or the first 8 characters of a tenant GUID)."""
    label = tenant.split(".", 1)[0] if "." in tenant else tenant[:8]
    return f"{prefix}-{label.lower()}"


@profiles.command("add-tenants", epilog=APP_EXAMPLES)
@click.option("--app", "app", required=True, help="The app ([apps.NAME], see add-app) the tenants share.")
@click.option("--tenant", "tenants", multiple=True, required=True, metavar="ID",
              help="A customer tenant (id or initial domain); repeat for each.")
@click.option("--prefix", default=None, help="Profile names PREFIX-<tenant> (default: the app's name).")
@handle_errors
def add_tenants(app: str, tenants: tuple[str, ...], prefix: str | None) -> None:
    """One profile per customer tenant of a multi-tenant app (the authority follows each tenant)."""

    names = []
    for tenant in tenants:
        name = tenant_profile_name(prefix or app, tenant)
        # The app's keys are read from [apps.APP] each time; the profile holds only its tenant.
        table = {"app": app, "tenant": tenant}
        from exocm.core.access.config import profile_from_table

        apps = _apps_table()
        prof: Profile = profile_from_table(name, table, apps=apps)
        save_profile(prof, make_default=False)
        names.append(name)
    click.echo(f"{len(names)} profiles saved: {', '.join(names)}; use them with --all-profiles")


def _apps_table() -> dict[str, Any]:
    import tomllib

    path = config_path()
    data = tomllib.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    apps = data.get("apps", {})
    return apps if isinstance(apps, dict) else {}
