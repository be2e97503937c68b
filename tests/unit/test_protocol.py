"""The wire codec: exact error texts, batches, refs; and the field orders the core relies on."""

from __future__ import annotations

import pytest

from exchange.protocol import encode, marketdata_request_decoder, request_decoder
from exchange.protocol.messages import (
    AccountUpdate,
    Bbo,
    BookDelta,
    Error,
    ExecutionReport,
    Fill,
    NewOrder,
    Ping,
    Position,
    Subscribe,
)


def test_core_builds_these_structs_positionally_so_their_field_order_is_pinned() -> None:
    # exchange/core constructs these with positional arguments (5x faster than keywords in
    # msgspec for wide structs). Reordering fields here must come with a core change.
    assert ExecutionReport.__struct_fields__ == (
        "exec_type", "status", "order_id", "client_order_id", "account", "symbol", "side",
        "order_type", "tif", "price", "qty", "cum_qty", "leaves_qty", "avg_px", "trade_id",
        "last_px", "last_qty", "liquidity", "fee", "reject_reason", "text", "post_only",
        "liquidation", "retry_after_ms", "req_id", "ts", "seq", "expire_at",
        "trigger_price", "activate_at", "reduce_only", "triggered", "display_qty",
    )  # fmt: skip
    assert Fill.__struct_fields__ == (
        "symbol", "trade_id", "price", "qty", "aggressor", "buy_account", "sell_account",
        "buy_order_id", "sell_order_id", "buy_fee", "sell_fee", "liquidation", "ts", "seq",
    )  # fmt: skip
    assert Bbo.__struct_fields__ == ("symbol", "bid", "bid_qty", "ask", "ask_qty", "ts", "seq")
    assert BookDelta.__struct_fields__ == ("symbol", "bids", "asks", "ts", "seq")
    assert AccountUpdate.__struct_fields__[:11] == (
        "account", "cash", "equity", "realized_pnl", "unrealized_pnl", "fees",
        "initial_margin", "maintenance_margin", "available", "positions", "liquidating",
    )  # fmt: skip
    assert Position.__struct_fields__ == (
        "symbol", "qty", "avg_px", "mark_px", "realized_pnl", "unrealized_pnl",
    )  # fmt: skip


def test_valid_order_decodes_with_defaults() -> None:
    (msg,), batch = request_decoder.decode_frame(
        b'{"type":"new_order","symbol":"AAPL","side":"buy","qty":3,"price":101.25}'
    )
    assert not batch
    assert msg == NewOrder(symbol="AAPL", side="buy", qty=3, price=101.25)
    assert (msg.tif, msg.order_type, msg.stp, msg.post_only) == (
        "gtc",
        "limit",
        "expire_taker",
        False,
    )


@pytest.mark.parametrize(
    ("frame", "text", "ref"),
    [
        (
            b'{"type":"new_order","symbol":"A","side":"buy","qty":"x","client_order_id":"c1"}',
            "Expected `int`, got `str` - at `$.qty`",
            "c1",
        ),
        (b'{"type":"ping","req_id":7,"zz":1}', "Object contains unknown field `zz`", 7),
        (b'{"type":"nope","req_id":"r"}', "Invalid value 'nope' - at `$.type`", "r"),
        (b'{"symbol":"A"}', "Object missing required field `type`", None),
        (
            b'{"type":"new_order","symbol":"A","side":"up","qty":1}',
            "Invalid enum value 'up' - at `$.side`",
            None,
        ),
    ],
)
def test_invalid_messages_get_msgspec_text_and_ref(frame: bytes, text: str, ref: object) -> None:
    (error,), _ = request_decoder.decode_frame(frame)
    assert isinstance(error, Error)
    assert (error.code, error.text, error.ref) == ("invalid_message", text, ref)


def test_malformed_json_is_an_error_not_an_exception() -> None:
    (error,), _ = request_decoder.decode_frame(b'{"type": "ping"')
    assert isinstance(error, Error) and error.code == "invalid_message"
    (error,), _ = request_decoder.decode_frame("not json at all")
    assert isinstance(error, Error)


def test_batches_handle_each_member_alone() -> None:
    messages, batch = request_decoder.decode_frame(
        b'[{"type":"ping","req_id":1}, {"type":"ping","bad":1}, {"type":"ping","req_id":3}]'
    )
    assert batch
    assert messages[0] == Ping(req_id=1) and messages[2] == Ping(req_id=3)
    assert isinstance(messages[1], Error)


def test_empty_batch_is_invalid() -> None:
    (error,), batch = request_decoder.decode_frame(b"[]")
    assert batch and isinstance(error, Error) and error.text == "Empty batch"


def test_marketdata_requests() -> None:
    (msg,), _ = marketdata_request_decoder.decode_frame(
        b'{"type":"subscribe","channels":["book.AAPL","trades.*"],"depth":5}'
    )
    assert msg == Subscribe(channels=["book.AAPL", "trades.*"], depth=5)


def test_encoding_carries_the_type_tag() -> None:
    assert encode(Ping(req_id=1)) == b'{"type":"ping","req_id":1}'
