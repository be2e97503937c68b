"""The monitor's socket reader: keeps one relay connection alive and reduces every message
into the state. Runs as a Textual worker (an asyncio task on the app's loop), so it can
touch the state without locks; the screen renders it on its own timer.
"""

from __future__ import annotations

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from exchange.protocol.codec import encode, marketdata_message_decoder
from exchange.protocol.messages import Subscribe, Unsubscribe
from monitor.state import Connected, Connecting, Disconnected, MonitorState, reduce, take_resync

MAX_BACKOFF_S = 3.0


def channels(token: str | None) -> list[str]:
    """What the monitor subscribes to: everything public (trading status, news, and the rounds'
    leaderboard), plus accounts with a token."""
    names = ["instruments", "book.*", "trades.*", "liquidations", "status", "news", "rounds"]
    return [*names, "accounts"] if token else names


async def run_feed(url: str, token: str | None, state: MonitorState, depth: int = 20) -> None:
    """Follow the relay at ``url`` forever, reconnecting with backoff. Never returns;
    cancel the task to stop it."""
    import asyncio

    if not token:
        state.accounts_access = "no_token"
    attempt = 0
    while True:
        reduce(state, Connecting(url, attempt))
        try:
            async with connect(
                url, compression=None, open_timeout=5, close_timeout=1, max_size=2**24, proxy=None
            ) as ws:
                reduce(state, Connected(url))
                attempt = 0
                subscribe = Subscribe(channels=channels(token), depth=depth, token=token)
                await ws.send(encode(subscribe), text=True)
                async for frame in ws:  # str: msgspec reads it directly
                    messages, _ = marketdata_message_decoder.decode_frame(frame)
                    for message in messages:
                        reduce(state, message)
                    stale = take_resync(state)
                    if stale:
                        books = [f"book.{s}" for s in stale]
                        await ws.send(encode(Unsubscribe(channels=books)), text=True)
                        await ws.send(encode(Subscribe(channels=books, depth=depth)), text=True)
            reduce(state, Disconnected("the relay closed the connection"))
        except InvalidURI as exc:
            reduce(state, Disconnected(f"bad URL: {exc}"))
            return
        except (OSError, ConnectionClosed, InvalidHandshake, TimeoutError) as exc:
            reduce(state, Disconnected(str(exc) or type(exc).__name__))
        except Exception as exc:  # anything else: show it and reconnect, never kill the app
            reduce(state, Disconnected(f"unexpected {type(exc).__name__}: {exc}"))
        attempt += 1
        await asyncio.sleep(min(MAX_BACKOFF_S, 0.25 * 2**attempt))  # reconnect backoff
