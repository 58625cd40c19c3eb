"""The sandbox's Entra-like token endpoint, driven by msal over loopback TLS."""
from __future__ import annotations

import datetime as dt
import time
from typing import Any

import jwt
import msal
import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from exocm.cli.sandbox_cmd import sandbox as sandbox_group
from sandbox_clients import confidential_app, invoke, requests_session, rest_client


def _verified_claims(info: dict[str, Any], token: str) -> dict[str, Any]:
    """Verify `token` with the key set the sandbox publishes (jwks_uri of its OIDC document)."""
    session = requests_session(info)
    oidc = session.get(f"{info['authority']}/v2.0/.well-known/openid-configuration").json()
    keys = jwt.PyJWKSet.from_dict(session.get(oidc["jwks_uri"]).json())
    return jwt.decode(token, keys.keys[0].key, algorithms=["RS256"], audience=info["rest_base_url"])


def _rest_accepts(info: dict[str, Any], token: str) -> bool:
    with rest_client(info) as client:
        return invoke(client, info, token, "Get-Mailbox", ResultSize=1).status_code == 200


def test_client_secret_token_carries_tenant_audience_expiry_and_app_role(sandbox: Any) -> None:
    info = sandbox.info
    result = confidential_app(info).acquire_token_for_client([info["scope"]])
    assert "access_token" in result, result
    claims = _verified_claims(info, result["access_token"])
    assert claims["tid"] == info["tenant"]
    assert claims["aud"] == info["rest_base_url"]
    assert claims["appid"] == info["client_id"]
    assert "Exchange.ManageAsApp" in claims["roles"]
    assert claims["exp"] > time.time()
    assert _rest_accepts(info, result["access_token"])


def test_certificate_pem_with_thumbprint_signs_in(sandbox: Any) -> None:
    info = sandbox.info
    with open(info["client_key_pem_file"], encoding="ascii") as fh:
        credential = {"private_key": fh.read(), "thumbprint": info["client_cert_thumbprint"]}
    result = confidential_app(info, credential).acquire_token_for_client([info["scope"]])
    assert "access_token" in result, result.get("error_description")
    assert _rest_accepts(info, result["access_token"])


def test_certificate_pfx_with_passphrase_signs_in(sandbox: Any) -> None:
    info = sandbox.info
    credential = {"private_key_pfx_path": info["client_pfx_file"], "passphrase": info["client_pfx_passphrase"]}
    result = confidential_app(info, credential).acquire_token_for_client([info["scope"]])
    assert "access_token" in result, result.get("error_description")
    assert _rest_accepts(info, result["access_token"])


def test_device_code_auto_approved_gives_a_delegated_token_and_an_account(sandbox: Any) -> None:
    info = sandbox.info
    app = msal.PublicClientApplication(info["device_client_id"], authority=info["authority"],
                                       instance_discovery=False, http_client=requests_session(info))
    flow = app.initiate_device_flow(scopes=[info["scope"]])
    assert flow["user_code"] in flow["message"] and "/devicelogin" in flow["message"]
    result = app.acquire_token_by_device_flow(flow)
    assert "access_token" in result, result
    claims = jwt.decode(result["access_token"], options={"verify_signature": False})
    assert claims["upn"] == f"admin@{info['tenant_domain']}" and claims["scp"] == "Exchange.Manage"
    assert [a["username"] for a in app.get_accounts()] == [claims["upn"]]
    assert _rest_accepts(info, result["access_token"])
    # The refresh token works: msal renews silently once the cached access token is dropped.
    account = app.get_accounts()[0]
    app.token_cache.remove_at(next(iter(app.token_cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN))))
    silent = app.acquire_token_silent([info["scope"]], account=account)
    assert silent is not None and "access_token" in silent


def test_device_code_waits_for_approval_then_signs_in(make_sandbox: Any) -> None:
    sb = make_sandbox(auto_approve_device_code=False)
    info = sb.info
    session = requests_session(info)
    app = msal.PublicClientApplication(info["device_client_id"], authority=info["authority"],
                                       instance_discovery=False, http_client=session)
    flow = app.initiate_device_flow(scopes=[info["scope"]])
    pending = session.post(f"{info['authority']}/oauth2/v2.0/token", data={
        "grant_type": "urn:ietf:params:oauth:grant-type:device_code", "client_id": info["device_client_id"],
        "device_code": flow["device_code"]})
    assert pending.status_code == 400 and pending.json()["error"] == "authorization_pending"
    assert pending.json()["error_codes"] == [70016]
    # Approve through the CLI, the way an admin would in the sandbox.
    run = CliRunner().invoke(sandbox_group, ["approve", flow["user_code"], "--url", sb.base_url,
                                             "--ca-file", info["ca_file"]])
    assert run.exit_code == 0, run.output
    result = app.acquire_token_by_device_flow(flow)
    assert "access_token" in result, result


def test_wrong_secret_is_refused_with_entra_error(sandbox: Any) -> None:
    info = sandbox.info
    result = confidential_app(info, "not-the-secret").acquire_token_for_client([info["scope"]])
    assert result["error"] == "invalid_client"
    assert result["error_description"].startswith("AADSTS7000215:")
    assert 7000215 in result["error_codes"]


def test_unknown_client_id_is_refused(sandbox: Any) -> None:
    info = dict(sandbox.info, client_id="11111111-2222-3333-4444-555555555555")
    result = confidential_app(info).acquire_token_for_client([info["scope"]])
    assert result["error"] == "unauthorized_client" and "AADSTS700016" in result["error_description"]


def test_unknown_tenant_fails_discovery_with_aadsts90002(sandbox: Any) -> None:
    info = dict(sandbox.info)
    bad_authority = f"{sandbox.base_url}/00000000-1111-2222-3333-444444444444"
    resp = requests_session(info).get(f"{bad_authority}/v2.0/.well-known/openid-configuration")
    assert resp.status_code == 400 and "AADSTS90002" in resp.json()["error_description"]
    with pytest.raises(ValueError):
        msal.ConfidentialClientApplication(info["client_id"], authority=bad_authority,
                                           client_credential=info["client_secret"], instance_discovery=False,
                                           http_client=requests_session(info))


def test_certificate_not_registered_is_refused(sandbox: Any) -> None:
    info = sandbox.info
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "stranger")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256()))
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    credential = {"private_key": pem, "thumbprint": cert.fingerprint(hashes.SHA1()).hex()}
    result = confidential_app(info, credential).acquire_token_for_client([info["scope"]])
    assert result["error"] == "invalid_client" and "AADSTS700027" in result["error_description"]


def test_expired_client_assertion_is_refused(make_sandbox: Any) -> None:
    later = time.time() + 2 * 3600  # the sandbox lives two hours ahead of msal
    sb = make_sandbox(clock=lambda: later)
    info = sb.info
    credential = {"private_key_pfx_path": info["client_pfx_file"], "passphrase": info["client_pfx_passphrase"]}
    result = confidential_app(info, credential).acquire_token_for_client([info["scope"]])
    assert result["error"] == "invalid_client" and "AADSTS700024" in result["error_description"]


def test_scope_for_an_unknown_resource_is_refused(sandbox: Any) -> None:
    info = sandbox.info
    result = confidential_app(info).acquire_token_for_client(["https://outlook.office365.com/.default"])
    assert result["error"] == "invalid_resource" and "AADSTS500011" in result["error_description"]


def test_ca_bundle_environment_variables_do_not_reach_the_clients(sandbox: Any,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # Admin workstations (and these machines) set these; clients with trust_env=False ignore them.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/nonexistent/ca.pem")
    monkeypatch.setenv("CURL_CA_BUNDLE", "/nonexistent/ca.pem")
    monkeypatch.setenv("SSL_CERT_FILE", "/nonexistent/ca.pem")
    info = sandbox.info
    result = confidential_app(info).acquire_token_for_client([info["scope"]])
    assert "access_token" in result
    assert _rest_accepts(info, result["access_token"])


def test_v1_token_endpoint_accepts_a_resource_instead_of_a_scope(sandbox: Any) -> None:
    info = sandbox.info
    resp = requests_session(info).post(f"{info['authority']}/oauth2/token", data={
        "grant_type": "client_credentials", "client_id": info["client_id"], "client_secret": info["client_secret"],
        "resource": info["rest_base_url"]})
    assert resp.status_code == 200 and _rest_accepts(info, resp.json()["access_token"])
