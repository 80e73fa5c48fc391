"""The pure rules behind issue 11's smaller findings (docs/security.md, "Tokens, requests and the
social graph"): which tokens are access tokens, how long one may live, which subjects and emails
Chorus can store, what runs in Azure, traceparent and correlation ids, display names, reasons."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from devhost.settings_file import example_settings
from shared_code.auth import (
    AuthenticationError,
    require_access_token,
    require_bounded_lifetime,
    storable_email,
    storable_subject,
)
from shared_code.domain.errors import Invalid
from shared_code.observability import bounded_correlation_id, trace_context
from shared_code.schemas.common import DISPLAY_NAME_PATTERN
from shared_code.schemas.moderation import moderation_reason
from shared_code.settings import EXAMPLE_CURSOR_SIGNING_KEY, LOCAL_AUTH_ISSUER, SettingsError, load_settings

# --- tokens ----------------------------------------------------------------------------------------

GRANTS: dict[str, Any] = {"roles": ["user"]}


@pytest.mark.parametrize(
    ("header", "claims"),
    [
        ({}, GRANTS),
        ({"typ": "JWT"}, GRANTS),  # Entra ID's access tokens
        ({"typ": "jwt"}, GRANTS),
        ({"typ": "at+jwt"}, {"scope": "read"}),  # RFC 9068
        ({"typ": "application/at+JWT"}, {"scp": "Chorus.Use"}),
        ({}, {"token_use": "access", "scp": "x"}),
    ],
)
def test_access_tokens_are_accepted(header: dict[str, Any], claims: dict[str, Any]) -> None:
    require_access_token(header, claims, "roles")


@pytest.mark.parametrize(
    ("header", "claims"),
    [
        ({"typ": "id+jwt"}, GRANTS),
        ({"typ": "logout+jwt"}, GRANTS),
        ({"typ": "dpop+jwt"}, GRANTS),
        ({"typ": "application/secevent+jwt"}, GRANTS),
        ({}, {**GRANTS, "nonce": "n"}),  # an OpenID Connect ID token
        ({}, {**GRANTS, "at_hash": "h"}),
        ({}, {**GRANTS, "c_hash": "h"}),
        ({}, {**GRANTS, "token_use": "id"}),
        ({"typ": "JWT"}, {}),  # an Entra ID token: typ JWT, but no scp and no roles
        ({}, {"roles": []}),
        ({}, {"scp": ""}),
    ],
)
def test_other_tokens_are_refused(header: dict[str, Any], claims: dict[str, Any]) -> None:
    with pytest.raises(AuthenticationError, match="not an access token"):
        require_access_token(header, claims, "roles")


def test_the_configured_role_claim_counts_as_a_grant() -> None:
    require_access_token({}, {"groups": ["user"]}, "groups")
    with pytest.raises(AuthenticationError):
        require_access_token({}, {"roles": ["user"]}, "groups")


def test_a_token_may_live_up_to_the_limit_and_no_longer() -> None:
    now = int(time.time())
    require_bounded_lifetime({"iat": now, "exp": now + 3600}, 3600)
    with pytest.raises(AuthenticationError, match="lifetime"):
        require_bounded_lifetime({"iat": now, "exp": now + 3601}, 3600)
    with pytest.raises(AuthenticationError, match="issue time"):
        require_bounded_lifetime({"exp": now + 60}, 3600)
    with pytest.raises(AuthenticationError, match="issue time"):
        require_bounded_lifetime({"iat": "yesterday", "exp": now + 60}, 3600)


@pytest.mark.parametrize("subject", ["a", "x" * 255, "00000000-0000-0000-0000-000000000000", "Ünïcode ✓"])
def test_storable_subjects(subject: str) -> None:
    assert storable_subject(subject) == subject


@pytest.mark.parametrize("subject", ["", None, 7, "x" * 256, "a\x00b", "a\nb", "a\x7fb", "a\ud800b", "\x85"])
def test_unstorable_subjects_are_401(subject: object) -> None:
    with pytest.raises(AuthenticationError):
        storable_subject(subject)


@pytest.mark.parametrize(
    ("email", "kept"),
    [
        ("ann@example.com", True),
        ("a.b+tag@sub.example.co.uk", True),
        ("a" * 240 + "@example.com", True),
        ("a" * 250 + "@example.com", False),  # over 254 characters
        ("no-at-sign", False),
        ("two@@example.com", False),
        ("space in@example.com", False),
        ("nul\x00@example.com", False),
        ("no@tld", False),
        (7, False),
        (None, False),
    ],
)
def test_emails_that_cannot_be_stored_are_dropped(email: object, kept: bool) -> None:
    assert storable_email(email) == (email if kept else None)


# --- settings: https keys, and what Azure refuses ----------------------------------------------------

VALID = {
    "POSTGRES_URL": "postgresql://app@db/chorus",
    "CosmosDB": "AccountEndpoint=https://localhost:8081/;AccountKey=a2V5;",
    "MediaStorage": "UseDevelopmentStorage=true",
    "AUTH_ISSUER": "https://login.microsoftonline.com/tenant/v2.0",
    "AUTH_AUDIENCE": "chorus-api",
    "AUTH_JWKS_URL": "https://login.microsoftonline.com/tenant/discovery/v2.0/keys",
    "CURSOR_SIGNING_KEY": "r" * 40,
}


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in (*VALID, "AUTH_PUBLIC_KEYS_PEM", "WEBSITE_INSTANCE_ID", "CHORUS_ENVIRONMENT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in VALID.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


def test_the_local_values_named_here_are_the_example_files(environment: pytest.MonkeyPatch) -> None:
    example = example_settings()
    assert example["AUTH_ISSUER"] == LOCAL_AUTH_ISSUER
    assert example["CURSOR_SIGNING_KEY"] == EXAMPLE_CURSOR_SIGNING_KEY
    assert example["CHORUS_ENVIRONMENT"] == "local"


def test_the_jwks_url_must_be_https(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("AUTH_JWKS_URL", "http://login.microsoftonline.com/keys")
    with pytest.raises(SettingsError, match=r"AUTH_JWKS_URL must be an https://"):
        load_settings()


@pytest.mark.parametrize(
    "marker",
    [{"WEBSITE_INSTANCE_ID": "abc123"}, {"CHORUS_ENVIRONMENT": "azure"}],
    ids=["azure-sets", "we-set"],
)
@pytest.mark.parametrize(
    ("setting", "value", "named"),
    [
        ("AUTH_ISSUER", LOCAL_AUTH_ISSUER + "/", "AUTH_ISSUER is the local host's issuer"),
        ("CURSOR_SIGNING_KEY", EXAMPLE_CURSOR_SIGNING_KEY, "CURSOR_SIGNING_KEY is the example key"),
    ],
)
def test_azure_refuses_the_local_issuer_and_the_example_cursor_key(
    environment: pytest.MonkeyPatch, marker: dict[str, str], setting: str, value: str, named: str
) -> None:
    environment.setenv(setting, value)
    assert not load_settings().in_azure  # fine locally
    for name, flag in marker.items():
        environment.setenv(name, flag)
    with pytest.raises(SettingsError, match=named):
        load_settings()


def test_azure_refuses_the_local_hosts_signing_key(environment: pytest.MonkeyPatch, tmp_path: Any) -> None:
    from devhost.tokens import public_key_pem

    environment.delenv("AUTH_JWKS_URL")
    environment.setenv("AUTH_PUBLIC_KEYS_PEM", public_key_pem(tmp_path))
    assert load_settings().auth_public_keys_pem  # the local host runs with it
    environment.setenv("WEBSITE_INSTANCE_ID", "abc123")
    with pytest.raises(SettingsError, match="AUTH_PUBLIC_KEYS_PEM holds the local host's signing key"):
        load_settings()
    # Another PEM key (a provider without a JWKS endpoint) is fine in Azure.
    unmarked = public_key_pem(tmp_path).split("\n", 1)[1]
    environment.setenv("AUTH_PUBLIC_KEYS_PEM", unmarked)
    assert load_settings().in_azure


def test_azure_with_proper_settings_starts(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("WEBSITE_INSTANCE_ID", "abc123")
    settings = load_settings()
    assert settings.in_azure
    assert settings.auth_max_token_lifetime_seconds == 28 * 3600


# --- traceparent and correlation ids ---------------------------------------------------------------

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
VALID_TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
_FRESH = re.compile(r"00-([0-9a-f]{32})-[0-9a-f]{16}-01")


def test_a_valid_traceparent_is_continued() -> None:
    context = trace_context(f"  {VALID_TRACEPARENT} ")
    assert (context.traceparent, context.correlation_id) == (VALID_TRACEPARENT, TRACE_ID)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "garbage",
        VALID_TRACEPARENT.upper(),
        "ff" + VALID_TRACEPARENT[2:],
        "01" + VALID_TRACEPARENT[2:] + "-extra",
        f"00-{'0' * 32}-00f067aa0ba902b7-01",
        f"00-{TRACE_ID}-{'0' * 16}-01",
        f"00-{TRACE_ID}-00f067aa0ba902b7-1",
        VALID_TRACEPARENT + "-00",  # version 00 has exactly four fields
        VALID_TRACEPARENT + "x",
        "x" * 10_000,
    ],
)
def test_an_invalid_traceparent_starts_a_fresh_trace(header: str | None) -> None:
    context = trace_context(header)
    match = _FRESH.fullmatch(context.traceparent)
    assert match and match.group(1) == context.correlation_id
    if header and header.strip():
        assert context.traceparent != header.strip()
    assert trace_context(header).correlation_id != context.correlation_id  # fresh each time


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        (TRACE_ID, True),
        ("123e4567-e89b-12d3-a456-426614174000", True),
        ("x" * 65, False),
        ("a b", False),
        ("a\nforged log line", False),
        ("", False),
        (None, False),
        (42, False),
    ],
)
def test_correlation_ids_read_back_are_bounded(value: object, kept: bool) -> None:
    assert bounded_correlation_id(value) == (value if kept else None)


# --- display names and moderation reasons ----------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "accepted"),
    [
        ("Alice", True),
        ("Zoë", True),
        ("محمد", True),
        ("👩\u200d💻", True),  # a joiner inside visible text
        ("x\u200by", True),
        ("\u200b", False),
        ("\u200b \u200c\u200d\ufeff", False),
        ("\u2060\u00ad", False),
        ("\u3164", False),
        ("   ", False),
        ("", False),
        ("a\x00b", False),
        *((f"a{chr(code)}b", False) for code in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))),
    ],
)
def test_display_names(name: str, accepted: bool) -> None:
    assert bool(re.fullmatch(DISPLAY_NAME_PATTERN, name)) is accepted


def test_a_moderation_reason_from_the_query_is_checked_like_a_decisions() -> None:
    assert moderation_reason(None) is None
    assert moderation_reason("spam") == "spam"
    assert moderation_reason("x" * 200) == "x" * 200
    for bad in ("", "   ", "x" * 201, "a\x00b"):
        with pytest.raises(Invalid):
            moderation_reason(bad)
