"""A tab that falls behind comes back by itself.

Streamlit 1.67's server queues at most 500 messages for each browser. When a browser stops reading for a while (a
stalled connection on flaky wifi, a laptop too busy to draw), the queue fills; the server then drops that
session as disconnected but leaves its websocket open. The tab keeps sending (button presses, the timed
fragments' requests) and never hears back: it freezes for good, and never reconnects, because its connection
never closed. Seen with eight tabs training on a two-core server.

`close_overflowing_connections` closes the websocket at that moment. The browser then reconnects by itself
(Streamlit's own "Connecting" banner), resumes the same session (its state and its training run survive a
reconnect), and reruns the page.
"""

from __future__ import annotations

import asyncio
import functools
import logging

_LOG = logging.getLogger(__name__)
GOING_AWAY = 1001  # the websocket close code for "the server is letting go of this connection"; the browser retries


def close_overflowing_connections() -> None:
    """Make every browser connection whose send queue overflows close, so its tab reconnects (idempotent)."""
    from streamlit.runtime import SessionClientDisconnectedError
    from streamlit.web.server.starlette.starlette_websocket import StarletteSessionClient

    if getattr(StarletteSessionClient, "closes_when_overflowing", False):
        return
    write = StarletteSessionClient.write_forward_msg

    @functools.wraps(write)
    def write_or_close(self: StarletteSessionClient, msg) -> None:
        try:
            write(self, msg)
        except SessionClientDisconnectedError:
            close_soon(self)
            raise

    StarletteSessionClient.write_forward_msg = write_or_close
    StarletteSessionClient.closes_when_overflowing = True


def close_soon(client) -> None:
    """Close the client's websocket from the server's event loop (the runtime writes from that loop)."""
    if getattr(client, "closing", False):
        return
    client.closing = True
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # not on the event loop: nothing to schedule on
        return
    _LOG.warning("A browser fell too far behind; closing its connection so that it reconnects.")
    loop.create_task(_close(client))


async def _close(client) -> None:
    try:
        await client._websocket.close(code=GOING_AWAY)
    except Exception:  # noqa: BLE001 - already closed by the other side: nothing left to do
        pass
