"""wsqueue.sync against the real ``websockets`` sync client."""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any, Callable

import pytest
from conftest import open_fds, os_threads
from websockets.exceptions import ConnectionClosedError as ClientClosedError
from websockets.exceptions import ConnectionClosedOK as ClientClosedOK
from websockets.exceptions import InvalidStatus
from websockets.typing import Subprotocol
from websockets.sync.client import connect

import wsqueue
import wsqueue._server
import wsqueue.sync as wss

WAIT = 30  # seconds: a deadlock guard for blocking calls, not a speed check


def echo(connection: wss.ServerConnection) -> None:
    for message in connection:
        connection.send(message)


def url(server: wss.WebSocketServer, path: str = "/") -> str:
    return f"ws://127.0.0.1:{server.port}{path}"


def test_echo_text_binary_and_large() -> None:
    with wss.serve(echo, "127.0.0.1", 0) as server:
        with connect(url(server), max_size=None) as client:
            messages: list[str | bytes] = ["hi", "ünï", b"\x00\xff", b"z" * (8 * 1024 * 1024)]
            for message in messages:
                client.send(message)
                reply = client.recv(timeout=WAIT)
                assert reply == message and type(reply) is type(message)


def test_many_clients_each_in_its_own_worker_thread() -> None:
    with wss.serve(echo, "127.0.0.1", 0) as server:
        errors: list[BaseException] = []

        def one(i: int) -> None:
            try:
                with connect(url(server)) as client:
                    for j in range(10):
                        client.send(f"{i}-{j}")
                        assert client.recv(timeout=WAIT) == f"{i}-{j}"
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(50)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []


def test_close_codes_both_ways() -> None:
    seen: list[wsqueue.ConnectionClosed] = []

    def handler(connection: wss.ServerConnection) -> None:
        first = connection.recv()
        if first == "close me":
            connection.close(4100, "as asked")
            return
        try:
            connection.recv()
        except wsqueue.ConnectionClosed as exc:
            seen.append(exc)

    with wss.serve(handler, "127.0.0.1", 0) as server:
        with connect(url(server)) as client:
            client.send("close me")
            with pytest.raises(ClientClosedError) as closed:
                client.recv(timeout=WAIT)
            assert closed.value.rcvd is not None
            assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4100, "as asked")
        with connect(url(server)) as client:
            client.send("stay")
            client.close(4200, "client goes")
        server.shutdown()
    assert (seen[0].code, seen[0].reason) == (4200, "client goes")


def test_process_request_subprotocol_and_request() -> None:
    info: dict[str, Any] = {}

    def check(connection: wss.ServerConnection, request: wss.Request) -> Any:
        return (403, "forbidden\n") if request.path == "/private" else None

    def handler(connection: wss.ServerConnection) -> None:
        info["path"] = connection.request.path
        info["remote"] = connection.remote_address
        connection.send(str(connection.subprotocol))
        connection.recv()  # until the client closes

    def pick(connection: wss.ServerConnection, offered: Any) -> str | None:
        return offered[-1] if offered else None

    with wss.serve(handler, "127.0.0.1", 0, process_request=check, select_subprotocol=pick) as server:
        with pytest.raises(InvalidStatus) as refused:
            connect(url(server, "/private"))
        assert refused.value.response.status_code == 403
        assert refused.value.response.body == b"forbidden\n"
        with connect(url(server, "/public"), subprotocols=[Subprotocol("a"), Subprotocol("b")]) as client:
            local = client.local_address
            assert client.subprotocol == "b"
            assert client.recv(timeout=WAIT) == "b"
    assert info["path"] == "/public"
    assert info["remote"] == (local[0], local[1])


def test_an_answer_the_engine_refuses_becomes_a_500() -> None:
    # 200 is no status to refuse an upgrade with: the engine rejects the answer, and the
    # client must still get one (a 500) rather than wait out its handshake timeout.
    def not_a_refusal(connection: wss.ServerConnection, request: wss.Request) -> Any:
        return (200, "fine\n")

    with wss.serve(echo, "127.0.0.1", 0, process_request=not_a_refusal) as server:
        with pytest.raises(InvalidStatus) as refused:
            connect(url(server), open_timeout=WAIT)
        assert refused.value.response.status_code == 500


def test_broadcast_is_exported() -> None:
    assert "broadcast" in wss.__all__


FLOOD_CHUNK = 64 * 1024


def numbered(i: int) -> bytes:
    """The i-th message of a flood: 64 KiB that say which one they are."""
    return i.to_bytes(4, "big") * (FLOOD_CHUNK // 4)


def flooding(total: int, sent: list[int]) -> wss.Handler:
    """A handler that sends ``total`` numbered messages as fast as it may, noting each
    one the engine took, then waits for the client's word."""

    def flood(connection: wss.ServerConnection) -> None:
        for i in range(total):
            connection.send(numbered(i))
            sent.append(i)
        connection.recv()

    return flood


def read_flood(client: Any, total: int) -> None:
    for i in range(total):
        assert client.recv(timeout=WAIT) == numbered(i)
    client.send("done")


def wait_until(condition: Callable[[], bool]) -> bool:
    """Polls ``condition`` for up to WAIT s: the bound only turns a hang into a failure."""
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_backpressure_blocks_send_and_loses_nothing() -> None:
    total = 200
    sent: list[int] = []
    with wss.serve(flooding(total, sent), "127.0.0.1", 0) as server:
        # No compression: this is about the send queue, and the repetitive payload
        # would compress to almost nothing and never reach the soft limit.
        with connect(url(server), max_queue=1, compression=None) as client:
            # Read nothing until the engine reported backpressure.
            assert wait_until(lambda: server.engine.stats().backpressure_reports > 0)
            assert len(sent) < total
            read_flood(client, total)
    assert len(sent) == total


def test_drain_between_send_and_its_wait_is_not_lost(monkeypatch: pytest.MonkeyPatch) -> None:
    # The drain event of a send that reported backpressure can reach the connection
    # before that send starts waiting for it. Force that order once: the first send
    # over the soft limit returns only after its drain was handled. The sender must
    # then go on, not wait for a drain that already happened.
    total = 100
    drained = threading.Event()
    forced: list[bool] = []
    real_send = wsqueue._server.Server.send
    real_on_drain = wss.ServerConnection._on_drain

    def send_returning_after_the_drain(self: Any, conn: int, data: Any) -> bool:
        over = real_send(self, conn, data)
        if over and not forced:
            forced.append(True)
            assert drained.wait(WAIT)
        return over

    def on_drain(self: wss.ServerConnection) -> None:
        real_on_drain(self)
        drained.set()

    monkeypatch.setattr(wsqueue._server.Server, "send", send_returning_after_the_drain)
    monkeypatch.setattr(wss.ServerConnection, "_on_drain", on_drain)
    sent: list[int] = []
    with wss.serve(flooding(total, sent), "127.0.0.1", 0) as server:
        with connect(url(server), max_queue=1, compression=None) as client:
            # Read nothing until a send went over the soft limit.
            assert wait_until(lambda: bool(forced)), "no send reached the soft limit: nothing forced"
            read_flood(client, total)
    assert len(sent) == total


def test_shutdown_with_clients_connected() -> None:
    server = wss.serve(echo, "127.0.0.1", 0)
    with contextlib.ExitStack() as stack:
        clients = [stack.enter_context(connect(url(server))) for _ in range(5)]
        for client in clients:
            client.send("x")
            assert client.recv(timeout=WAIT) == "x"
        server.shutdown()
        for client in clients:
            with pytest.raises(ClientClosedOK) as closed:
                client.recv(timeout=WAIT)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
    with pytest.raises(wsqueue.BadHandle):
        server.engine.stats()
    server.shutdown()  # idempotent


def test_serve_forever_returns_after_shutdown_from_another_thread() -> None:
    server = wss.serve(echo, "127.0.0.1", 0)
    threading.Thread(target=server.shutdown).start()
    server.serve_forever()  # returns once the shutdown finished
    with pytest.raises(wsqueue.BadHandle):
        server.engine.stats()


def test_no_thread_or_fd_leak_after_shutdown() -> None:
    def cycle() -> None:
        with wss.serve(echo, "127.0.0.1", 0) as server:
            for _ in range(10):
                with connect(url(server)) as client:
                    client.send("x")
                    assert client.recv(timeout=WAIT) == "x"

    cycle()
    threads, fds = os_threads(), open_fds()
    for _ in range(5):
        cycle()
    assert os_threads() == threads
    assert open_fds() == fds


def test_bad_input_and_a_failing_process_request() -> None:
    outcomes: dict[str, type[BaseException]] = {}

    def handler(connection: wss.ServerConnection) -> None:
        try:
            connection.send(3.5)  # type: ignore[arg-type]
        except BaseException as exc:
            outcomes["send float"] = type(exc)
        try:
            connection.close(999)
        except BaseException as exc:
            outcomes["close 999"] = type(exc)
        try:
            connection.recv(timeout=0.01)
        except BaseException as exc:
            outcomes["recv timeout"] = type(exc)
        connection.send("checked")

    def broken(connection: wss.ServerConnection, request: wss.Request) -> None:
        if request.path == "/broken":
            raise RuntimeError("auth backend down")

    with wss.serve(handler, "127.0.0.1", 0, process_request=broken) as server:
        with connect(url(server)) as client:
            assert client.recv(timeout=WAIT) == "checked"
        with pytest.raises(InvalidStatus) as refused:
            connect(url(server, "/broken"))
        assert refused.value.response.status_code == 500
        with pytest.raises(wsqueue.IOFailure):
            wss.serve(echo, "127.0.0.1", server.port)
    assert outcomes == {
        "send float": TypeError,
        "close 999": wsqueue.InvalidArgument,
        "recv timeout": TimeoutError,
    }
