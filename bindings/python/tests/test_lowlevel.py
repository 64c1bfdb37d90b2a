"""The low-level API against the C ABI: config mirror, events, sends, errors."""

from __future__ import annotations

import re
import select
import socket
from pathlib import Path

import pytest
from websockets.sync.client import connect
from websockets.typing import Subprotocol

import wsqueue
from wsqueue import _ffi

ROOT = Path(__file__).resolve().parents[3]


def poll_until(server: wsqueue.Server, kind: type, count: int = 1) -> list[wsqueue.Event]:
    """Polls (blocking, 10 s per call at most) until ``count`` events of ``kind`` came."""
    seen: list[wsqueue.Event] = []
    for _ in range(100):
        seen += server.poll(timeout=10)
        if sum(isinstance(e, kind) for e in seen) >= count:
            return seen
    raise AssertionError(f"no {kind.__name__} in {seen}")


def test_version_is_the_crates() -> None:
    text = (ROOT / "Cargo.toml").read_text()
    version = re.search(r'^version = "([^"]+)"', text, re.M)
    assert version is not None
    assert wsqueue.__version__ == version.group(1)


def test_config_defaults_are_the_librarys_field_for_field() -> None:
    # Which fields Config has, against the header: test_abi.py.
    ours = wsqueue.Config().to_c()
    theirs = _ffi.default_config()
    for name, *_ in _ffi.wsq_config_t._fields_:
        assert getattr(ours, name) == getattr(theirs, name), name


@pytest.mark.parametrize(
    "field, value",
    [("max_connections", -1), ("max_connections", 1 << 32), ("listen", "a\0b"), ("max_headers", "8")],
)
def test_config_values_that_do_not_fit_raise_invalid_argument(field: str, value: object) -> None:
    config = wsqueue.Config(listen="127.0.0.1:0")
    setattr(config, field, value)
    with pytest.raises(wsqueue.InvalidArgument):
        wsqueue.Server(config)


def test_a_setting_the_engine_refuses_raises_invalid_argument() -> None:
    bad = wsqueue.Config(listen="127.0.0.1:0", send_queue_soft_limit=10, send_queue_hard_limit=5)
    with pytest.raises(wsqueue.InvalidArgument) as refused:
        wsqueue.Server(bad)
    # The engine's detail names the code itself; the message says it once.
    assert str(refused.value).count("invalid argument") == 1, str(refused.value)


def test_a_taken_port_raises_io_failure() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(wsqueue.IOFailure):
            wsqueue.Server(wsqueue.Config(listen=f"127.0.0.1:{port}"))


def test_events_echo_and_close_from_the_client() -> None:
    with wsqueue.Server(wsqueue.Config(listen="127.0.0.1:0")) as server:
        fd = server.fileno()
        with connect(f"ws://127.0.0.1:{server.port}/chat?room=1", additional_headers={"X-Test": "yes"}) as client:
            opened = [e for e in poll_until(server, wsqueue.OpenEvent) if isinstance(e, wsqueue.OpenEvent)][0]
            assert opened.path == "/chat?room=1"
            assert opened.headers["x-test"] == "yes"
            assert opened.remote_address.startswith("127.0.0.1:")
            client.send("héllo")
            client.send(b"\x00\xff")
            # The event fd is readable while events wait (level-style).
            assert select.select([fd], [], [], 10)[0] == [fd]
            messages = [e for e in poll_until(server, wsqueue.MessageEvent, 2) if isinstance(e, wsqueue.MessageEvent)]
            assert [m.data for m in messages] == ["héllo", b"\x00\xff"]
            for m in messages:
                assert server.send(m.conn, m.data) is False
            assert client.recv() == "héllo"
            assert client.recv() == b"\x00\xff"
            client.close(4001, "done here")
        closes = [e for e in poll_until(server, wsqueue.CloseEvent) if isinstance(e, wsqueue.CloseEvent)]
        assert (closes[0].code, closes[0].reason, closes[0].clean) == (4001, "done here", True)
        assert server.stats().messages_in == 2
        with pytest.raises((wsqueue.NotFound, wsqueue.Closed)):
            server.send(opened.conn, "too late")


def test_send_batch_broadcast_tags_and_buffered_amount() -> None:
    with wsqueue.Server(wsqueue.Config(listen="127.0.0.1:0")) as server:
        url = f"ws://127.0.0.1:{server.port}/"
        with connect(url) as a, connect(url) as b:
            opens = [e for e in poll_until(server, wsqueue.OpenEvent, 2) if isinstance(e, wsqueue.OpenEvent)]
            ids = [e.conn for e in opens]
            results = server.send_batch([(ids[0], "one"), (ids[1], b"two"), (12345678, "nobody")])
            assert results[:2] == [wsqueue.OK, wsqueue.OK]
            assert isinstance(wsqueue.error_for_code(results[2]), wsqueue.NotFound)
            assert server.broadcast("all") == 2
            assert server.broadcast("only a", [ids[0]]) == 1
            server.set_tag(ids[0], 77)
            assert server.get_tag(ids[0]) == 77
            assert server.buffered_amount(ids[0]) >= 0
            server.ping(ids[1], b"p")
            received_a = {a.recv(), a.recv(), a.recv()}
            received_b = {b.recv(), b.recv()}
            assert received_a == {"one", "all", "only a"}
            assert received_b == {b"two", "all"}
            a.send("tagged")
            msg = [e for e in poll_until(server, wsqueue.MessageEvent) if isinstance(e, wsqueue.MessageEvent)][0]
            assert (msg.conn, msg.tag) == (ids[0], 77)


def test_manual_accept_and_reject() -> None:
    cfg = wsqueue.Config(listen="127.0.0.1:0", manual_accept=True, subprotocols="chat,superchat")
    with wsqueue.Server(cfg) as server:
        url = f"ws://127.0.0.1:{server.port}/"
        import threading

        def answer() -> None:
            for event in poll_until(server, wsqueue.UpgradeRequestEvent, 1):
                if isinstance(event, wsqueue.UpgradeRequestEvent):
                    if event.path == "/no":
                        server.reject(event.conn, 401, "go away")
                    else:
                        assert event.subprotocol == "chat"
                        server.accept(event.conn, "superchat", [("X-Extra", "1")])

        t = threading.Thread(target=answer)
        t.start()
        with connect(url, subprotocols=[Subprotocol("superchat"), Subprotocol("chat")]) as client:
            assert client.subprotocol == "superchat"
            assert client.response is not None
            assert client.response.headers["X-Extra"] == "1"
        t.join()
        t = threading.Thread(target=answer)
        t.start()
        with pytest.raises(Exception) as refused:
            connect(url + "no")
        t.join()
        assert refused.value.response.status_code == 401  # type: ignore[attr-defined]
        assert refused.value.response.body == b"go away"  # type: ignore[attr-defined]


def test_bad_arguments_raise_the_right_exceptions() -> None:
    with wsqueue.Server(wsqueue.Config(listen="127.0.0.1:0")) as server:
        with pytest.raises(wsqueue.InvalidArgument):
            server.send(-1, "x")
        with pytest.raises(wsqueue.InvalidArgument):
            server.send(1 << 64, "x")
        with pytest.raises(TypeError):
            server.send(1, 42)  # type: ignore[arg-type]
        with pytest.raises(wsqueue.NotFound):
            server.send(999_999, "stale")
        with pytest.raises(wsqueue.NotFound):
            server.close(999_999, 1000, "")
        with pytest.raises(wsqueue.InvalidArgument):
            server.close(1, 70000, "")
        with pytest.raises(wsqueue.InvalidArgument):
            server.poll(0, max_events=0)
        with pytest.raises(wsqueue.InvalidArgument):
            server.local_address(5)
        with pytest.raises(wsqueue.InvalidArgument):
            server.reject(1, 99999)
        server.stop(1)
        with pytest.raises(wsqueue.Stopped):
            server.broadcast("after stop")
        assert server.poll(timeout=None) == []  # never blocks once stopped and drained
    with pytest.raises(wsqueue.BadHandle):
        server.send(1, "freed")
    with pytest.raises(wsqueue.BadHandle):
        server.stats()
    server.free()  # idempotent


def test_exceptions_share_one_base_and_carry_codes() -> None:
    for cls, code in [
        (wsqueue.InvalidArgument, 1),
        (wsqueue.NotFound, 2),
        (wsqueue.Closed, 3),
        (wsqueue.QueueFull, 4),
        (wsqueue.Stopped, 5),
        (wsqueue.InvalidState, 6),
        (wsqueue.IOFailure, 7),
        (wsqueue.BadHandle, 8),
        (wsqueue.Panic, 9),
        (wsqueue.TLSError, 10),
    ]:
        exc = wsqueue.error_for_code(code)
        assert type(exc) is cls and exc.code == code and isinstance(exc, wsqueue.Error)
        assert cls.code == code
    assert type(wsqueue.error_for_code(4242)) is wsqueue.Error


def test_every_error_code_has_its_own_exception_class() -> None:
    codes = {name: value for name, value in vars(_ffi).items() if name.startswith("ERR_")}
    classes = {type(wsqueue.error_for_code(code)) for code in codes.values()}
    assert wsqueue.Error not in classes and len(classes) == len(codes), codes
