"""examples/python/echo.py and chat.py as programs: their contract, and a clean stop
on SIGINT / SIGTERM. Also Ctrl-C on a sync server's serve_forever."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosedOK
from websockets.sync.client import connect

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "python"
WAIT = 30  # seconds: deadlock guard only


class Program:
    def __init__(self, args: list[str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.startswith("listening on "), (line, self.proc.stderr.read() if self.proc.stderr else "")
        self.port = int(line.strip().rstrip("/").rsplit(":", 1)[1])

    def stop(self, sig: int) -> int:
        self.proc.send_signal(sig)
        code = self.proc.wait(WAIT)
        return code


@pytest.fixture
def programs() -> Iterator[list[Program]]:
    started: list[Program] = []
    yield started
    for program in started:
        if program.proc.poll() is None:
            program.proc.kill()
            program.proc.wait()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_echo_example_echoes_exactly_and_stops_cleanly(programs: list[Program], sig: int) -> None:
    echo = Program([str(EXAMPLES / "echo.py"), "0"])
    programs.append(echo)
    with connect(f"ws://127.0.0.1:{echo.port}/", max_size=None) as client:
        big = os.urandom(16 * 1024 * 1024)
        messages: list[str | bytes] = ["text", b"\x00bin", big, "t" * (16 * 1024 * 1024)]
        for message in messages:
            client.send(message)
            reply = client.recv(timeout=WAIT)
            assert reply == message and type(reply) is type(message)
        assert echo.stop(sig) == 0
        with pytest.raises(ConnectionClosedOK) as closed:
            client.recv(timeout=WAIT)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001


def test_chat_example_serves_the_page_and_relays_json(programs: list[Program]) -> None:
    chat = Program([str(EXAMPLES / "chat.py"), "0"])
    programs.append(chat)
    page = urllib.request.urlopen(f"http://127.0.0.1:{chat.port}/", timeout=WAIT).read()
    assert b"<html" in page
    url = f"ws://127.0.0.1:{chat.port}/"
    with connect(url) as one:
        welcome = json.loads(one.recv(timeout=WAIT))
        assert welcome["type"] == "welcome"
        me = welcome["you"]
        assert json.loads(one.recv(timeout=WAIT)) == {"type": "join", "user": me, "text": f"user {me} joined"}
        with connect(url) as two:
            other = json.loads(two.recv(timeout=WAIT))["you"]
            assert json.loads(one.recv(timeout=WAIT))["user"] == other
            two.recv(timeout=WAIT)  # its own join
            one.send('say "hi" \\ <b>')
            line = {"type": "chat", "from": me, "text": 'say "hi" \\ <b>'}
            assert json.loads(one.recv(timeout=WAIT)) == line
            assert json.loads(two.recv(timeout=WAIT)) == line
            two.send(b"binary is ignored")
            two.send("after")
            assert json.loads(one.recv(timeout=WAIT))["text"] == "after"
        assert json.loads(one.recv(timeout=WAIT)) == {"type": "leave", "user": other, "text": f"user {other} left"}
        assert chat.stop(signal.SIGTERM) == 0


def test_ctrl_c_stops_a_sync_server_cleanly(programs: list[Program], tmp_path: Path) -> None:
    script = tmp_path / "sync_echo.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys
            import wsqueue.sync

            def echo(connection):
                for message in connection:
                    connection.send(message)

            with wsqueue.sync.serve(echo, "127.0.0.1", 0) as server:
                print(f"listening on 127.0.0.1:{server.port}", flush=True)
                try:
                    server.serve_forever()
                except KeyboardInterrupt:
                    pass
            sys.exit(0)
            """
        )
    )
    server = Program([str(script)])
    programs.append(server)
    with connect(f"ws://127.0.0.1:{server.port}/") as client:
        client.send("x")
        assert client.recv(timeout=WAIT) == "x"
        assert server.stop(signal.SIGINT) == 0
        with pytest.raises(ConnectionClosedOK) as closed:
            client.recv(timeout=WAIT)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
