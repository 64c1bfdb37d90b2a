"""``wss://``: Config's TLS fields reach the engine (files and PEM bytes), the
websockets client talks to the server over TLS with a CA made at test time, and a
certificate that cannot be used raises :class:`wsqueue.TLSError`."""

from __future__ import annotations

import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import run
from websockets.asyncio.client import connect as aconnect
from websockets.sync.client import connect

import wsqueue
import wsqueue.asyncio as wsa

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A throwaway CA and server certificate (examples/tls/make_certs.rs)."""
    out = tmp_path_factory.mktemp("tls")
    subprocess.run(
        ["cargo", "run", "--quiet", "--example", "make_certs", "--", str(out)],
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    yield out


def client_context(certs: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def poll_message(server: wsqueue.Server) -> wsqueue.MessageEvent:
    for _ in range(100):
        for e in server.poll(timeout=10):
            if isinstance(e, wsqueue.MessageEvent):
                return e
    raise AssertionError("no message")


def test_wss_echo_with_certificate_files_next_to_a_ws_listener(certs: Path) -> None:
    config = wsqueue.Config(
        listen="127.0.0.1:0",
        tls_listen="127.0.0.1:0",
        tls_cert_chain_file=str(certs / "server.pem"),
        tls_private_key_file=str(certs / "server.key"),
    )
    with wsqueue.Server(config) as server:
        plain_port = server.port
        tls_port = int(server.local_address(1).rsplit(":", 1)[1])
        with connect(f"wss://localhost:{tls_port}/", ssl=client_context(certs)) as client:
            client.send("over TLS")
            m = poll_message(server)
            assert m.data == "over TLS"
            server.send(m.conn, m.data)
            assert client.recv() == "over TLS"
            tls = client.socket
            assert isinstance(tls, ssl.SSLSocket)
            assert tls.version() in ("TLSv1.3", "TLSv1.2")
            assert tls.selected_alpn_protocol() == "http/1.1"
        with connect(f"ws://127.0.0.1:{plain_port}/") as plain:
            plain.send(b"plain")
            m = poll_message(server)
            server.send(m.conn, m.data)
            assert plain.recv() == b"plain"
        # Plain HTTP on the TLS port: a TLS alert, then the end; counted.
        with socket.create_connection(("127.0.0.1", tls_port), timeout=10) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = b""
            while chunk := s.recv(4096):
                answer += chunk
        assert answer[:1] == b"\x15"
        assert server.stats().tls_errors == 1


def test_wss_only_with_pem_bytes(certs: Path) -> None:
    config = wsqueue.Config(
        listen="",
        tls_listen="127.0.0.1:0",
        tls_cert_chain_pem=(certs / "server.pem").read_bytes(),
        tls_private_key_pem=(certs / "server.key").read_bytes(),
    )
    with wsqueue.Server(config) as server:
        with connect(f"wss://127.0.0.1:{server.port}/", ssl=client_context(certs)) as client:
            client.send(b"\x00" * 100_000)
            m = poll_message(server)
            server.send(m.conn, m.data)
            assert client.recv() == b"\x00" * 100_000


def test_unusable_certificates_raise_tls_error(certs: Path) -> None:
    def config(**tls: str | bytes) -> wsqueue.Config:
        c = wsqueue.Config(listen="127.0.0.1:0", tls_listen="127.0.0.1:0")
        c.tls_private_key_file = str(certs / "server.key")
        for name, value in tls.items():
            setattr(c, name, value)
        return c

    with pytest.raises(wsqueue.TLSError, match="cannot read"):
        wsqueue.Server(config(tls_cert_chain_file=str(certs / "absent.pem")))
    with pytest.raises(wsqueue.TLSError):
        wsqueue.Server(config(tls_cert_chain_pem=b"not PEM"))
    with pytest.raises(wsqueue.TLSError, match="rejected"):
        # The CA's certificate with the server's key: they do not match.
        wsqueue.Server(config(tls_cert_chain_file=str(certs / "ca.pem")))
    with pytest.raises(wsqueue.InvalidArgument):
        wsqueue.Server(wsqueue.Config(listen="127.0.0.1:0", tls_listen="127.0.0.1:0"))
    with pytest.raises(wsqueue.InvalidArgument):
        wsqueue.Server(wsqueue.Config(listen="127.0.0.1:0", tls_cert_chain_pem="text, not bytes"))  # type: ignore[arg-type]


def test_asyncio_serve_takes_the_tls_settings(certs: Path) -> None:
    async def echo(connection: wsa.ServerConnection) -> None:
        async for message in connection:
            await connection.send(message)

    async def main() -> None:
        async with wsa.serve(
            echo,
            "127.0.0.1",
            0,
            listen="",  # wss:// only: the settings override serve's host and port
            tls_listen="127.0.0.1:0",
            tls_cert_chain_file=str(certs / "server.pem"),
            tls_private_key_file=str(certs / "server.key"),
        ) as server:
            async with aconnect(f"wss://127.0.0.1:{server.port}/", ssl=client_context(certs)) as client:
                await client.send("asyncio over TLS")
                assert await client.recv() == "asyncio over TLS"

    run(main())
