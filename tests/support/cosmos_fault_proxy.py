"""An HTTPS proxy in front of the Cosmos emulator that a test can cut, hang or turn into a failing
Cosmos DB, over real sockets: the app's SDK is pointed at it as at any account endpoint.

- forward: requests pass to the emulator and back (the account document is rewritten to name the
  proxy, or the SDK would find the emulator's own address there and go round the proxy);
- refuse: nothing listens on the port any more, as for a stopped service (open connections close);
- hang: requests are read and never answered, as by a paused (SIGSTOPped) service;
- fail-503 / fail-429: every request is answered with that status, as Cosmos DB does when it is
  unavailable or throttling (429 with x-ms-retry-after-ms).

It ends TLS itself with a throwaway certificate (the SDK skips verification for 127.0.0.1, as it does
for the emulator's own). It runs on the test's event loop.
"""

from __future__ import annotations

import asyncio
import datetime
import ssl
import tempfile
from pathlib import Path
from typing import Literal

from aiohttp import ClientSession, TCPConnector, web

Mode = Literal["forward", "refuse", "hang", "fail-503", "fail-429"]
HOST = "127.0.0.1"
# Hop-by-hop headers and those aiohttp recomputes for the body it sends on.
_DROPPED = {"host", "content-length", "transfer-encoding", "connection", "keep-alive", "content-encoding"}


class CosmosFaultProxy:
    def __init__(self, target_endpoint: str) -> None:
        self._target = target_endpoint.rstrip("/")
        self._tls = _self_signed_server_context()
        self._mode: Mode = "forward"
        self._runner: web.AppRunner | None = None
        self._session: ClientSession | None = None
        self._healed = asyncio.Event()
        self.port = 0
        self.requests_seen = 0

    @classmethod
    async def start(cls, target_endpoint: str) -> CosmosFaultProxy:
        proxy = cls(target_endpoint)
        proxy._session = ClientSession(connector=TCPConnector(ssl=False), auto_decompress=False)
        await proxy._listen()
        return proxy

    @property
    def endpoint(self) -> str:
        return f"https://{HOST}:{self.port}/"

    @property
    def connection_string(self) -> str:
        # The emulator ignores the key; the SDK needs one that decodes.
        from devhost.services.cosmos import WELL_KNOWN_EMULATOR_KEY

        return f"AccountEndpoint={self.endpoint};AccountKey={WELL_KNOWN_EMULATOR_KEY};"

    @property
    def mode(self) -> Mode:
        return self._mode

    async def set_mode(self, mode: Mode) -> None:
        if self._mode == "hang":
            self._healed.set()  # hung requests end (their connections close)
        self._healed = asyncio.Event()
        self._mode = mode
        if mode == "refuse":
            await self._stop_listening()
        elif self._runner is None:
            await self._listen()

    async def heal(self) -> None:
        await self.set_mode("forward")

    async def close(self) -> None:
        self._healed.set()
        await self._stop_listening()
        if self._session is not None:
            await self._session.close()

    # --- plumbing ---------------------------------------------------------------------------------

    async def _listen(self) -> None:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await runner.setup()
        site = web.TCPSite(runner, HOST, self.port, ssl_context=self._tls, reuse_address=True)
        await site.start()
        if not self.port:
            self.port = runner.addresses[0][1]
        self._runner = runner

    async def _stop_listening(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests_seen += 1
        body = await request.read()
        mode = self._mode
        if mode == "hang":
            await self._healed.wait()
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=503)
        if mode in ("fail-503", "fail-429"):
            status = 503 if mode == "fail-503" else 429
            headers = {"x-ms-activity-id": "00000000-0000-0000-0000-000000000000"}
            if status == 429:
                headers["x-ms-retry-after-ms"] = "100"
            return web.json_response(
                {
                    "code": "ServiceUnavailable" if status == 503 else "TooManyRequests",
                    "message": "test fault",
                },
                status=status,
                headers=headers,
            )
        assert self._session is not None
        headers = {name: value for name, value in request.headers.items() if name.lower() not in _DROPPED}
        async with self._session.request(
            request.method, self._target + request.path_qs, headers=headers, data=body
        ) as upstream:
            payload = await upstream.read()
            out_headers = {
                name: value for name, value in upstream.headers.items() if name.lower() not in _DROPPED
            }
        if request.path == "/" and request.method == "GET":
            # The account document: name the proxy as the (only) region's endpoint.
            payload = payload.replace(self._target.encode(), self.endpoint.rstrip("/").encode())
        return web.Response(status=upstream.status, body=payload, headers=out_headers)


def _self_signed_server_context() -> ssl.SSLContext:
    """A throwaway certificate for 127.0.0.1."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as folder:
        cert_path, key_path = Path(folder) / "cert.pem", Path(folder) / "key.pem"
        cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        context.load_cert_chain(cert_path, key_path)
    return context
