"""Bearer-token verification: good tokens give a principal, every known attack gives a 401,
and a JWKS is fetched once, cached, refetched on rotation and never hammered."""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import socket
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from devhost.settings_file import example_settings
from devhost.tokens import issue_token, public_key_pem
from shared_code import auth
from shared_code.auth import AuthenticationError, AuthUnavailableError, Principal, TokenVerifier
from shared_code.settings import load_settings

ISSUER = "https://issuer.test/tenant"
AUDIENCE = "chorus-api"
MISSING = object()  # a claim override that removes the claim

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


# --- keys and tokens ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="session")
def second_ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="session")
def attacker_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="session")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(key: PrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def claims(**overrides: object) -> dict[str, Any]:
    now = int(time.time())
    values: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user-1",
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": "token-1",
        "roles": ["user"],
    }
    for name, value in overrides.items():
        if value is MISSING:
            values.pop(name, None)
        else:
            values[name] = value
    return values


def sign(key: PrivateKey, algorithm: str = "ES256", kid: str | None = None, **overrides: Any) -> str:
    headers = {"kid": kid} if kid is not None else None
    return jwt.encode(claims(**overrides), key, algorithm=algorithm, headers=headers)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(value: object) -> str:
    return b64(json.dumps(value).encode())


def bearer(token: str) -> str:
    return f"Bearer {token}"


async def rejected(verifier: TokenVerifier, header: str | None) -> str:
    """The 401 detail, after checking the error carries nothing of the token."""
    with pytest.raises(AuthenticationError) as caught:
        await verifier.authenticate(header)
    error = caught.value
    assert str(error) == error.detail
    assert error.__cause__ is None
    assert error.__suppress_context__ or error.__context__ is None
    token = (header or "").partition(" ")[2]
    for part in token.split("."):
        if len(part) > 8:
            assert part not in error.detail
    return error.detail


@pytest.fixture
def verifier(ec_key: ec.EllipticCurvePrivateKey, rsa_key: rsa.RSAPrivateKey) -> TokenVerifier:
    return TokenVerifier(issuer=ISSUER, audience=AUDIENCE, public_keys_pem=pem(ec_key) + pem(rsa_key))


# --- good tokens -------------------------------------------------------------------------------


async def test_a_valid_es256_token_gives_its_principal(verifier: TokenVerifier, ec_key: PrivateKey) -> None:
    principal = await verifier.authenticate(bearer(sign(ec_key, roles=["user", "moderator"])))
    assert principal == Principal(
        subject="user-1", roles=frozenset({"user", "moderator"}), token_id="token-1"
    )


@pytest.mark.parametrize("algorithm", ["RS256", "PS256"])
async def test_rsa_tokens_verify_against_the_second_pem_key(
    verifier: TokenVerifier, rsa_key: PrivateKey, algorithm: str
) -> None:
    principal = await verifier.authenticate(bearer(sign(rsa_key, algorithm)))
    assert principal.subject == "user-1"


async def test_es384_tokens_verify_against_a_p384_key() -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    verifier = TokenVerifier(issuer=ISSUER, audience=AUDIENCE, public_keys_pem=pem(key))
    assert (await verifier.authenticate(bearer(sign(key, "ES384")))).subject == "user-1"


async def test_each_of_several_pem_keys_is_tried(
    ec_key: PrivateKey, second_ec_key: PrivateKey, attacker_key: PrivateKey
) -> None:
    verifier = TokenVerifier(
        issuer=ISSUER, audience=AUDIENCE, public_keys_pem=pem(ec_key) + "\n" + pem(second_ec_key)
    )
    assert (await verifier.authenticate(bearer(sign(ec_key, sub="a")))).subject == "a"
    assert (await verifier.authenticate(bearer(sign(second_ec_key, sub="b")))).subject == "b"
    assert await rejected(verifier, bearer(sign(attacker_key))) == "invalid token signature"
    # The second key's signature matches, so its claims decide: not a signature error from the first.
    expired = sign(second_ec_key, exp=int(time.time()) - 3600)
    assert await rejected(verifier, bearer(expired)) == "token expired"


async def test_the_scheme_is_case_insensitive(verifier: TokenVerifier, ec_key: PrivateKey) -> None:
    assert (await verifier.authenticate(f"bearer  {sign(ec_key)} ")).subject == "user-1"


async def test_an_aud_list_holding_ours_is_accepted(verifier: TokenVerifier, ec_key: PrivateKey) -> None:
    token = sign(ec_key, aud=["other-api", AUDIENCE])
    assert (await verifier.authenticate(bearer(token))).subject == "user-1"


async def test_a_devhost_token_verifies_with_the_devhost_key(tmp_path: Path) -> None:
    settings = example_settings()
    verifier = TokenVerifier(
        issuer=settings["AUTH_ISSUER"],
        audience=settings["AUTH_AUDIENCE"],
        public_keys_pem=public_key_pem(tmp_path),
        role_claim=settings["AUTH_ROLE_CLAIM"],
    )
    principal = await verifier.authenticate(bearer(issue_token(tmp_path, "alice", "moderator")))
    assert principal.subject == "alice"
    assert principal.roles == frozenset({"moderator"})
    assert principal.is_moderator
    assert not principal.is_admin
    assert principal.token_id is not None
    other_host = issue_token(tmp_path / "other", "alice", "admin")
    assert await rejected(verifier, bearer(other_host)) == "invalid token signature"


async def test_from_settings_uses_the_auth_settings(
    monkeypatch: pytest.MonkeyPatch, ec_key: PrivateKey
) -> None:
    environment = {
        "POSTGRES_URL": "postgresql://app@db/chorus",
        "CosmosDB": "AccountEndpoint=https://localhost:8081/;AccountKey=a2V5;",
        "MediaStorage": "UseDevelopmentStorage=true",
        "AUTH_ISSUER": ISSUER,
        "AUTH_AUDIENCE": AUDIENCE,
        "AUTH_PUBLIC_KEYS_PEM": pem(ec_key),
        "AUTH_ROLE_CLAIM": "app_roles",
        "CURSOR_SIGNING_KEY": "x" * 32,
    }
    monkeypatch.delenv("AUTH_JWKS_URL", raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    verifier = TokenVerifier.from_settings(load_settings())
    principal = await verifier.authenticate(bearer(sign(ec_key, app_roles=["admin"])))
    assert principal.is_admin


# --- roles ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("claim", "roles"),
    [
        (["user", "moderator"], {"user", "moderator"}),
        ("user  moderator", {"user", "moderator"}),
        ("admin", {"admin"}),
        (["beta-tester"], {"beta-tester"}),
        ([], set()),
        ("", set()),
        (MISSING, set()),
    ],
)
async def test_roles_come_from_a_list_or_a_space_separated_string(
    verifier: TokenVerifier, ec_key: PrivateKey, claim: object, roles: set[str]
) -> None:
    # A delegated scope makes it an access token even with no roles (require_access_token).
    principal = await verifier.authenticate(bearer(sign(ec_key, roles=claim, scp="Chorus.Use")))
    assert principal.roles == frozenset(roles)


@pytest.mark.parametrize("claim", [{"admin": True}, ["admin", 1], 7])
async def test_a_role_claim_of_another_shape_is_refused(
    verifier: TokenVerifier, ec_key: PrivateKey, claim: object
) -> None:
    assert await rejected(verifier, bearer(sign(ec_key, roles=claim))) == "malformed token"


async def test_the_role_claim_name_is_configurable(ec_key: PrivateKey) -> None:
    verifier = TokenVerifier(
        issuer=ISSUER, audience=AUDIENCE, public_keys_pem=pem(ec_key), role_claim="app_roles"
    )
    principal = await verifier.authenticate(bearer(sign(ec_key, app_roles=["admin"], roles=["user"])))
    assert principal.roles == frozenset({"admin"})


@pytest.mark.parametrize(
    ("roles", "moderator", "admin"),
    [(set(), False, False), ({"user"}, False, False), ({"moderator"}, True, False), ({"admin"}, True, True)],
)
def test_moderator_and_admin(roles: set[str], moderator: bool, admin: bool) -> None:
    principal = Principal(subject="s", roles=frozenset(roles), token_id=None)
    assert principal.is_moderator is moderator
    assert principal.is_admin is admin


async def test_token_id_is_none_without_jti(verifier: TokenVerifier, ec_key: PrivateKey) -> None:
    assert (await verifier.authenticate(bearer(sign(ec_key, jti=MISSING)))).token_id is None


# --- the header ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [None, "", "   ", "Bearer", "Bearer   ", "Basic dXNlcjpwYXNzd29yZA==", "Token abc.def.ghi", "Bearerabc"],
)
async def test_no_bearer_token_is_rejected(verifier: TokenVerifier, header: str | None) -> None:
    assert await rejected(verifier, header) == "missing bearer token"


async def test_a_token_with_spaces_or_of_absurd_length_is_malformed(
    verifier: TokenVerifier, ec_key: PrivateKey
) -> None:
    assert await rejected(verifier, bearer(sign(ec_key) + " extra")) == "malformed token"
    assert await rejected(verifier, bearer("a" * 20_000 + ".b.c")) == "malformed token"


# --- algorithm attacks ---------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "", None, ["ES256"], {"alg": "ES256"}])
@pytest.mark.parametrize("signature", ["", "c2lnbmF0dXJl"])
async def test_unsigned_tokens_are_rejected(verifier: TokenVerifier, alg: object, signature: str) -> None:
    token = f"{segment({'alg': alg, 'typ': 'JWT'})}.{segment(claims())}.{signature}"
    assert await rejected(verifier, bearer(token)) == "unsupported token algorithm"


async def test_a_header_without_alg_is_rejected(verifier: TokenVerifier) -> None:
    token = f"{segment({'typ': 'JWT'})}.{segment(claims())}.c2ln"
    assert await rejected(verifier, bearer(token)) == "unsupported token algorithm"


@pytest.mark.parametrize(("alg", "digest"), [("HS256", "sha256"), ("HS384", "sha384"), ("HS512", "sha512")])
async def test_hmac_signed_with_the_public_key_is_rejected(
    verifier: TokenVerifier, ec_key: PrivateKey, alg: str, digest: str
) -> None:
    # The classic confusion: a verifier that lets the header pick the algorithm would use the
    # public PEM (which the attacker knows) as an HMAC secret.
    signing_input = f"{segment({'alg': alg, 'typ': 'JWT'})}.{segment(claims(roles=['admin']))}"
    mac = hmac.new(pem(ec_key).encode(), signing_input.encode(), digest).digest()
    assert await rejected(verifier, bearer(f"{signing_input}.{b64(mac)}")) == "unsupported token algorithm"


async def test_an_algorithm_no_configured_key_uses_is_rejected(
    ec_key: PrivateKey, rsa_key: PrivateKey
) -> None:
    verifier = TokenVerifier(issuer=ISSUER, audience=AUDIENCE, public_keys_pem=pem(ec_key))
    assert await rejected(verifier, bearer(sign(rsa_key, "RS256"))) == "unsupported token algorithm"
    # ES512 is a fine algorithm elsewhere, but not on the allow-list here.
    p521 = ec.generate_private_key(ec.SECP521R1())
    assert await rejected(verifier, bearer(sign(p521, "ES512"))) == "unsupported token algorithm"


async def test_an_es256_signature_relabelled_es384_is_rejected(ec_key: PrivateKey) -> None:
    p384 = ec.generate_private_key(ec.SECP384R1())
    verifier = TokenVerifier(issuer=ISSUER, audience=AUDIENCE, public_keys_pem=pem(ec_key) + pem(p384))
    _, payload, signature = sign(ec_key).split(".")
    relabelled = f"{segment({'alg': 'ES384', 'typ': 'JWT'})}.{payload}.{signature}"
    assert await rejected(verifier, bearer(relabelled)) == "invalid token signature"


# --- signatures ----------------------------------------------------------------------------------


async def test_a_token_signed_by_another_key_is_rejected(
    verifier: TokenVerifier, attacker_key: PrivateKey
) -> None:
    assert await rejected(verifier, bearer(sign(attacker_key, roles=["admin"]))) == "invalid token signature"


async def test_a_tampered_payload_is_rejected(verifier: TokenVerifier, ec_key: PrivateKey) -> None:
    header, _, signature = sign(ec_key).split(".")
    forged = f"{header}.{segment(claims(sub='someone-else', roles=['admin']))}.{signature}"
    assert await rejected(verifier, bearer(forged)) == "invalid token signature"


async def test_a_stripped_signature_is_rejected(verifier: TokenVerifier, ec_key: PrivateKey) -> None:
    header, payload, _ = sign(ec_key).split(".")
    assert await rejected(verifier, bearer(f"{header}.{payload}.")) == "invalid token signature"


# --- claims --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "detail"),
    [
        ({"iss": "https://evil.test/tenant"}, "wrong issuer"),
        ({"iss": MISSING}, "wrong issuer"),
        ({"aud": "other-api"}, "wrong audience"),
        ({"aud": ["other-api", "third-api"]}, "wrong audience"),
        ({"aud": MISSING}, "wrong audience"),
        ({"sub": MISSING}, "token has no subject"),
        ({"sub": ""}, "token has no subject"),
        ({"sub": 42}, "token has no subject"),
        ({"exp": MISSING}, "token has no expiry"),
        ({"exp": "tomorrow"}, "malformed token"),
        ({"jti": 5}, "malformed token"),
    ],
)
async def test_bad_claims_are_rejected(
    verifier: TokenVerifier, ec_key: PrivateKey, overrides: dict[str, Any], detail: str
) -> None:
    assert await rejected(verifier, bearer(sign(ec_key, **overrides))) == detail


async def test_expiry_allows_the_leeway_and_no_more(ec_key: PrivateKey) -> None:
    verifier = TokenVerifier(issuer=ISSUER, audience=AUDIENCE, public_keys_pem=pem(ec_key))
    now = int(time.time())
    assert await rejected(verifier, bearer(sign(ec_key, exp=now - 60))) == "token expired"
    assert (await verifier.authenticate(bearer(sign(ec_key, exp=now - 10)))).subject == "user-1"
    strict = TokenVerifier(issuer=ISSUER, audience=AUDIENCE, public_keys_pem=pem(ec_key), leeway_seconds=0)
    assert await rejected(strict, bearer(sign(ec_key, exp=now - 10))) == "token expired"


async def test_not_before_allows_the_leeway_and_no_more(ec_key: PrivateKey) -> None:
    verifier = TokenVerifier(issuer=ISSUER, audience=AUDIENCE, public_keys_pem=pem(ec_key))
    now = int(time.time())
    assert await rejected(verifier, bearer(sign(ec_key, nbf=now + 120))) == "token not valid yet"
    assert await rejected(verifier, bearer(sign(ec_key, iat=now + 120, nbf=MISSING))) == "token not valid yet"
    assert (await verifier.authenticate(bearer(sign(ec_key, nbf=now + 10, iat=now + 10)))).subject == "user-1"
    strict = TokenVerifier(issuer=ISSUER, audience=AUDIENCE, public_keys_pem=pem(ec_key), leeway_seconds=0)
    assert await rejected(strict, bearer(sign(ec_key, nbf=now + 10))) == "token not valid yet"


# --- malformed tokens ----------------------------------------------------------------------------


def _signed_payload(key: PrivateKey, payload: bytes) -> str:
    # A valid signature over a payload that is not a JSON object.
    return jwt.api_jws.encode(payload, key, algorithm="ES256")


@pytest.mark.parametrize(
    "make_token",
    [
        lambda key: "garbage",
        lambda key: "a.b",
        lambda key: ".".join(sign(key).split(".")[:2]),
        lambda key: "!!!!.!!!!.!!!!",
        lambda key: "a.b.c.d.e",
        lambda key: f"{b64(b'{not json')}.{segment(claims())}.c2ln",
        lambda key: f"{segment(['ES256'])}.{segment(claims())}.c2ln",
        lambda key: f"{segment({'alg': 'ES256', 'kid': 7})}.{segment(claims())}.c2ln",
        lambda key: f"{segment({'alg': 'ES256', 'crit': ['exp']})}.{segment(claims())}.c2ln",
        lambda key: _signed_payload(key, b"not json"),
        lambda key: _signed_payload(key, b'["a", "list"]'),
    ],
    ids=[
        "garbage",
        "two-segments",
        "real-token-two-segments",
        "bad-base64",
        "five-segments",
        "header-not-json",
        "header-not-object",
        "kid-not-string",
        "unknown-crit",
        "payload-not-json",
        "payload-not-object",
    ],
)
async def test_malformed_tokens_are_rejected(
    verifier: TokenVerifier, ec_key: PrivateKey, make_token: Any
) -> None:
    assert await rejected(verifier, bearer(make_token(ec_key))) == "malformed token"


# --- configuration -------------------------------------------------------------------------------


def test_a_bad_pem_names_the_setting(ec_key: ec.EllipticCurvePrivateKey) -> None:
    private_pem = ec_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    weak_rsa = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    p521 = ec.generate_private_key(ec.SECP521R1())
    broken = pem(ec_key).replace("A", "*", 3)
    for text in [
        "not a key",
        private_pem,
        pem(weak_rsa),
        pem(p521),
        broken,
        pem(ec_key) + "-----BEGIN PUBLIC",
    ]:
        with pytest.raises(ValueError, match="AUTH_PUBLIC_KEYS_PEM") as caught:
            TokenVerifier(issuer=ISSUER, audience=AUDIENCE, public_keys_pem=text)
        body = "".join(private_pem.splitlines()[1:-1])
        assert body[:20] not in str(caught.value)


def test_exactly_one_key_source_is_required(ec_key: PrivateKey) -> None:
    with pytest.raises(ValueError, match="AUTH_JWKS_URL"):
        TokenVerifier(issuer=ISSUER, audience=AUDIENCE)
    with pytest.raises(ValueError, match="AUTH_JWKS_URL"):
        TokenVerifier(
            issuer=ISSUER, audience=AUDIENCE, public_keys_pem=pem(ec_key), jwks_url="https://x.test/k"
        )


async def test_a_pem_with_escaped_newlines_is_accepted(ec_key: PrivateKey) -> None:
    one_line = pem(ec_key).replace("\n", "\\n")
    verifier = TokenVerifier(issuer=ISSUER, audience=AUDIENCE, public_keys_pem=one_line)
    assert (await verifier.authenticate(bearer(sign(ec_key)))).subject == "user-1"


# --- JWKS ----------------------------------------------------------------------------------------


class JwksServer:
    """A JWKS endpoint on 127.0.0.1 that counts its fetches."""

    def __init__(self) -> None:
        self.document: object = {"keys": []}
        self.status = 200
        self.hang = False
        self.fetches = 0
        self.url = ""
        self.release = asyncio.Event()

    def publish(self, *keys: dict[str, Any]) -> None:
        self.document = {"keys": list(keys)}

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.fetches += 1
        if self.hang:
            await self.release.wait()
        if self.status != 200:
            return web.Response(status=self.status, text="unavailable")
        if isinstance(self.document, str):
            return web.Response(text=self.document)
        return web.json_response(self.document)


@pytest.fixture
async def jwks_server() -> AsyncIterator[JwksServer]:
    server = JwksServer()
    app = web.Application()
    app.router.add_get("/keys", server.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.url = f"http://127.0.0.1:{runner.addresses[0][1]}/keys"
    yield server
    server.release.set()
    await runner.cleanup()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(auth, "monotonic", fake)
    return fake


def ec_jwk(key: ec.EllipticCurvePrivateKey, kid: str, **extra: object) -> dict[str, Any]:
    return {**ECAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": kid, "use": "sig", **extra}


def rsa_jwk(key: rsa.RSAPrivateKey, kid: str, **extra: object) -> dict[str, Any]:
    return {**RSAAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": kid, **extra}


def jwks_verifier(server: JwksServer) -> TokenVerifier:
    return TokenVerifier(issuer=ISSUER, audience=AUDIENCE, jwks_url=server.url)


async def test_jwks_keys_are_fetched_once_and_cached(
    jwks_server: JwksServer, clock: Clock, ec_key: ec.EllipticCurvePrivateKey, rsa_key: rsa.RSAPrivateKey
) -> None:
    jwks_server.publish(ec_jwk(ec_key, "ec-1", alg="ES256"), rsa_jwk(rsa_key, "rsa-1"))
    verifier = jwks_verifier(jwks_server)
    for _ in range(3):
        assert (await verifier.authenticate(bearer(sign(ec_key, kid="ec-1")))).subject == "user-1"
        assert (await verifier.authenticate(bearer(sign(rsa_key, "RS256", kid="rsa-1")))).subject == "user-1"
    clock.advance(599)
    await verifier.authenticate(bearer(sign(ec_key, kid="ec-1")))
    assert jwks_server.fetches == 1
    clock.advance(2)  # past the 600 s cache lifetime
    await verifier.authenticate(bearer(sign(ec_key, kid="ec-1")))
    assert jwks_server.fetches == 2


async def test_concurrent_requests_on_a_cold_cache_share_one_fetch(
    jwks_server: JwksServer, clock: Clock, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    jwks_server.publish(ec_jwk(ec_key, "ec-1"))
    verifier = jwks_verifier(jwks_server)
    token = bearer(sign(ec_key, kid="ec-1"))
    principals = await asyncio.gather(*(verifier.authenticate(token) for _ in range(10)))
    assert {principal.subject for principal in principals} == {"user-1"}
    assert jwks_server.fetches == 1


async def test_a_rotated_key_is_fetched_on_its_first_token(
    jwks_server: JwksServer,
    clock: Clock,
    ec_key: ec.EllipticCurvePrivateKey,
    second_ec_key: ec.EllipticCurvePrivateKey,
) -> None:
    jwks_server.publish(ec_jwk(ec_key, "old"))
    verifier = jwks_verifier(jwks_server)
    await verifier.authenticate(bearer(sign(ec_key, kid="old")))
    clock.advance(60)
    jwks_server.publish(ec_jwk(ec_key, "old"), ec_jwk(second_ec_key, "new"))
    assert (await verifier.authenticate(bearer(sign(second_ec_key, kid="new", sub="b")))).subject == "b"
    assert jwks_server.fetches == 2
    await verifier.authenticate(bearer(sign(second_ec_key, kid="new")))
    assert jwks_server.fetches == 2


async def test_unknown_kids_are_rejected_and_refetch_at_most_every_30_seconds(
    jwks_server: JwksServer, clock: Clock, ec_key: ec.EllipticCurvePrivateKey, attacker_key: PrivateKey
) -> None:
    jwks_server.publish(ec_jwk(ec_key, "ec-1"))
    verifier = jwks_verifier(jwks_server)
    await verifier.authenticate(bearer(sign(ec_key, kid="ec-1")))
    clock.advance(31)
    flood = [bearer(sign(attacker_key, kid=str(uuid.uuid4()))) for _ in range(20)]
    for header in flood:
        assert await rejected(verifier, header) == "unknown token signing key"
    assert jwks_server.fetches == 2  # one refetch for the whole flood
    clock.advance(29)
    assert await rejected(verifier, flood[0]) == "unknown token signing key"
    assert jwks_server.fetches == 2
    clock.advance(2)
    assert await rejected(verifier, flood[0]) == "unknown token signing key"
    assert jwks_server.fetches == 3
    # A known kid still works throughout, without fetching.
    await verifier.authenticate(bearer(sign(ec_key, kid="ec-1")))
    assert jwks_server.fetches == 3


async def test_a_token_signed_by_another_key_under_a_known_kid_is_rejected(
    jwks_server: JwksServer, clock: Clock, ec_key: ec.EllipticCurvePrivateKey, attacker_key: PrivateKey
) -> None:
    jwks_server.publish(ec_jwk(ec_key, "ec-1"))
    verifier = jwks_verifier(jwks_server)
    assert await rejected(verifier, bearer(sign(attacker_key, kid="ec-1"))) == "invalid token signature"


async def test_a_token_without_kid_is_tried_against_each_jwks_key(
    jwks_server: JwksServer,
    clock: Clock,
    ec_key: ec.EllipticCurvePrivateKey,
    second_ec_key: ec.EllipticCurvePrivateKey,
) -> None:
    jwks_server.publish(ec_jwk(ec_key, "ec-1"), ec_jwk(second_ec_key, "ec-2"))
    verifier = jwks_verifier(jwks_server)
    assert (await verifier.authenticate(bearer(sign(second_ec_key)))).subject == "user-1"


async def test_jwks_keys_verify_only_their_own_algorithm(
    jwks_server: JwksServer, clock: Clock, ec_key: ec.EllipticCurvePrivateKey, rsa_key: rsa.RSAPrivateKey
) -> None:
    secret = b"a shared secret that must never verify anything here"
    jwks_server.publish(
        rsa_jwk(rsa_key, "rsa-1"),  # no alg: PyJWT binds RS256
        ec_jwk(ec_key, "ec-1"),
        {"kty": "oct", "k": b64(secret), "kid": "hmac", "alg": "HS256"},
    )
    verifier = jwks_verifier(jwks_server)
    hs256 = jwt.encode(claims(), secret, algorithm="HS256", headers={"kid": "hmac"})
    assert await rejected(verifier, bearer(hs256)) == "unsupported token algorithm"
    assert (
        await rejected(verifier, bearer(sign(rsa_key, "PS256", kid="rsa-1"))) == "unsupported token algorithm"
    )
    # An RS256 token naming the EC key's kid: no algorithm confusion across keys.
    assert (
        await rejected(verifier, bearer(sign(rsa_key, "RS256", kid="ec-1"))) == "unsupported token algorithm"
    )
    assert (await verifier.authenticate(bearer(sign(rsa_key, "RS256", kid="rsa-1")))).subject == "user-1"


async def test_stale_keys_are_used_while_the_provider_is_down(
    jwks_server: JwksServer, clock: Clock, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    jwks_server.publish(ec_jwk(ec_key, "ec-1"))
    verifier = jwks_verifier(jwks_server)
    token = bearer(sign(ec_key, kid="ec-1"))
    await verifier.authenticate(token)
    jwks_server.status = 503
    clock.advance(601)
    assert (await verifier.authenticate(token)).subject == "user-1"
    await verifier.authenticate(token)
    assert jwks_server.fetches == 2  # the failed refresh is not retried at once
    jwks_server.status = 200
    clock.advance(31)
    await verifier.authenticate(token)
    assert jwks_server.fetches == 3


async def test_a_failed_first_fetch_is_retried_after_the_minimum_interval(
    jwks_server: JwksServer, clock: Clock, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    jwks_server.publish(ec_jwk(ec_key, "ec-1"))
    jwks_server.status = 500
    verifier = jwks_verifier(jwks_server)
    token = bearer(sign(ec_key, kid="ec-1"))
    with pytest.raises(AuthUnavailableError):
        await verifier.authenticate(token)
    with pytest.raises(AuthUnavailableError):
        await verifier.authenticate(token)
    assert jwks_server.fetches == 1
    jwks_server.status = 200
    clock.advance(31)
    assert (await verifier.authenticate(token)).subject == "user-1"
    assert jwks_server.fetches == 2


@pytest.mark.parametrize(
    "document",
    [
        "not json",
        ["a", "list"],
        {"keys": []},
        {"keys": "none"},
        {"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"}]},
        {"not-keys": 1},
    ],
    ids=["not-json", "not-object", "empty", "keys-not-list", "only-hmac", "no-keys"],
)
async def test_an_unusable_jwks_makes_auth_unavailable(
    jwks_server: JwksServer, clock: Clock, ec_key: PrivateKey, document: object
) -> None:
    jwks_server.document = document
    with pytest.raises(AuthUnavailableError):
        await jwks_verifier(jwks_server).authenticate(bearer(sign(ec_key, kid="ec-1")))


async def test_an_unreachable_jwks_makes_auth_unavailable_quickly(ec_key: PrivateKey) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Nothing listens on the port now: the connection is refused at once.
    verifier = TokenVerifier(issuer=ISSUER, audience=AUDIENCE, jwks_url=f"http://127.0.0.1:{port}/keys")
    started = time.monotonic()
    async with asyncio.timeout(10):
        with pytest.raises(AuthUnavailableError):
            await verifier.authenticate(bearer(sign(ec_key, kid="ec-1")))
    assert time.monotonic() - started < 6


async def test_a_hanging_jwks_times_out(
    jwks_server: JwksServer, monkeypatch: pytest.MonkeyPatch, ec_key: PrivateKey
) -> None:
    monkeypatch.setattr(auth, "_JWKS_FETCH_TIMEOUT_SECONDS", 0.2)
    jwks_server.hang = True
    started = time.monotonic()
    async with asyncio.timeout(5):
        with pytest.raises(AuthUnavailableError):
            await jwks_verifier(jwks_server).authenticate(bearer(sign(ec_key, kid="ec-1")))
    assert time.monotonic() - started < 2


# --- verified tokens are remembered until they expire ------------------------------------------


class CountingDecode:
    """jwt.decode, counted: how many signature checks the verifier made."""

    def __init__(self) -> None:
        self.calls = 0
        self.decode = jwt.decode

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return self.decode(*args, **kwargs)


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> CountingDecode:
    counting = CountingDecode()
    monkeypatch.setattr(jwt, "decode", counting)
    return counting


class WallClock:
    def __init__(self) -> None:
        self.now = time.time()

    def time(self) -> float:
        return self.now


def test_a_verified_token_is_usable_again_only_before_its_expiry() -> None:
    assert auth.verified_token_usable(expires_at=1000.0, now=999.9)
    assert not auth.verified_token_usable(expires_at=1000.0, now=1000.0)


async def test_the_same_token_again_is_not_verified_again(
    verifier: TokenVerifier, ec_key: PrivateKey, decodes: CountingDecode
) -> None:
    token = bearer(sign(ec_key, roles=["user", "moderator"]))
    first = await verifier.authenticate(token)
    assert decodes.calls == 1
    for _ in range(3):
        assert await verifier.authenticate(token) == first
    assert decodes.calls == 1
    other = bearer(sign(ec_key, sub="user-2"))
    assert (await verifier.authenticate(other)).subject == "user-2"  # another token: its own check
    assert decodes.calls == 2


async def test_a_remembered_token_is_verified_afresh_once_it_expired(
    verifier: TokenVerifier, ec_key: PrivateKey, decodes: CountingDecode, monkeypatch: pytest.MonkeyPatch
) -> None:
    exp = int(time.time()) + 300
    token = bearer(sign(ec_key, exp=exp))
    await verifier.authenticate(token)
    wall = WallClock()
    monkeypatch.setattr(auth, "time", wall)
    wall.now = exp - 1
    await verifier.authenticate(token)
    assert decodes.calls == 1
    wall.now = exp  # past its expiry by the verifier's clock: not taken from memory any more
    await verifier.authenticate(token)
    assert decodes.calls == 2


async def test_a_refused_token_is_never_remembered(
    verifier: TokenVerifier, attacker_key: PrivateKey, ec_key: PrivateKey
) -> None:
    forged = bearer(sign(attacker_key))
    for _ in range(2):
        assert await rejected(verifier, forged) == "invalid token signature"
    expired = bearer(
        sign(ec_key, iat=int(time.time()) - 400, nbf=int(time.time()) - 400, exp=int(time.time()) - 100)
    )
    for _ in range(2):
        assert await rejected(verifier, expired) == "token expired"


async def test_a_jwks_refresh_forgets_what_was_verified_with_the_old_keys(
    jwks_server: JwksServer,
    clock: Clock,
    ec_key: ec.EllipticCurvePrivateKey,
    second_ec_key: ec.EllipticCurvePrivateKey,
) -> None:
    jwks_server.publish(ec_jwk(ec_key, "ec-1", alg="ES256"))
    verifier = jwks_verifier(jwks_server)
    token = bearer(sign(ec_key, kid="ec-1"))
    assert (await verifier.authenticate(token)).subject == "user-1"
    jwks_server.publish(ec_jwk(second_ec_key, "ec-2", alg="ES256"))  # the provider withdrew ec-1
    clock.advance(601)  # the keys are stale: the next request fetches them again
    assert await rejected(verifier, token) == "unknown token signing key"
    assert jwks_server.fetches == 2


async def test_the_memory_of_verified_tokens_is_bounded(
    verifier: TokenVerifier, ec_key: PrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(auth, "VERIFIED_TOKENS_MAX", 3)
    for n in range(10):
        await verifier.authenticate(bearer(sign(ec_key, sub=f"user-{n}")))
        assert len(verifier._verified) <= 3
