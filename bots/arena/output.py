"""The arena's files and terminal output (PROTOCOL §8).

- ``round-N/trades.csv`` and ``round-N/performance.csv``: the exporter's headers and rows,
  written by the exporter's own row code (``exporter.csv_rows``), so the columns and number
  formats are those of ``out/`` of a live run;
- ``leaderboard.csv`` (``scoring.LEADERBOARD_COLUMNS``) and ``leaderboard.json`` (the same rows
  as a list of objects);
- ``arena.png``: every bot's equity curve per round and its rank per round (matplotlib, Agg);
- ``table()``: the final standings as text; ``Progress``: a progress line on stderr.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence, Set
from dataclasses import asdict
from pathlib import Path
from typing import TextIO

from bots.arena.scoring import LEADERBOARD_COLUMNS, RoundRecorder, Row
from exchange.protocol.display import decimal_text
from exporter.csv_rows import (
    PERFORMANCE_HEADER,
    TRADES_HEADER,
    format_rows,
    header_line,
    performance_row,
    trade_row,
)


def write_round(out: Path, round_no: int, recorder: RoundRecorder) -> Path:
    """``out/round-N/trades.csv`` and ``performance.csv``; returns the folder."""
    folder = out / f"round-{round_no}"
    folder.mkdir(parents=True, exist_ok=True)
    trades = header_line(TRADES_HEADER) + format_rows(trade_row(f) for f in recorder.fills)
    (folder / "trades.csv").write_text(trades, encoding="utf-8", newline="")
    performance = header_line(PERFORMANCE_HEADER) + format_rows(
        performance_row(u) for u in recorder.updates
    )
    (folder / "performance.csv").write_text(performance, encoding="utf-8", newline="")
    return folder


def _cell(value: object) -> str:
    if isinstance(value, float):
        return decimal_text(value)
    return str(value)


def write_leaderboard(out: Path, rows: Sequence[Row]) -> None:
    """``leaderboard.csv`` and ``leaderboard.json`` (rows in the order given)."""
    out.mkdir(parents=True, exist_ok=True)
    lines = [[_cell(getattr(row, c)) for c in LEADERBOARD_COLUMNS] for row in rows]
    text = header_line(LEADERBOARD_COLUMNS) + format_rows(lines)
    (out / "leaderboard.csv").write_text(text, encoding="utf-8", newline="")
    objects = [asdict(row) for row in rows]
    (out / "leaderboard.json").write_text(
        json.dumps(objects, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
    )


def write_chart(
    path: Path,
    curves: Sequence[dict[str, list[tuple[float, float]]]],
    rows: Sequence[Row],
) -> None:
    """``arena.png``: equity curves (one panel per round, x in simulated minutes) and each
    bot's rank per round. ``curves[r][bot]``: (minute, equity) points of round r + 1."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds = len(curves)
    bots = sorted({row.bot for row in rows})
    palette = plt.get_cmap("tab10" if len(bots) <= 10 else "tab20")
    colors = {bot: palette(i % palette.N) for i, bot in enumerate(bots)}
    columns = min(rounds, 3)
    grid_rows = -(-rounds // columns) + 1
    figure = plt.figure(figsize=(4.2 * columns + 1.5, 2.6 * grid_rows), dpi=80)
    for r, per_bot in enumerate(curves):
        axes = figure.add_subplot(grid_rows, columns, r + 1)
        for bot in bots:
            points = per_bot.get(bot)
            if points:
                axes.plot([p[0] for p in points], [p[1] for p in points], lw=1, color=colors[bot])
        axes.set_title(f"round {r + 1}: equity", fontsize=9)
        axes.set_xlabel("simulated minutes", fontsize=8)
        axes.tick_params(labelsize=7)
    ranks = figure.add_subplot(grid_rows, 1, grid_rows)
    for bot in bots:
        mine = sorted(
            (row.round, row.rank) for row in rows if row.bot == bot and row.round != "all"
        )
        ranks.plot(
            [int(p[0]) for p in mine],
            [p[1] for p in mine],
            marker="o",
            lw=1,
            color=colors[bot],
            label=bot,
        )
    ranks.set_title("rank per round (1 = best pnl)", fontsize=9)
    ranks.set_xlabel("round", fontsize=8)
    ranks.set_xticks(range(1, rounds + 1))
    ranks.set_yticks(range(1, len(bots) + 1))
    ranks.invert_yaxis()
    ranks.tick_params(labelsize=7)
    ranks.legend(
        fontsize=7, ncol=max(1, min(len(bots), 6)), loc="upper left", bbox_to_anchor=(1.0, 1.0)
    )
    figure.tight_layout()
    figure.savefig(path, metadata={"Software": None})
    plt.close(figure)


def table(rows: Sequence[Row]) -> str:
    """The rows as an aligned text table."""
    headers = ["rank", "bot", "strategy", "status", "pnl", "return %", "sharpe", "max dd"]
    headers += ["fees", "trades", "volume", "liq", "errors"]
    body = [
        [
            str(row.rank),
            row.bot,
            row.strategy,
            row.status,
            f"{row.pnl:,.2f}",
            f"{row.return_pct:.3f}",
            f"{row.sharpe:.3f}",
            f"{row.max_drawdown:,.2f}",
            f"{row.fees:,.2f}",
            str(row.trades),
            str(row.volume),
            str(row.liquidations),
            str(row.errors),
        ]
        for row in rows
    ]
    return aligned(headers, body, left={1, 2, 3})


def aligned(headers: Sequence[str], body: Sequence[Sequence[str]], left: Set[int]) -> str:
    """``headers`` and ``body`` as columns two spaces apart: the columns numbered in ``left``
    left-aligned, the others right-aligned (the arena's and the tournament's tables)."""
    widths = [max([len(h), *(len(line[i]) for line in body)]) for i, h in enumerate(headers)]

    def fmt(cells: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if i in left else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return "\n".join([fmt(headers), *(fmt(line) for line in body)])


class Progress:
    """One line on ``stream`` (stderr) saying how far the rounds are: redrawn in place on a
    terminal, one line per round otherwise."""

    WIDTH = 30

    def __init__(self, rounds: int, stream: TextIO | None = None) -> None:
        self.rounds = rounds
        self.stream = stream if stream is not None else sys.stderr
        self.live = self.stream.isatty()

    def update(self, round_no: int, fraction: float) -> None:
        if not self.live:
            return
        filled = int(self.WIDTH * fraction)
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        self.stream.write(f"\rround {round_no}/{self.rounds} [{bar}] {fraction * 100:5.1f}%")
        self.stream.flush()

    def done(self, round_no: int, text: str) -> None:
        if self.live:
            self.stream.write("\r" + " " * (self.WIDTH + 30) + "\r")
        self.stream.write(f"round {round_no}/{self.rounds} done: {text}\n")
        self.stream.flush()
