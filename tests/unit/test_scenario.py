"""Scenario files (``--scenario``): parsing with clear errors, and the player's timeline,
resumption after a restart, and at-least-once submission."""

from __future__ import annotations

from pathlib import Path

import pytest

from exchange.engine.scenario import ScenarioPlayer
from exchange.protocol.messages import OperatorCommand, PublishNews, SetStatus, StartRound
from exchange.protocol.scenario import ScenarioError, load
from tests.support import REPO_ROOT

S = 1_000_000_000


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scenario.toml"
    path.write_text(text)
    return path


def test_the_shipped_scenario_loads_in_time_order() -> None:
    scenario = load(REPO_ROOT / "scenarios" / "earnings.toml")
    assert [e.at_s for e in scenario.entries] == sorted(e.at_s for e in scenario.entries)
    halt, news = scenario.entries[0], scenario.entries[1]
    assert halt.command == SetStatus(symbol="AAPL", status="halted", auction_s=10.0)
    assert halt.until_s == 20.0 and halt.at_s == news.at_s
    assert isinstance(news.command, PublishNews) and news.command.shock == 0.03
    assert news.command.symbols == ["AAPL"]
    assert isinstance(scenario.entries[-1].command, StartRound)


def test_entries_are_sorted_by_time_ties_in_file_order(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[[scenario]]\nat_s = 5\nnews = { headline = "b" }\n'
        "[[scenario]]\nat_s = 1\nstart_round = { cash = 10 }\n"
        '[[scenario]]\nat_s = 5\nnews = { headline = "c", symbols = ["AAPL"] }\nshock = -0.1\n',
    )
    entries = load(path).entries
    assert [e.at_s for e in entries] == [1.0, 5.0, 5.0]
    assert [getattr(e.command, "headline", None) for e in entries] == [None, "b", "c"]
    assert entries[2].command == PublishNews(headline="c", symbols=["AAPL"], shock=-0.1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[[scenario]]\nat_s = 1\n", "exactly one of news, status, start_round"),
        ('[[scenario]]\nnews = { headline = "x" }\n', "at_s must be"),
        ('[[scenario]]\nat_s = -1\nnews = { headline = "x" }\n', "at_s must be"),
        ('[[scenario]]\nat_s = 1\nnews = { headline = "x" }\nhalt = 1\n', "unknown key 'halt'"),
        ('[[scenario]]\nat_s = 1\nnews = { headline = "" }\n', "entry 1: news"),
        ('[[scenario]]\nat_s = 1\nnews = { headline = "x", sentiment = 2 }\n', "sentiment"),
        ("[[scenario]]\nat_s = 1\nstart_round = { cash = 5 }\nshock = 0.1\n", "shock goes"),
        ("[x]\n", "unknown table 'x'"),
        ('[[scenario]]\nat_s = 1\nstatus = { symbol = "A", status = "shut" }\n', "entry 1: status"),
        ('[[scenario]]\nat_s = 1\nstatus = { status = "halted" }\n', "symbol"),
        (
            '[[scenario]]\nat_s = 1\nstatus = { symbol = "A", status = "halted", until = 5 }\n',
            "unknown key 'until'",
        ),
        (
            '[[scenario]]\nat_s = 1\nstatus = { symbol = "A", status = "open", until_s = 5 }\n',
            "until_s goes with status halted",
        ),
        (
            '[[scenario]]\nat_s = 1\nstatus = { symbol = "A", status = "halted", until_s = 0 }\n',
            "until_s must be > 0",
        ),
        (
            '[[scenario]]\nat_s = 1\nstatus = { symbol = "A", status = "open", auction_s = 5 }\n',
            "auction_s goes with",
        ),
        (
            '[[scenario]]\nat_s = 1\nstatus = { symbol = "*", status = "auction" }\nshock = 1\n',
            "shock goes",
        ),
        ("[[scenario]\n", "not valid TOML"),
    ],
)
def test_bad_scenarios_say_where(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ScenarioError, match=r"scenario\.toml") as caught:
        load(write(tmp_path, text))
    assert expected in str(caught.value)


def test_a_missing_file_is_a_scenario_error(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read"):
        load(tmp_path / "nope.toml")


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def scenario_file(tmp_path: Path) -> Path:
    return write(
        tmp_path,
        '[[scenario]]\nat_s = 1\nnews = { headline = "one" }\n'
        '[[scenario]]\nat_s = 2\nnews = { headline = "two" }\n'
        "[[scenario]]\nat_s = 3\nstart_round = { cash = 10 }\n",
    )


def test_the_player_submits_on_its_timeline_and_resumes_after_a_restart(tmp_path: Path) -> None:
    scenario = load(scenario_file(tmp_path))
    data = tmp_path / "data"
    data.mkdir()
    clock = Clock(100 * S)
    sent: list[OperatorCommand] = []
    player = ScenarioPlayer(scenario, sent.append, data, clock)
    assert player.next_due() == 101 * S and player.play_due() == 0
    clock.now = 101 * S
    assert player.play_due() == 1 and [getattr(c, "headline", "") for c in sent] == ["one"]
    # The engine restarts 5 s later: the same scenario resumes on its original timeline,
    # the entries that fell due meanwhile run at once, in order.
    clock.now = 106 * S
    again = ScenarioPlayer(scenario, sent.append, data, clock)
    assert again.started_ns == 100 * S and again.played == 1
    assert again.play_due() == 2 and isinstance(sent[-1], StartRound)
    assert again.next_due() is None
    # Another scenario in the same data directory starts afresh.
    other = load(write(tmp_path, '[[scenario]]\nat_s = 1\nnews = { headline = "new" }\n'))
    fresh = ScenarioPlayer(other, sent.append, data, clock)
    assert (fresh.started_ns, fresh.played) == (106 * S, 0)


def test_status_entries_get_their_until_from_the_players_clock(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "[[scenario]]\nat_s = 1\n"
        'status = { symbol = "*", status = "halted", until_s = 2.5, auction_s = 10 }\n'
        '[[scenario]]\nat_s = 4\nstatus = { symbol = "AAPL", status = "auction" }\n'
        '[[scenario]]\nat_s = 9\nstatus = { symbol = "AAPL", status = "open" }\n',
    )
    scenario = load(path)
    clock = Clock(100 * S)
    sent: list[OperatorCommand] = []
    player = ScenarioPlayer(scenario, sent.append, None, clock)
    clock.now = 101 * S + 7  # fires a little late: until counts from when it fires
    assert player.play_due() == 1
    assert sent[0] == SetStatus(
        symbol="*", status="halted", until=103 * S + S // 2 + 7, auction_s=10
    )
    clock.now = 110 * S
    assert player.play_due() == 2
    assert sent[1:] == [
        SetStatus(symbol="AAPL", status="auction"),
        SetStatus(symbol="AAPL", status="open"),
    ]
    assert scenario.entries[0].command.until is None  # type: ignore[union-attr]  # file unchanged
