// Pure dashboard state: a book following the relay's snapshot/update chain, candles built
// from trades, trading status and auctions, news, the rounds' leaderboard, bounded lists. No DOM, no sockets (see app.js
// for those).

export const TAPE_CAP = 200; // trades kept for the tape
export const CANDLE_CAP = 240; // candles kept per interval
export const CURVE_CAP = 600; // equity points kept per account (one per second)
export const LIST_CAP = 100; // liquidations, news
export const LEADERBOARD_CAP = 100; // rows kept and shown (PROTOCOL.md §7: up to 100)

/** An L2 book applied from book_snapshot / book_update (PROTOCOL.md §4). */
export class Book {
  constructor(symbol) {
    this.symbol = symbol;
    this.seq = null; // null: waiting for a snapshot
    this.bids = new Map(); // price -> qty
    this.asks = new Map();
    this.resyncs = 0;
  }

  snapshot(msg) {
    this.bids = new Map(msg.bids);
    this.asks = new Map(msg.asks);
    this.seq = msg.seq;
  }

  /** Apply an update; false on a broken chain (the caller resubscribes; the book then
   * waits for a fresh snapshot and ignores updates). */
  update(msg) {
    if (this.seq === null) return true; // not synced yet: the snapshot will carry it
    if (msg.prev_seq !== this.seq) {
      this.seq = null;
      this.resyncs += 1;
      return false;
    }
    for (const [price, qty] of msg.bids) qty === 0 ? this.bids.delete(price) : this.bids.set(price, qty);
    for (const [price, qty] of msg.asks) qty === 0 ? this.asks.delete(price) : this.asks.set(price, qty);
    this.seq = msg.seq;
    return true;
  }

  /** Levels best first: [[price, qty], ...] per side. */
  levels() {
    const bids = [...this.bids].sort((a, b) => b[0] - a[0]);
    const asks = [...this.asks].sort((a, b) => a[0] - b[0]);
    return { bids, asks };
  }
}

/** OHLC + volume candles of one interval, built from trades in seq order. */
export class Candles {
  constructor(seconds, cap = CANDLE_CAP) {
    this.seconds = seconds;
    this.cap = cap;
    this.list = [];
  }

  add(trade) {
    const t = Math.floor(trade.ts / 1e9 / this.seconds) * this.seconds;
    const last = this.list[this.list.length - 1];
    if (last && last.t === t) {
      last.h = Math.max(last.h, trade.price);
      last.l = Math.min(last.l, trade.price);
      last.c = trade.price;
      last.v += trade.qty;
      return;
    }
    if (last && t < last.t) return; // older than what we hold: history arrives sorted first
    this.list.push({ t, o: trade.price, h: trade.price, l: trade.price, c: trade.price, v: trade.qty });
    if (this.list.length > this.cap) this.list.splice(0, this.list.length - this.cap);
  }

  reset(trades) {
    this.list = [];
    for (const trade of trades) this.add(trade);
  }
}

/** Trades of the chosen symbol: the tape (newest last) and both candle intervals. */
export class TradeHistory {
  constructor() {
    this.trades = [];
    this.lastSeq = 0;
    this.candles = { 1: new Candles(1), 60: new Candles(60) };
  }

  add(trade) {
    if (trade.seq <= this.lastSeq) return; // already have it (history overlapping the feed)
    this.lastSeq = trade.seq;
    this.trades.push(trade);
    if (this.trades.length > TAPE_CAP * 2) this.trades.splice(0, this.trades.length - TAPE_CAP);
    for (const c of Object.values(this.candles)) c.add(trade);
  }

  /** Merge the HTTP history (newest last) with what the feed already delivered. */
  merge(history) {
    const bySeq = new Map();
    for (const t of history) bySeq.set(t.seq, t);
    for (const t of this.trades) bySeq.set(t.seq, t);
    const all = [...bySeq.values()].sort((a, b) => a.seq - b.seq);
    this.trades = all.slice(-TAPE_CAP);
    this.lastSeq = all.length ? all[all.length - 1].seq : 0;
    // Candles span longer than the tape: rebuild them from everything known.
    for (const c of Object.values(this.candles)) c.reset(all);
  }
}

/** Accounts (account_update) ranked by equity, each with a bounded equity curve. */
export class Accounts {
  constructor() {
    this.latest = new Map();
    this.curves = new Map(); // account -> [[seconds, equity], ...]
  }

  update(msg, nowSeconds) {
    this.latest.set(msg.account, msg);
    const t = Math.floor((msg.ts ? msg.ts / 1e9 : nowSeconds));
    let curve = this.curves.get(msg.account);
    if (!curve) this.curves.set(msg.account, (curve = []));
    const last = curve[curve.length - 1];
    if (last && last[0] === t) last[1] = msg.equity;
    else curve.push([t, msg.equity]);
    if (curve.length > CURVE_CAP) curve.splice(0, curve.length - CURVE_CAP);
  }

  ranked() {
    return [...this.latest.values()].sort((a, b) => b.equity - a.equity);
  }

  clear() {
    this.latest.clear();
    this.curves.clear();
  }
}

/** News items (the ``news`` channel), oldest first, each once (by ``seq``), the newest
 * ``cap`` kept. */
export class NewsLog {
  constructor(cap = LIST_CAP) {
    this.cap = cap;
    this.items = [];
  }

  add(msg) {
    if (this.items.some((n) => n.seq === msg.seq)) return false;
    pushCapped(this.items, msg, this.cap);
    return true;
  }

  /** Newest first. */
  newest() {
    return this.items.slice().reverse();
  }
}

/** ``HH:MM:SS.mmm`` (UTC) of a time in ns since the epoch. */
export function clockText(ts) {
  return new Date(ts / 1e6).toISOString().slice(11, 23);
}

/** Trading status of every symbol (PROTOCOL.md §3.2, the ``status`` channel): the latest
 * ``market_status`` (a newer ``seq`` wins; after ``reconnected()`` the relay's next one counts
 * whatever its seq, as it may hold another history) and the latest ``auction`` of each symbol
 * in auction (forgotten when it leaves auction). Until a ``market_status`` came, the
 * ``instruments`` list's ``status`` says (``open`` when it has none). */
export class MarketStatuses {
  constructor() {
    this.statuses = new Map(); // symbol -> market_status
    this.auctions = new Map(); // symbol -> auction
    this.listed = new Map(); // symbol -> status from the instruments list
    this.stale = new Set(); // symbols whose status predates the last reconnect
  }

  instruments(list) {
    this.listed = new Map(list.map((i) => [i.symbol, i.status || "open"]));
  }

  /** Take a ``market_status``; false when an older one (ignored). */
  status(msg) {
    const known = this.statuses.get(msg.symbol);
    if (known && msg.seq < known.seq && !this.stale.has(msg.symbol)) return false;
    this.stale.delete(msg.symbol);
    this.statuses.set(msg.symbol, msg);
    if (msg.status !== "auction") this.auctions.delete(msg.symbol);
    return true;
  }

  /** Take an ``auction``; false when an older one (ignored). */
  auction(msg) {
    const known = this.auctions.get(msg.symbol);
    if (known && msg.seq < known.seq) return false;
    this.auctions.set(msg.symbol, msg);
    return true;
  }

  /** ``open``, ``halted`` or ``auction``. */
  of(symbol) {
    const known = this.statuses.get(symbol);
    return known ? known.status : this.listed.get(symbol) || "open";
  }

  /** What the page shows beside the badge: when a halt ends; in an auction the indicative
   * price × qty (``decimals``: the tick's), the imbalance and when it ends. "" when open. */
  detail(symbol, decimals = 2) {
    const status = this.of(symbol);
    const known = this.statuses.get(symbol);
    if (status === "halted") return known && known.until ? `until ${clockText(known.until)}` : "";
    if (status !== "auction") return "";
    const auction = this.auctions.get(symbol);
    const ends = auction ? auction.ends_at : known && known.until;
    const parts = [];
    if (auction) {
      parts.push(
        auction.indicative_price === null || auction.indicative_price === undefined
          ? "no cross"
          : `indicative ${Number(auction.indicative_price).toFixed(decimals)} × ${auction.indicative_qty}`,
      );
      parts.push(`imbalance ${auction.imbalance > 0 ? "+" : ""}${auction.imbalance}`);
    }
    if (ends) parts.push(`ends ${clockText(ends)}`);
    return parts.join(" · ");
  }

  reconnected() {
    this.stale = new Set(this.statuses.keys());
    this.auctions.clear(); // the relay sends the live ones again on subscribe
  }
}

export const ROUNDS_KEPT = 16; // round_started messages remembered (names, cash)

/** The ``rounds`` channel: ``round_started`` and the leaderboard the relay sends every second
 * (its latest one, restamped). The newest round seen on this connection is ``round``; a
 * leaderboard of an earlier round (a repeat already on its way when the round started) never
 * replaces the current one. ``reconnected()`` forgets the round (a relay that comes back may
 * hold another history), not the board, which stays shown until the next one. */
export class Rounds {
  constructor() {
    this.round = 0;
    this.started = new Map(); // round -> round_started
    this.board = null;
  }

  roundStarted(msg) {
    this.started.set(msg.round, msg);
    if (this.started.size > ROUNDS_KEPT) this.started.delete(Math.min(...this.started.keys()));
    this.round = Math.max(this.round, msg.round);
  }

  /** Take a leaderboard; false when it is a stale one (ignored). */
  leaderboard(msg) {
    if (msg.round < this.round) return false;
    this.round = msg.round;
    this.board = { ...msg, rows: msg.rows.slice(0, LEADERBOARD_CAP) };
    return true;
  }

  /** "round 2 · final · cash 100000" for the board shown ("" before any). */
  title() {
    const board = this.board;
    if (!board) return "";
    if (board.round === 0) return "round 0 · before the first round";
    const started = this.started.get(board.round);
    const parts = [`round ${board.round}`];
    if (started && started.name) parts.push(started.name);
    if (started) parts.push(`cash ${started.cash}`);
    return parts.join(" · ");
  }

  reconnected() {
    this.round = 0;
  }
}

/** Push onto a list and keep its newest ``cap`` entries. */
export function pushCapped(list, item, cap = LIST_CAP) {
  list.push(item);
  if (list.length > cap) list.splice(0, list.length - cap);
}

/** Decimals of a tick size (0.01 -> 2, 0.5 -> 1, 1 -> 0). */
export function tickDecimals(tick) {
  const text = String(tick);
  if (text.includes("e-")) return Number(text.split("e-")[1]);
  const dot = text.indexOf(".");
  return dot < 0 ? 0 : text.length - dot - 1;
}
