"""What the gateway's input checks cost: decoding a client frame with every guard of
PROTOCOL.md §2 (nesting depth, batch split, per-member errors) and the range check of an order,
against a bare msgspec decode of the same frame in the same run.

Usage: .venv/bin/python scripts/bench_decode.py [--seconds 1.0]

Prints one line per frame shape: µs per frame for the guarded path and the bare decode, and
their ratio.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

import msgspec

from exchange.protocol.bounds import order_problem
from exchange.protocol.codec import request_decoder
from exchange.protocol.messages import ClientRequest, NewOrder

ORDER = {"type": "new_order", "symbol": "AAPL", "side": "buy", "qty": 10, "price": 189.5}


def _frames() -> dict[str, bytes]:
    batch = [dict(ORDER, req_id=i, client_order_id=f"c{i}") for i in range(50)]
    return {
        "one order": json.dumps(dict(ORDER, req_id=1)).encode(),
        "batch of 50 orders": json.dumps(batch).encode(),
        "ping": b'{"type":"ping","req_id":7}',
    }


def _guarded(frame: bytes) -> None:
    messages, _ = request_decoder.decode_frame(frame)
    for message in messages:
        if type(message) is NewOrder:
            order_problem(message.qty, message.price)


_bare_one = msgspec.json.Decoder(ClientRequest).decode
_bare_many = msgspec.json.Decoder(list[ClientRequest]).decode


def _bare(frame: bytes) -> Any:
    return _bare_many(frame) if frame[:1] == b"[" else _bare_one(frame)


def _per_call(fn: Callable[[bytes], Any], frame: bytes, budget: float) -> float:
    """Best of three timed loops, in µs per call."""
    best = float("inf")
    for _ in range(3):
        calls = 0
        started = time.perf_counter()
        deadline = started + budget / 3
        while True:
            for _ in range(200):
                fn(frame)
            calls += 200
            now = time.perf_counter()
            if now >= deadline:
                break
        best = min(best, (now - started) / calls * 1e6)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    args = parser.parse_args()
    print(f"{'frame':<22}{'guarded µs':>12}{'bare µs':>10}{'ratio':>8}")
    for name, frame in _frames().items():
        guarded = _per_call(_guarded, frame, args.seconds)
        bare = _per_call(_bare, frame, args.seconds)
        print(f"{name:<22}{guarded:>12.2f}{bare:>10.2f}{guarded / bare:>8.2f}")


if __name__ == "__main__":
    main()
