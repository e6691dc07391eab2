"""A browser that falls behind is disconnected properly: its websocket closes, so the tab reconnects by itself
instead of freezing (pages/_connection.py)."""

from __future__ import annotations

import asyncio

import pytest
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.runtime import SessionClientDisconnectedError
from streamlit.web.server.starlette.starlette_server_config import WEBSOCKET_MAX_SEND_QUEUE_SIZE
from streamlit.web.server.starlette.starlette_websocket import StarletteSessionClient

from pages._connection import GOING_AWAY, close_overflowing_connections


@pytest.fixture(autouse=True)
def unpatched():
    """Each test starts from Streamlit's own client (the app, or an earlier test, may have patched it)."""
    saved = StarletteSessionClient.write_forward_msg, getattr(StarletteSessionClient, "closes_when_overflowing", None)
    original = getattr(saved[0], "__wrapped__", saved[0])
    StarletteSessionClient.write_forward_msg = original
    StarletteSessionClient.closes_when_overflowing = False
    yield
    StarletteSessionClient.write_forward_msg, StarletteSessionClient.closes_when_overflowing = saved


class StalledWebsocket:
    """A browser that stopped reading: every send waits forever; close() is recorded."""

    def __init__(self) -> None:
        self.close_codes: list[int] = []
        self.headers, self.cookies, self.client, self.url = {}, {}, None, None
        self._never = asyncio.Event()

    async def send_bytes(self, payload: bytes) -> None:
        await self._never.wait()

    async def close(self, code: int = 1000) -> None:
        self.close_codes.append(code)


async def overflow(client: StarletteSessionClient) -> int:
    """Write messages until the client refuses one; how many it took."""
    message = ForwardMsg()
    message.script_finished = ForwardMsg.FINISHED_SUCCESSFULLY
    for written in range(WEBSOCKET_MAX_SEND_QUEUE_SIZE + 10):
        try:
            client.write_forward_msg(message)
        except SessionClientDisconnectedError:
            return written
        await asyncio.sleep(0)  # the sender takes the first message and stalls on it
    raise AssertionError("The send queue never overflowed")


def stalled_overflow_close_codes() -> list[int]:
    async def scenario() -> list[int]:
        websocket = StalledWebsocket()
        client = StarletteSessionClient(websocket)
        written = await overflow(client)
        assert written >= WEBSOCKET_MAX_SEND_QUEUE_SIZE
        with pytest.raises(SessionClientDisconnectedError):  # later writes still refuse, as before
            client.write_forward_msg(ForwardMsg())
        for _ in range(5):
            await asyncio.sleep(0)
        return websocket.close_codes

    return asyncio.run(scenario())


def test_unpatched_streamlit_leaves_the_overflowing_websocket_open():
    """What froze tabs: the session is dropped, but the browser is never told."""
    assert stalled_overflow_close_codes() == []


def test_a_browser_whose_send_queue_overflows_has_its_websocket_closed():
    close_overflowing_connections()
    assert stalled_overflow_close_codes() == [GOING_AWAY]  # closed once, with a code the browser retries after


def test_patching_twice_wraps_once():
    close_overflowing_connections()
    first = StarletteSessionClient.write_forward_msg
    close_overflowing_connections()
    assert StarletteSessionClient.write_forward_msg is first


def test_the_app_installs_it():
    from tests.conftest import open_app_page

    open_app_page("pages/lecture.py").run(timeout=120)  # runs app.py first
    assert StarletteSessionClient.closes_when_overflowing
