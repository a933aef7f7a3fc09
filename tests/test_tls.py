"""TLS on the extender's listener: HTTPS, mutual TLS (verbs need a client certificate, probes do
not), hot reload of rotated certificates (and refusal of a pair that does not load), config errors."""

from __future__ import annotations

import asyncio
import shutil
import ssl
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from extender.cli.main import main
from extender.config import load_config
from extender.errors import ConfigError
from extender.http.tls import ReloadingContext, TlsFiles
from tests.pki import Pair, issue, make_ca
from tests.serving import serving
from tests.waiting import until

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
FILTER = (EXAMPLES / "requests" / "filter-dpdk.json").read_bytes()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Pair]:
    d = tmp_path_factory.mktemp("pki")
    ca, other = make_ca(d, "ca-1"), make_ca(d, "ca-2")
    return {
        "ca": ca,
        "other": other,
        "server-1": issue(ca, d, "server-1"),
        "server-2": issue(ca, d, "server-2"),
        "client": issue(ca, d, "scheduler", client=True),
        "client-other": issue(other, d, "intruder", client=True),
        "server-other": issue(other, d, "server-other"),
    }


def _config(tmp: Path, tls: dict[str, Any]) -> dict[str, Any]:
    return {
        "listen": {"host": "127.0.0.1", "port": 0},
        "features": {"path": str(EXAMPLES / "nodefeatures"), "reloadSeconds": 0},
        "specs": {"images": str(EXAMPLES / "images.yaml"), "reloadSeconds": 0},
        "tls": tls,
    }


def _live(tmp: Path, pki: dict[str, Pair], name: str) -> tuple[Path, Path]:
    """Copy a pair to fixed paths (the files a mounted Secret would show), return them."""
    cert, key = tmp / "tls.crt", tmp / "tls.key"
    shutil.copy(pki[name].cert, cert)
    shutil.copy(pki[name].key, key)
    return cert, key


def _client_ctx(ca: Path, client: Pair | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca))
    if client is not None:
        ctx.load_cert_chain(client.cert, client.key)
    return ctx


async def _peer_cn(url: str, ctx: ssl.SSLContext) -> str:
    host, port = url.removeprefix("https://").rsplit(":", 1)
    _, writer = await asyncio.open_connection(host, int(port), ssl=ctx)
    try:
        cert = writer.get_extra_info("peercert")
        return str(dict(x[0] for x in cert["subject"])["commonName"])
    finally:
        writer.close()


async def test_https_serves_and_plain_http_does_not(tmp_path: Path, pki: dict[str, Pair]) -> None:
    cert, key = _live(tmp_path, pki, "server-1")
    async with serving(_config(tmp_path, {"certFile": str(cert), "keyFile": str(key)}), tmp_path) as url:
        assert url.startswith("https://127.0.0.1:")
        ctx = _client_ctx(pki["ca"].cert)
        async with aiohttp.ClientSession() as s:
            async with s.get(f"{url}/healthz", ssl=ctx) as r:
                assert r.status == 200
            async with s.post(f"{url}/filter", data=FILTER, ssl=ctx) as r:
                assert r.status == 200 and "NodeNames" in await r.json()
            with pytest.raises(aiohttp.ClientError):  # plain HTTP to a TLS port
                async with s.get(url.replace("https://", "http://") + "/healthz") as r:
                    await r.read()
            with pytest.raises(aiohttp.ClientError):  # a client that trusts another CA
                async with s.get(f"{url}/healthz", ssl=_client_ctx(pki["other"].cert)) as r:
                    await r.read()


async def test_mutual_tls_guards_verbs_not_probes(tmp_path: Path, pki: dict[str, Pair]) -> None:
    cert, key = _live(tmp_path, pki, "server-1")
    tls = {"certFile": str(cert), "keyFile": str(key), "clientCAFile": str(pki["ca"].cert)}
    async with serving(_config(tmp_path, tls), tmp_path) as url, aiohttp.ClientSession() as s:
        anonymous = _client_ctx(pki["ca"].cert)
        for path in ("/healthz", "/readyz", "/metrics"):
            async with s.get(f"{url}{path}", ssl=anonymous) as r:
                assert r.status == 200, path
        async with s.post(f"{url}/filter", data=FILTER, ssl=anonymous) as r:
            assert r.status == 403 and "client certificate" in (await r.json())["Error"]
        async with s.get(f"{url}/debug/sources", ssl=anonymous) as r:
            assert r.status == 403
        scheduler = _client_ctx(pki["ca"].cert, pki["client"])
        async with s.post(f"{url}/filter", data=FILTER, ssl=scheduler) as r:
            assert r.status == 200
        with pytest.raises(aiohttp.ClientError):  # a certificate from another CA fails the handshake
            async with s.post(
                f"{url}/filter", data=FILTER, ssl=_client_ctx(pki["ca"].cert, pki["client-other"])
            ) as r:
                await r.read()


async def test_rotation_is_picked_up_and_a_broken_pair_is_refused(
    tmp_path: Path, pki: dict[str, Pair]
) -> None:
    cert, key = _live(tmp_path, pki, "server-1")
    config = _config(tmp_path, {"certFile": str(cert), "keyFile": str(key), "reloadSeconds": 0.05})
    ctx = _client_ctx(pki["ca"].cert)
    async with serving(config, tmp_path) as url:

        async def metrics() -> str:
            async with aiohttp.ClientSession() as s, s.get(f"{url}/metrics", ssl=ctx) as r:
                return await r.text()

        async def serves(cn: str) -> bool:
            return await _peer_cn(url, ctx) == cn

        assert await serves("server-1")
        _live(tmp_path, pki, "server-2")  # the Secret was rotated
        await until(lambda: serves("server-2"), "the rotated certificate is served")
        # half a rotation: a new certificate with the old key -> refused, server-2 stays in service
        shutil.copy(pki["server-1"].cert, cert)

        async def refused() -> bool:
            return 'compat_extender_tls_reloads_total{result="error"}' in await metrics()

        await until(refused, "the half-rotated pair is tried and refused")
        assert await serves("server-2")
        assert 'compat_extender_tls_reloads_total{result="ok"} 1.0' in await metrics()
        shutil.copy(pki["server-1"].key, key)  # the rest of the rotation arrives
        await until(lambda: serves("server-1"), "the completed rotation is served")


def test_reloading_context_swaps_the_client_ca_too(tmp_path: Path, pki: dict[str, Pair]) -> None:
    cert, key = _live(tmp_path, pki, "server-1")
    ca = tmp_path / "client-ca.pem"
    shutil.copy(pki["ca"].cert, ca)
    rc = ReloadingContext(TlsFiles(cert, key, ca))
    assert rc.check() is False  # nothing changed
    before = rc.current
    shutil.copy(pki["other"].cert, ca)
    assert rc.check() is True and rc.current is not before and rc.reloads == 1

    async def accepted(client: Pair) -> bool:
        """Does a server on ``rc.outer`` take this client certificate? (TLS 1.3 reports a refused
        client certificate after the client's handshake completes: read to find out.)"""

        async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"ok")
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(greet, "127.0.0.1", 0, ssl=rc.outer)
        port = server.sockets[0].getsockname()[1]
        try:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=_client_ctx(pki["ca"].cert, client)
            )
            try:
                return await asyncio.wait_for(reader.read(2), 5) == b"ok"
            finally:
                writer.close()
        except (ssl.SSLError, ConnectionError):
            return False
        finally:
            server.close()
            await server.wait_closed()

    # after the swap, only certificates from the new CA verify
    assert asyncio.run(accepted(pki["client-other"])) is True
    assert asyncio.run(accepted(pki["client"])) is False


def test_config_errors(tmp_path: Path, pki: dict[str, Pair], capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("tls: {certFile: a.pem}\n")
    with pytest.raises(ConfigError, match="certFile and keyFile go together"):
        load_config(path)
    path.write_text("tls: {clientCAFile: ca.pem}\n")
    with pytest.raises(ConfigError, match=r"tls\.clientCAFile"):
        load_config(path)
    cert, _ = _live(tmp_path, pki, "server-1")
    path.write_text(f"tls: {{certFile: {cert}, keyFile: {pki['server-2'].key}}}\n")  # mismatched pair
    assert main(["serve", "--config", str(path), "--port", "0"]) == 2
    assert "tls" in capsys.readouterr().err
    path.write_text("tls: {certFile: tls.crt, keyFile: tls.key}\n")  # relative to the config file
    assert load_config(path).tls.certFile == cert
