"""Bearer tokens the local host accepts: ES256, signed by a key kept in `.devhost/`.

The key is made on first use and kept, so tokens stay valid across restarts of the
local stack. It never leaves the developer's machine and is never used in Azure.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from devhost.settings_file import TOKEN_ROLES, example_settings
from shared_code.auth import LOCAL_SIGNING_KEY_MARK

KEY_FILE = "signing-key.pem"
ROLES = TOKEN_ROLES


def signing_key(state_dir: Path) -> ec.EllipticCurvePrivateKey:
    path = state_dir / KEY_FILE
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{path} is not an EC private key; delete it to make a new one")
        return key
    key = ec.generate_private_key(ec.SECP256R1())
    state_dir.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return key


def public_key_pem(state_dir: Path) -> str:
    """The public key for AUTH_PUBLIC_KEYS_PEM, marked as the local host's so Azure refuses it."""
    return (
        LOCAL_SIGNING_KEY_MARK
        + "\n"
        + (
            signing_key(state_dir)
            .public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )
    )


def issue_token(state_dir: Path, subject: str, role: str = "user", lifetime_seconds: int = 12 * 3600) -> str:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    settings = example_settings()
    now = int(time.time())
    claims = {
        "iss": settings["AUTH_ISSUER"],
        "aud": settings["AUTH_AUDIENCE"],
        "sub": subject,
        "iat": now,
        "nbf": now,
        "exp": now + lifetime_seconds,
        "jti": str(uuid.uuid4()),
        settings.get("AUTH_ROLE_CLAIM", "roles"): [role],
    }
    return jwt.encode(claims, signing_key(state_dir), algorithm="ES256")
