"""Bearer-token verification: who is calling, and with which roles.

Tokens are JWTs signed with an asymmetric key: RS256/PS256 (RSA, 2048 bits or more), ES256 (P-256)
or ES384 (P-384). Symmetric (HS*) and unsigned (`none`) tokens are never accepted, whatever the
token's header says: each key carries the algorithms it may verify, decided from the key itself.

Keys come from the identity provider's JWKS URL (Azure) or from PEM public keys in the settings
(the local dev host signs its own ES256 tokens). PEM keys are parsed once at start-up and JWKS keys
once per fetch, so a request costs a signature check (one per candidate key, usually one) and no
key parsing.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from dataclasses import dataclass
from time import monotonic
from typing import TYPE_CHECKING, Any

import aiohttp
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.exceptions import InvalidSubjectError

if TYPE_CHECKING:
    from shared_code.settings import Settings

logger = logging.getLogger(__name__)

# RSA keys below this size are refused: they are breakable, and no current provider issues them.
_MIN_RSA_KEY_BITS = 2048
_RSA_ALGORITHMS = ("RS256", "PS256")
_EC_ALGORITHMS = {"secp256r1": ("ES256",), "secp384r1": ("ES384",)}
# Never HS* (the public key would be the "secret") nor `none`.
_ALLOWED_ALGORITHMS = frozenset(_RSA_ALGORITHMS).union(*_EC_ALGORITHMS.values())

# Real tokens are a few KB (more with many group claims); far bigger is junk not worth decoding.
_MAX_TOKEN_LENGTH = 16 * 1024

# What the database can hold (users.auth_subject, users.email), checked here so a token it cannot
# store is a 401 at the door, not a failed INSERT (a 500) later.
SUBJECT_MAX_LENGTH = 255
EMAIL_MAX_LENGTH = 254
# Control characters (NUL above all: PostgreSQL text cannot hold it) and lone surrogates (JSON's
# "\ud800" decodes to one, and UTF-8 cannot encode it).
_UNSTORABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
# A deliberately plain shape: one @, no spaces, a dot in the domain. The email is informational
# (onboarding records it); one that does not fit is dropped, not a reason to refuse the caller.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

# Access tokens only (docs/security.md). The JOSE header `typ` may be absent, "JWT" (what Entra ID
# puts on its access tokens, and on its ID tokens too) or RFC 9068's "at+jwt"; anything else
# ("id+jwt", "logout+jwt", "dpop+jwt", ...) is some other kind of token. Compared case-insensitively,
# with or without the "application/" prefix (RFC 7515 §4.1.9).
ACCESS_TOKEN_TYPES = frozenset({"jwt", "at+jwt"})
# The claims that mark an OpenID Connect ID token or a provider's non-access token: an ID token is
# about the user, for the client, and must not open the API even when its `aud` happens to match.
_ID_TOKEN_CLAIMS = ("nonce", "at_hash", "c_hash")

# A JWKS fetch is a call to someone else's service on a request's critical path: bound it.
_JWKS_FETCH_TIMEOUT_SECONDS = 5.0
# At most one JWKS fetch per this many seconds, whatever triggers it (expiry, an unknown kid, a
# failed fetch), so a flood of tokens with made-up kids cannot hammer the provider.
_JWKS_MIN_REFETCH_SECONDS = 30.0

# The local host (devhost/) puts this line above its public key, as RFC 7468 explanatory text, so its
# key is recognised wherever it is copied: Azure refuses it at start-up (shared_code/settings.py).
LOCAL_SIGNING_KEY_MARK = "Chorus local host signing key: never valid in Azure"

# Verified tokens kept per worker, so a client's next request with the same token costs a digest and a
# lookup instead of a signature check (a client sends one token for many requests). At most this many;
# a full cache drops its expired entries first, then starts afresh rather than grow.
VERIFIED_TOKENS_MAX = 10_000

_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----.+?-----END \1-----", re.DOTALL)

_PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey


@dataclass(frozen=True)
class Principal:
    """The verified caller."""

    subject: str
    roles: frozenset[str]
    token_id: str | None
    # Optional claims onboarding records: who vouched for the subject (`idp`) and their email.
    identity_provider: str | None = None
    email: str | None = None

    @property
    def is_moderator(self) -> bool:
        return "moderator" in self.roles or self.is_admin

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles


def verified_token_usable(expires_at: float, now: float) -> bool:
    """Whether a token verified earlier may be taken as verified again at `now` (both epoch seconds):
    only before its `exp`. After that it is verified afresh (which refuses it once the leeway is over)."""
    return now < expires_at


class AuthenticationError(Exception):
    """401: the message is safe to show a client (no token contents, no stack)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class AuthUnavailableError(Exception):
    """503: the keys to verify tokens with cannot be had (the identity provider is down)."""


@dataclass(frozen=True, slots=True)
class _VerificationKey:
    kid: str | None
    key: _PublicKey
    algorithms: tuple[str, ...]


def _algorithms_for(key: object) -> tuple[str, ...]:
    """The algorithms a key may verify; none for keys of other types, curves or sizes (and for
    private keys: a JWKS or setting holding one is a mistake, not something to work around)."""
    if isinstance(key, rsa.RSAPublicKey):
        return _RSA_ALGORITHMS if key.key_size >= _MIN_RSA_KEY_BITS else ()
    if isinstance(key, ec.EllipticCurvePublicKey):
        return _EC_ALGORITHMS.get(key.curve.name, ())
    return ()


def _keys_from_pem(text: str) -> tuple[_VerificationKey, ...]:
    # App settings are often entered on one line with the newlines escaped; base64 has no
    # backslashes, so unescaping cannot damage a key that was entered properly.
    text = text.replace("\\n", "\n")
    blocks = [match.group(0) for match in _PEM_BLOCK.finditer(text)]
    if not blocks:
        raise ValueError("AUTH_PUBLIC_KEYS_PEM holds no PEM public key")
    if _PEM_BLOCK.sub("", text).replace(LOCAL_SIGNING_KEY_MARK, "").strip():
        raise ValueError("AUTH_PUBLIC_KEYS_PEM has text outside its PEM blocks (a truncated key?)")
    keys = []
    for number, block in enumerate(blocks, start=1):
        # The messages never quote the block: it might be a private key pasted by mistake.
        try:
            key = serialization.load_pem_public_key(block.encode())
        except ValueError:
            raise ValueError(f"AUTH_PUBLIC_KEYS_PEM: key {number} is not a PEM public key") from None
        algorithms = _algorithms_for(key)
        if not algorithms:
            raise ValueError(
                f"AUTH_PUBLIC_KEYS_PEM: key {number} is not an RSA key of {_MIN_RSA_KEY_BITS} bits or more, "
                "nor an EC P-256 or P-384 key"
            )
        assert isinstance(key, _PublicKey)  # _algorithms_for allows no other type
        keys.append(_VerificationKey(kid=None, key=key, algorithms=algorithms))
    return tuple(keys)


def _keys_from_jwks(document: object) -> tuple[_VerificationKey, ...]:
    if not isinstance(document, dict):
        raise AuthUnavailableError("the JWKS document is not a JSON object")
    try:
        # PyJWKSet skips keys it cannot parse; a set with none left is an error.
        jwk_set = jwt.PyJWKSet.from_dict(document)
    except jwt.PyJWTError as exc:
        raise AuthUnavailableError(f"the JWKS document has no usable keys: {exc}") from exc
    keys = []
    for jwk in jwk_set:
        if jwk.public_key_use not in (None, "sig"):
            continue  # an encryption key
        # PyJWK binds one algorithm to each key (its `alg`, or the default for its type); keep it
        # only if this key may verify it here, which drops `oct` (HS*) keys and mismatched curves.
        if jwk.algorithm_name in _algorithms_for(jwk.key):
            keys.append(_VerificationKey(kid=jwk.key_id, key=jwk.key, algorithms=(jwk.algorithm_name,)))
    if not keys:
        raise AuthUnavailableError("the JWKS document has no RSA or EC signing keys this app accepts")
    return tuple(keys)


def _token_from_header(authorization_header: str | None) -> str:
    scheme, _, token = (authorization_header or "").strip().partition(" ")
    token = token.strip()
    # The scheme is case-insensitive (RFC 9110 §11.1).
    if scheme.lower() != "bearer" or not token:
        raise AuthenticationError("missing bearer token")
    if len(token) > _MAX_TOKEN_LENGTH or " " in token:
        raise AuthenticationError("malformed token")
    return token


def _optional_string(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def storable_subject(value: object) -> str:
    """The token's `sub` if Chorus can store it as an account's subject; else 401."""
    if not isinstance(value, str) or not value:
        raise AuthenticationError("token has no subject")
    if len(value) > SUBJECT_MAX_LENGTH or _UNSTORABLE.search(value):
        raise AuthenticationError(
            f"token subject is not usable: at most {SUBJECT_MAX_LENGTH} characters, no control characters"
        )
    return value


def storable_email(value: object) -> str | None:
    """The token's `email` if it is a plausible address Chorus can store; else None (dropped)."""
    if not isinstance(value, str) or len(value) > EMAIL_MAX_LENGTH or _UNSTORABLE.search(value):
        return None
    return value if _EMAIL.fullmatch(value) else None


def require_access_token(header: dict[str, Any], claims: dict[str, Any], role_claim: str) -> None:
    """401 unless the token is an access token (docs/security.md, "Tokens"): its header `typ` is
    absent, JWT or at+jwt; it carries none of an ID token's claims; `token_use` (where a provider
    sets it) says "access"; and it grants something: `scp`/`scope` (delegated) or the role claim
    (app roles). An Entra ID token has header typ JWT like an access token, but no scp and no roles."""
    token_type = header.get("typ")
    if token_type is not None:
        normalized = str(token_type).lower().removeprefix("application/")
        if normalized not in ACCESS_TOKEN_TYPES:
            raise AuthenticationError("not an access token")
    if any(name in claims for name in _ID_TOKEN_CLAIMS):
        raise AuthenticationError("not an access token")
    if claims.get("token_use", "access") != "access":
        raise AuthenticationError("not an access token")
    if not any(claims.get(name) not in (None, "", []) for name in ("scp", "scope", role_claim)):
        raise AuthenticationError("not an access token: it grants no scope or role")


def require_bounded_lifetime(claims: dict[str, Any], max_lifetime_seconds: int) -> None:
    """401 for a token that lives longer than the setting allows (exp - iat): a long-lived token is
    a stolen token's best friend, and no provider we accept issues one."""
    issued_at, expires_at = claims.get("iat"), claims.get("exp")
    if not isinstance(issued_at, int | float) or not isinstance(expires_at, int | float):
        raise AuthenticationError("token has no issue time")
    if expires_at - issued_at > max_lifetime_seconds:
        raise AuthenticationError(f"token lifetime is over the {max_lifetime_seconds} s this API accepts")


def _roles_from_claim(value: object) -> frozenset[str]:
    # Providers send roles as a JSON list (Entra ID) or an OAuth-style space-separated string.
    if value is None:
        return frozenset()
    if isinstance(value, str):
        return frozenset(value.split())
    if isinstance(value, list) and all(isinstance(role, str) for role in value):
        return frozenset(value)
    # Signed by our provider, but not a shape we can read: refuse rather than guess at privileges.
    raise AuthenticationError("malformed token")


def _detail_for(exc: jwt.PyJWTError) -> str:
    """A short, client-safe reason; PyJWT's own messages may quote token contents."""
    # Subclasses first: InvalidSignatureError is a DecodeError, all of these are InvalidTokenErrors.
    if isinstance(exc, jwt.InvalidSignatureError):
        return "invalid token signature"
    if isinstance(exc, jwt.ExpiredSignatureError):
        return "token expired"
    if isinstance(exc, jwt.ImmatureSignatureError):
        return "token not valid yet"
    if isinstance(exc, jwt.InvalidIssuerError):
        return "wrong issuer"
    if isinstance(exc, jwt.InvalidAudienceError):
        return "wrong audience"
    if isinstance(exc, jwt.InvalidAlgorithmError):
        return "unsupported token algorithm"
    if isinstance(exc, InvalidSubjectError):
        return "token has no subject"
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return {
            "iss": "wrong issuer",
            "aud": "wrong audience",
            "sub": "token has no subject",
            "exp": "token has no expiry",
            "iat": "token has no issue time",
        }.get(exc.claim, "malformed token")
    return "malformed token"


class TokenVerifier:
    """Verifies bearer tokens. One per worker: it holds the parsed keys and the JWKS cache."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        public_keys_pem: str | None = None,
        jwks_url: str | None = None,
        role_claim: str = "roles",
        leeway_seconds: int = 30,
        jwks_cache_seconds: int = 600,
        max_lifetime_seconds: int = 28 * 3600,
    ) -> None:
        if (public_keys_pem is None) == (jwks_url is None):
            raise ValueError("set exactly one of AUTH_JWKS_URL and AUTH_PUBLIC_KEYS_PEM")
        self._issuer = issuer
        self._audience = audience
        self._role_claim = role_claim
        self._leeway_seconds = leeway_seconds
        self._max_lifetime_seconds = max_lifetime_seconds
        self._jwks_url = jwks_url
        self._jwks_cache_seconds = jwks_cache_seconds
        self._pem_keys = _keys_from_pem(public_keys_pem) if public_keys_pem is not None else ()
        self._jwks_keys: tuple[_VerificationKey, ...] = ()
        self._jwks_fetched_at: float | None = None
        self._jwks_attempted_at: float | None = None
        # One fetch at a time: requests arriving during a fetch wait for it instead of starting more.
        self._jwks_lock = asyncio.Lock()
        # SHA-256 of a verified token -> (who it is, its exp). Only tokens that passed every check get in;
        # emptied whenever the JWKS keys are fetched again, so a key the provider withdrew stops counting.
        self._verified: dict[bytes, tuple[Principal, float]] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenVerifier:
        return cls(
            issuer=settings.auth_issuer,
            audience=settings.auth_audience,
            public_keys_pem=settings.auth_public_keys_pem,
            jwks_url=settings.auth_jwks_url,
            role_claim=settings.auth_role_claim,
            max_lifetime_seconds=settings.auth_max_token_lifetime_seconds,
        )

    async def authenticate(self, authorization_header: str | None) -> Principal:
        """The caller behind an `Authorization` header value.

        Raises AuthenticationError (401) for a missing or bad token, AuthUnavailableError (503)
        when the JWKS cannot be fetched.
        """
        token = _token_from_header(authorization_header)
        digest = hashlib.sha256(token.encode()).digest()
        remembered = self._verified.get(digest)
        # With JWKS, only while the keys it was verified with are fresh (else the slow path refreshes them).
        if (
            remembered is not None
            and verified_token_usable(remembered[1], time.time())
            and (self._jwks_url is None or self._jwks_fresh())
        ):
            return remembered[0]
        principal, expires_at = await self._authenticate(token)
        self._remember(digest, principal, expires_at)
        return principal

    def _remember(self, digest: bytes, principal: Principal, expires_at: float) -> None:
        if len(self._verified) >= VERIFIED_TOKENS_MAX:
            now = time.time()
            self._verified = {d: v for d, v in self._verified.items() if verified_token_usable(v[1], now)}
            if len(self._verified) >= VERIFIED_TOKENS_MAX:
                self._verified.clear()
        self._verified[digest] = (principal, expires_at)

    async def _authenticate(self, token: str) -> tuple[Principal, float]:
        """Verify a token fully: the caller, and the token's expiry (epoch seconds)."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthenticationError("malformed token") from None
        # Checked before any key is chosen: the header is the attacker's, the allow-list is ours.
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm not in _ALLOWED_ALGORITHMS:
            raise AuthenticationError("unsupported token algorithm")
        keys = await self._keys_for(header.get("kid"))  # PyJWT has checked it is a string if present
        candidates = [key for key in keys if algorithm in key.algorithms]
        if not candidates:
            raise AuthenticationError("unsupported token algorithm")
        claims = self._verify(token, candidates)
        # Checked only once the signature holds: what an unsigned token claims to be says nothing.
        require_access_token(header, claims, self._role_claim)
        require_bounded_lifetime(claims, self._max_lifetime_seconds)
        subject = storable_subject(claims.get("sub"))
        token_id = claims.get("jti")  # PyJWT has checked it is a string if present
        principal = Principal(
            subject=subject,
            roles=_roles_from_claim(claims.get(self._role_claim)),
            token_id=token_id if isinstance(token_id, str) and not _UNSTORABLE.search(token_id) else None,
            identity_provider=_optional_string(claims.get("idp")),
            email=storable_email(claims.get("email")),
        )
        return principal, float(claims["exp"])  # required, and checked to be a number, by PyJWT

    def _verify(self, token: str, candidates: list[_VerificationKey]) -> dict[str, Any]:
        # Inline, not in a thread: a verify costs ~0.1 ms, less than the hop to a thread would.
        # There are few candidates (a handful of PEM keys, or the one JWKS key with the token's
        # kid), so trying each is cheap; the first key whose signature matches decides the outcome.
        failure: jwt.PyJWTError | None = None
        for candidate in candidates:
            try:
                return jwt.decode(
                    token,
                    candidate.key,
                    algorithms=candidate.algorithms,
                    audience=self._audience,
                    issuer=self._issuer,
                    leeway=self._leeway_seconds,
                    options={"require": ["exp", "iat", "iss", "aud", "sub"]},
                )
            except jwt.InvalidSignatureError as exc:
                failure = exc
            except jwt.PyJWTError as exc:
                # The signature matched (PyJWT checks claims only after it), so the token is
                # this key's and its claims are wrong: no other key will do better.
                raise AuthenticationError(_detail_for(exc)) from None
        assert failure is not None  # candidates is never empty
        raise AuthenticationError(_detail_for(failure)) from None

    async def _keys_for(self, kid: str | None) -> tuple[_VerificationKey, ...]:
        if self._jwks_url is None:
            return self._pem_keys
        if not self._jwks_fresh() or (kid is not None and not self._has_jwks_kid(kid)):
            # Expired, or an unknown kid: the provider may have rotated its keys.
            await self._refresh_jwks(self._jwks_url)
        if kid is None:
            return self._jwks_keys
        keys = tuple(key for key in self._jwks_keys if key.kid == kid)
        if not keys:
            raise AuthenticationError("unknown token signing key")
        return keys

    def _jwks_fresh(self) -> bool:
        return (
            self._jwks_fetched_at is not None
            and monotonic() - self._jwks_fetched_at < self._jwks_cache_seconds
        )

    def _has_jwks_kid(self, kid: str) -> bool:
        return any(key.kid == kid for key in self._jwks_keys)

    async def _refresh_jwks(self, url: str) -> None:
        async with self._jwks_lock:
            # Also skips the fetch for requests that waited on the lock while another fetched.
            rate_limited = (
                self._jwks_attempted_at is not None
                and monotonic() - self._jwks_attempted_at < _JWKS_MIN_REFETCH_SECONDS
            )
            if not rate_limited:
                self._jwks_attempted_at = monotonic()
                try:
                    self._jwks_keys = _keys_from_jwks(await self._fetch_jwks(url))
                    self._jwks_fetched_at = monotonic()
                    self._verified.clear()  # verified again against the keys as they are now
                except AuthUnavailableError:
                    if not self._jwks_keys:
                        raise
                    # Keep verifying with the last keys we had rather than fail every request
                    # while the provider is down; retried after the minimum interval.
                    logger.warning("JWKS refresh failed; still using the keys fetched before", exc_info=True)
        if not self._jwks_keys:
            raise AuthUnavailableError("no JWKS keys yet: the last fetch failed")

    @staticmethod
    async def _fetch_jwks(url: str) -> object:
        # A session per fetch: fetches happen at most every 30 s (normally every 10 minutes), so a
        # kept session would save nothing and would need closing at worker shutdown, for which
        # the Functions host gives no dependable hook.
        timeout = aiohttp.ClientTimeout(total=_JWKS_FETCH_TIMEOUT_SECONDS)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.get(url, raise_for_status=True) as response,
            ):
                # Some providers serve JWKS as text/plain or application/jwk-set+json.
                return await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise AuthUnavailableError(f"cannot fetch the JWKS: {exc!r}") from exc
