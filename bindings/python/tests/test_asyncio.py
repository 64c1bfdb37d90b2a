"""wsqueue.asyncio against the real ``websockets`` asyncio client."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable
from typing import Any

import pytest
from conftest import eventually, open_fds, os_threads, run
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedError as ClientClosedError
from websockets.exceptions import ConnectionClosedOK as ClientClosedOK
from websockets.exceptions import InvalidStatus
from websockets.typing import Subprotocol

import wsqueue
import wsqueue.asyncio as wsa

MiB = 1024 * 1024


async def echo(connection: wsa.ServerConnection) -> None:
    async for message in connection:
        await connection.send(message)


def url(server: wsa.WebSocketServer, path: str = "/") -> str:
    return f"ws://127.0.0.1:{server.port}{path}"


def test_text_and_binary_echo_exactly() -> None:
    async def main() -> None:
        async with wsa.serve(echo, "127.0.0.1", 0) as server:
            async with connect(url(server)) as client:
                messages: list[str | bytes] = ["", "hello", "ünïcødé ✓", b"", b"\x00\x01\xff", bytes(range(256)) * 10]
                for message in messages:
                    await client.send(message)
                    reply = await client.recv()
                    assert reply == message and type(reply) is type(message)

    run(main())


def test_sixteen_mib_messages_both_kinds() -> None:
    async def main() -> None:
        # A margin over 16 MiB: the client compresses (permessage-deflate), which
        # makes random bytes a little larger, and the engine limits compressed frames.
        async with wsa.serve(echo, "127.0.0.1", 0, max_size=16 * MiB + 64 * 1024) as server:
            async with connect(url(server), max_size=None) as client:
                big = os.urandom(16 * MiB)
                await client.send(big)
                assert await client.recv() == big
                text = "x" * (16 * MiB)
                await client.send(text)
                assert await client.recv() == text

    run(main())


def test_message_over_max_size_closes_with_1009() -> None:
    async def main() -> None:
        async with wsa.serve(echo, "127.0.0.1", 0, max_size=1000) as server:
            async with connect(url(server)) as client:
                await client.send(b"x" * 1001)
                with pytest.raises(ClientClosedError) as closed:
                    await client.recv()
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009

    run(main())


def test_many_concurrent_clients() -> None:
    async def main() -> None:
        async with wsa.serve(echo, "127.0.0.1", 0) as server:

            async def one(i: int) -> None:
                async with connect(url(server)) as client:
                    for j in range(20):
                        await client.send(f"{i}:{j}")
                    for j in range(20):
                        assert await client.recv() == f"{i}:{j}"

            await asyncio.gather(*(one(i) for i in range(200)))
            assert server.engine.stats().handshakes == 200

    run(main())


def test_server_closes_with_code_and_reason() -> None:
    async def handler(connection: wsa.ServerConnection) -> None:
        await connection.recv()
        await connection.close(4001, "bye now")
        assert connection.close_code == 4001

    async def main() -> None:
        async with wsa.serve(handler, "127.0.0.1", 0) as server:
            async with connect(url(server)) as client:
                await client.send("close me")
                with pytest.raises(ClientClosedError) as closed:
                    await client.recv()
                assert closed.value.rcvd is not None
                assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4001, "bye now")

    run(main())


def test_client_close_reaches_the_handler_as_connection_closed() -> None:
    seen: list[BaseException] = []

    async def handler(connection: wsa.ServerConnection) -> None:
        try:
            await connection.recv()
        except wsqueue.ConnectionClosed as exc:
            seen.append(exc)
            raise

    async def main() -> None:
        async with wsa.serve(handler, "127.0.0.1", 0) as server:
            async with connect(url(server)) as client:
                await client.close(4002, "client leaves")
            await eventually(lambda: seen, "the handler saw the close")

    run(main())
    exc = seen[0]
    assert isinstance(exc, wsqueue.ConnectionClosedError)
    assert (exc.code, exc.reason, exc.clean) == (4002, "client leaves", True)


def test_normal_close_ends_async_for_and_the_handler_return_closes_1000() -> None:
    finished: list[bool] = []

    async def handler(connection: wsa.ServerConnection) -> None:
        async for _ in connection:
            pass
        finished.append(True)

    async def returns(connection: wsa.ServerConnection) -> None:
        return None

    async def main() -> None:
        async with wsa.serve(handler, "127.0.0.1", 0) as server:
            async with connect(url(server)) as client:
                await client.send("x")
            await eventually(lambda: finished, "async for ended")
        async with wsa.serve(returns, "127.0.0.1", 0) as server:
            async with connect(url(server)) as client:
                with pytest.raises(ClientClosedOK) as closed:
                    await client.recv()
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000

    run(main())


def test_a_failing_handler_closes_with_1011() -> None:
    async def handler(connection: wsa.ServerConnection) -> None:
        raise RuntimeError("boom")

    async def main() -> None:
        async with wsa.serve(handler, "127.0.0.1", 0) as server:
            async with connect(url(server)) as client:
                with pytest.raises(ClientClosedError) as closed:
                    await client.recv()
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011

    run(main())


def test_request_path_headers_and_remote_address() -> None:
    seen: dict[str, Any] = {}

    async def handler(connection: wsa.ServerConnection) -> None:
        seen["path"] = connection.request.path
        seen["header"] = connection.request.headers.get("X-Token")
        seen["remote"] = connection.remote_address
        await connection.send("ok")

    async def main() -> None:
        async with wsa.serve(handler, "127.0.0.1", 0) as server:
            async with connect(url(server, "/room/7?x=1"), additional_headers={"X-Token": "s3cret"}) as client:
                assert await client.recv() == "ok"
                local = client.local_address

        assert seen["path"] == "/room/7?x=1"
        assert seen["header"] == "s3cret"
        assert seen["remote"] == (local[0], local[1])

    run(main())


def test_subprotocol_by_preference_and_by_select() -> None:
    async def report(connection: wsa.ServerConnection) -> None:
        await connection.send(str(connection.subprotocol))

    def pick(connection: wsa.ServerConnection, offered: Any) -> str | None:
        return "v2" if "v2" in offered else None

    async def main() -> None:
        async with wsa.serve(report, "127.0.0.1", 0, subprotocols=["chat", "superchat"]) as server:
            async with connect(url(server), subprotocols=[Subprotocol("superchat"), Subprotocol("chat")]) as client:
                assert client.subprotocol == "chat"
                assert await client.recv() == "chat"
            async with connect(url(server)) as client:
                assert client.subprotocol is None
                assert await client.recv() == "None"
        async with wsa.serve(report, "127.0.0.1", 0, select_subprotocol=pick) as server:
            async with connect(url(server), subprotocols=[Subprotocol("v1"), Subprotocol("v2")]) as client:
                assert client.subprotocol == "v2"
                assert await client.recv() == "v2"

    run(main())


def test_process_request_rejects_with_status_and_body() -> None:
    async def check(connection: wsa.ServerConnection, request: wsa.Request) -> wsa.Response | None:
        if request.headers.get("Authorization") != "Bearer good":
            return wsa.Response(401, "who are you?\n")
        return None

    async def main() -> None:
        async with wsa.serve(echo, "127.0.0.1", 0, process_request=check) as server:
            with pytest.raises(InvalidStatus) as refused:
                async with connect(url(server)):
                    pass
            assert refused.value.response.status_code == 401
            assert refused.value.response.body == b"who are you?\n"
            async with connect(url(server), additional_headers={"Authorization": "Bearer good"}) as client:
                await client.send("in")
                assert await client.recv() == "in"
            assert server.engine.stats().rejected_by_app == 1

    run(main())


def test_backpressure_makes_send_wait_and_loses_nothing() -> None:
    chunk = 64 * 1024
    total = 200  # 12.5 MiB, far over the 1 MiB soft limit
    sent: list[int] = []

    async def flood(connection: wsa.ServerConnection) -> None:
        for i in range(total):
            await connection.send(i.to_bytes(4, "big") * (chunk // 4))
            sent.append(i)
        await connection.recv()

    async def main() -> None:
        async with wsa.serve(flood, "127.0.0.1", 0) as server:
            # The client buffers at most max_queue messages, then stops reading its
            # socket: TCP fills and the server's queue grows past its soft limit.
            # No compression: this is about the send queue, and the repetitive payload
            # would compress to almost nothing and never reach the soft limit.
            async with connect(url(server), max_queue=1, compression=None) as client:
                await eventually(lambda: server.engine.stats().backpressure_reports > 0, "backpressure")
                # send is now waiting for the drain: it cannot finish while nobody reads.
                stalled_at = len(sent)
                assert stalled_at < total
                for _ in range(5):
                    await asyncio.sleep(0)
                assert len(sent) == stalled_at
                assert server.engine.stats().send_queue_bytes <= 2 * MiB
                for i in range(total):
                    message = await client.recv()
                    assert message == i.to_bytes(4, "big") * (chunk // 4)
                assert len(sent) == total
                await client.send("done")

    run(main())


def test_broadcast_reaches_every_open_connection() -> None:
    connections: set[wsa.ServerConnection] = set()

    async def handler(connection: wsa.ServerConnection) -> None:
        connections.add(connection)
        await connection.wait_closed()

    async def main() -> None:
        async with wsa.serve(handler, "127.0.0.1", 0) as server:
            clients = [await connect(url(server)) for _ in range(5)]
            await eventually(lambda: len(connections) == 5, "five handlers")
            wsa.broadcast(connections, "to all")
            wsa.broadcast(connections, b"\x01")
            for client in clients:
                assert await client.recv() == "to all"
                assert await client.recv() == b"\x01"
                await client.close()

    run(main())


def test_shutdown_with_clients_connected_closes_them_1001() -> None:
    ended: list[str] = []

    async def handler(connection: wsa.ServerConnection) -> None:
        try:
            async for message in connection:
                await connection.send(message)
        finally:
            ended.append("ended")

    async def main() -> None:
        server = await wsa.serve(handler, "127.0.0.1", 0)
        clients = [await connect(url(server)) for _ in range(10)]
        for client in clients:
            await client.send("hi")
            assert await client.recv() == "hi"
        server.close()
        await server.wait_closed()
        assert len(ended) == 10
        for client in clients:
            with pytest.raises(ClientClosedOK) as closed:
                await client.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
        with pytest.raises(wsqueue.BadHandle):
            server.engine.stats()

    run(main())


def test_send_after_close_raises_connection_closed() -> None:
    result: list[BaseException] = []

    async def handler(connection: wsa.ServerConnection) -> None:
        await connection.close(1000, "done")
        try:
            await connection.send("late")
        except wsqueue.ConnectionClosed as exc:
            result.append(exc)

    async def main() -> None:
        async with wsa.serve(handler, "127.0.0.1", 0) as server:
            async with connect(url(server)) as client:
                with pytest.raises(ClientClosedOK):
                    await client.recv()
            await eventually(lambda: result, "the handler's send failed")

    run(main())
    assert isinstance(result[0], wsqueue.ConnectionClosedOK) and result[0].code == 1000


def test_serve_forever_stops_when_cancelled() -> None:
    async def main() -> None:
        async with wsa.serve(echo, "127.0.0.1", 0) as server:
            task = asyncio.create_task(server.serve_forever())
            async with connect(url(server)) as client:
                await client.send("x")
                assert await client.recv() == "x"
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await server.wait_closed()

    run(main())


def test_no_thread_or_fd_leak_after_stop() -> None:
    async def cycle() -> None:
        async with wsa.serve(echo, "127.0.0.1", 0) as server:
            clients = [await connect(url(server)) for _ in range(20)]
            for client in clients:
                await client.send("x")
                assert await client.recv() == "x"
            for client in clients:
                await client.close()

    run(cycle())  # warm up: lazily created things (the loop's, the library's)
    threads, fds = os_threads(), open_fds()
    for _ in range(5):
        run(cycle())
    assert os_threads() == threads
    assert open_fds() == fds


def test_memory_does_not_grow_over_server_cycles() -> None:
    def rss_kib() -> int:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS")

    async def cycle() -> None:
        async with wsa.serve(echo, "127.0.0.1", 0) as server:
            async with connect(url(server), max_size=None) as client:
                for _ in range(20):
                    await client.send(b"y" * 256 * 1024)
                    await client.recv()

    for _ in range(3):
        run(cycle())
    before = rss_kib()
    for _ in range(15):
        run(cycle())
    # 15 cycles moved 75 MiB each way; a leak of even one message per cycle would
    # show as 3.75 MiB. Allocator noise stays well under the 8 MiB allowed.
    assert rss_kib() - before < 8 * 1024


def test_runs_under_uvloop() -> None:
    uvloop = pytest.importorskip("uvloop", reason="uvloop is in tests/requirements.txt")

    async def main() -> None:
        async with wsa.serve(echo, "127.0.0.1", 0) as server:
            async with connect(url(server)) as client:
                for i in range(100):
                    await client.send(str(i))
                for i in range(100):
                    assert await client.recv() == str(i)

    uvloop.run(asyncio.wait_for(main(), 60))


def test_unread_messages_stay_bounded_by_max_queue_and_none_is_lost() -> None:
    holder: list[wsa.ServerConnection] = []
    go = asyncio.Event()
    received: list[str | bytes] = []

    async def slow(connection: wsa.ServerConnection) -> None:
        holder.append(connection)
        await go.wait()
        async for message in connection:
            received.append(message)
            if len(received) == 50:
                return

    async def main() -> None:
        async with wsa.serve(slow, "127.0.0.1", 0, max_queue=4, poll_batch=8) as server:
            async with connect(url(server)) as client:
                try:
                    for i in range(50):
                        await client.send(str(i))
                    # The engine read them all; Python holds at most max_queue of them
                    # plus the rest of the batch that reached the bound.
                    await eventually(lambda: server.engine.stats().messages_in == 50, "all read")
                    await eventually(lambda: holder, "handler started")
                    assert len(holder[0]._messages or ()) <= 4 + 8
                finally:
                    go.set()
                await client.wait_closed()

    run(main())
    assert received == [str(i) for i in range(50)]


def test_bad_input_in_the_asyncio_api_raises_the_right_exception() -> None:
    outcomes: dict[str, type[BaseException]] = {}

    async def handler(connection: wsa.ServerConnection) -> None:
        calls: list[tuple[str, Awaitable[None]]] = [
            ("send int", connection.send(42)),  # type: ignore[arg-type]
            ("close 1005", connection.close(1005)),
            ("close reason too long", connection.close(1000, "x" * 124)),
            ("ping too long", connection.ping(b"x" * 126)),
        ]
        for name, call in calls:
            try:
                await call
            except BaseException as exc:
                outcomes[name] = type(exc)
        await connection.send("checked")

    async def main() -> None:
        async with wsa.serve(handler, "127.0.0.1", 0) as server:
            async with connect(url(server)) as client:
                assert await client.recv() == "checked"
            with pytest.raises(wsqueue.IOFailure):
                async with wsa.serve(echo, "127.0.0.1", server.port):
                    pass
        with pytest.raises(TypeError):
            wsa.serve(echo, "127.0.0.1", 0, no_such_setting=1)
        with pytest.raises(wsqueue.InvalidArgument):
            wsa.serve(echo, "127.0.0.1", 0, subprotocols=["a,b"])

    run(main())
    assert outcomes == {
        "send int": TypeError,
        "close 1005": wsqueue.InvalidArgument,
        "close reason too long": wsqueue.InvalidArgument,
        "ping too long": wsqueue.InvalidArgument,
    }


def test_process_request_that_raises_refuses_with_500() -> None:
    async def broken(connection: wsa.ServerConnection, request: wsa.Request) -> None:
        raise RuntimeError("auth backend down")

    async def main() -> None:
        async with wsa.serve(echo, "127.0.0.1", 0, process_request=broken) as server:
            with pytest.raises(InvalidStatus) as refused:
                async with connect(url(server)):
                    pass
            assert refused.value.response.status_code == 500

    run(main())


def test_an_answer_the_engine_refuses_becomes_a_500() -> None:
    async def not_a_refusal(connection: wsa.ServerConnection, request: wsa.Request) -> Any:
        return (200, "fine\n")

    async def main() -> None:
        async with wsa.serve(echo, "127.0.0.1", 0, process_request=not_a_refusal) as server:
            with pytest.raises(InvalidStatus) as refused:
                async with connect(url(server), open_timeout=30):  # a guard, not a speed check
                    pass
            assert refused.value.response.status_code == 500

    run(main())
