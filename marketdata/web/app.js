// The live dashboard (PROTOCOL.md §7): one WebSocket to the relay that served this page.
// Messages update plain state (model.js); the DOM and the canvases are redrawn at most once
// per animation frame, from that state.

import {
  Accounts,
  Book,
  LEADERBOARD_CAP,
  MarketStatuses,
  NewsLog,
  Rounds,
  TradeHistory,
  clockText,
  pushCapped,
  tickDecimals,
} from "./model.js";
import { drawCandles, drawCurves, drawDepth } from "./charts.js";

const DEPTH = 20; // book levels a side we subscribe to
const LADDER_ROWS = 12; // shown a side
const TAPE_ROWS = 40;
const ACCOUNT_ROWS = 100;
const NEWS_ROWS = 30; // shown, newest first (the model keeps 100)
const BACKOFF_MIN_MS = 250;
const BACKOFF_MAX_MS = 2000; // so a relay that comes back is found within ~2 s
const SILENCE_MS = 5000; // heartbeats come every second: this much silence means a dead link
const EXTRA_CHANNELS = ["status", "news", "rounds"]; // optional: ignored where the relay lacks them

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);

const state = {
  ws: null,
  connected: false,
  backoff: BACKOFF_MIN_MS,
  lastMessageAt: 0,
  instruments: [],
  symbol: params.get("symbol") || null,
  subscribedSymbol: null,
  token: params.get("token") || "",
  tokenState: "", // "", "ok", "forbidden"
  book: null,
  bbo: null,
  trades: new TradeHistory(),
  accounts: new Accounts(),
  liquidations: [],
  news: new NewsLog(),
  statuses: new MarketStatuses(),
  rounds: new Rounds(),
  interval: 1,
};

// ------------------------------------------------------------------ rendering

const dirty = new Set();
let frameRequested = false;

function invalidate(...parts) {
  for (const part of parts) dirty.add(part);
  if (frameRequested) return;
  frameRequested = true;
  requestAnimationFrame(render);
  // A hidden tab gets no animation frames: still keep the text current, slowly.
  setTimeout(render, 1000);
}

function render() {
  if (!frameRequested) return;
  frameRequested = false;
  const parts = new Set(dirty);
  dirty.clear();
  if (parts.has("connection")) renderConnection();
  if (parts.has("symbols")) renderSymbols();
  if (parts.has("book")) renderBook();
  if (parts.has("bbo")) renderBbo();
  if (parts.has("trades")) renderTrades();
  if (parts.has("accounts")) renderAccounts();
  if (parts.has("liquidations")) renderLiquidations();
  if (parts.has("status")) renderStatus();
  if (parts.has("news")) renderNews();
  if (parts.has("leaderboard")) renderLeaderboard();
}

function decimals() {
  const info = state.instruments.find((i) => i.symbol === state.symbol);
  return info ? tickDecimals(info.tick_size) : 2;
}

const money = (v) => (v === null || v === undefined ? "–" : Number(v).toFixed(2));
/** ``1.25%``; a value that rounds to zero prints ``0.00%`` (never ``-0.00%``). */
const percent = (v) => `${(Math.round(Number(v) * 100) / 100 || 0).toFixed(2)}%`;
const clock = clockText;

/** Make ``tbody`` hold exactly ``rows`` (arrays of cell texts), reusing its elements. */
function fillRows(tbody, rows, decorate) {
  while (tbody.rows.length > rows.length) tbody.deleteRow(-1);
  rows.forEach((cells, i) => {
    const tr = tbody.rows[i] || tbody.insertRow();
    while (tr.cells.length > cells.length) tr.deleteCell(-1);
    cells.forEach((text, j) => {
      const td = tr.cells[j] || tr.insertCell();
      if (td.textContent !== text) td.textContent = text;
      td.className = "";
    });
    if (decorate) decorate(tr, i);
  });
}

function renderConnection() {
  const badge = $("connection");
  const text = state.connected ? "connected" : "disconnected";
  badge.textContent = text;
  badge.dataset.state = text;
}

function renderSymbols() {
  const select = $("symbol");
  const names = state.instruments.map((i) => i.symbol);
  if ([...select.options].map((o) => o.value).join() !== names.join()) {
    select.replaceChildren(...names.map((n) => new Option(n, n)));
  }
  if (state.symbol) select.value = state.symbol;
}

function renderBook() {
  const d = decimals();
  const tbody = $("ladder").tBodies[0];
  const book = state.book;
  const { bids, asks } = book ? book.levels() : { bids: [], asks: [] };
  const shownAsks = asks.slice(0, LADDER_ROWS).reverse();
  const shownBids = bids.slice(0, LADDER_ROWS);
  const rows = [
    ...shownAsks.map(([p, q]) => ["", p.toFixed(d), String(q)]),
    ["", spreadText(bids[0], asks[0], d), ""],
    ...shownBids.map(([p, q]) => [String(q), p.toFixed(d), ""]),
  ];
  fillRows(tbody, rows, (tr, i) => {
    const side = i < shownAsks.length ? "ask" : i === shownAsks.length ? "" : "bid";
    tr.dataset.side = side;
    tr.className = side ? "" : "spread-row";
  });
  $("book-info").textContent = book
    ? `${book.seq === null ? "resyncing…" : `seq ${book.seq}`}${book.resyncs ? ` · ${book.resyncs} resyncs` : ""}`
    : "";
  drawDepth($("depth"), bids, asks, d);
}

function spreadText(bid, ask, d) {
  if (!bid || !ask) return "–";
  return `spread ${(ask[0] - bid[0]).toFixed(d)}`;
}

function renderBbo() {
  const d = decimals();
  const b = state.bbo;
  if (!b) {
    $("bbo").textContent = "bid – / ask –";
    $("spread").textContent = "spread –";
    return;
  }
  const bid = b.bid === null ? "–" : `${b.bid.toFixed(d)} × ${b.bid_qty}`;
  const ask = b.ask === null ? "–" : `${b.ask.toFixed(d)} × ${b.ask_qty}`;
  $("bbo").textContent = `bid ${bid} / ask ${ask}`;
  $("spread").textContent =
    b.bid !== null && b.ask !== null ? `spread ${(b.ask - b.bid).toFixed(d)}` : "spread –";
}

function renderTrades() {
  const d = decimals();
  const recent = state.trades.trades.slice(-TAPE_ROWS).reverse();
  fillRows(
    $("tape").tBodies[0],
    recent.map((t) => [clock(t.ts), t.price.toFixed(d), String(t.qty), t.aggressor]),
    (tr, i) => (tr.cells[3].className = recent[i].aggressor),
  );
  drawCandles($("candles"), state.trades.candles[state.interval].list, d);
}

function renderAccounts() {
  const panel = $("accounts-panel");
  $("token-state").textContent = state.tokenState;
  const show = state.tokenState === "ok";
  panel.hidden = !show;
  if (!show) return;
  const ranked = state.accounts.ranked();
  fillRows(
    $("accounts").tBodies[0],
    ranked.slice(0, ACCOUNT_ROWS).map((a, i) => [
      String(i + 1),
      a.account + (a.liquidating ? " (liquidating)" : ""),
      money(a.equity),
      money(a.cash),
      money(a.realized_pnl),
      money(a.unrealized_pnl),
      money(a.fees),
      a.positions
        .filter((p) => p.qty !== 0)
        .map((p) => `${p.symbol} ${p.qty}@${+Number(p.avg_px).toFixed(4)} (${money(p.unrealized_pnl)})`)
        .join(", "),
    ]),
  );
  drawCurves($("equity"), ranked, state.accounts.curves);
}

function renderLiquidations() {
  fillRows(
    $("liquidations").tBodies[0],
    state.liquidations
      .slice()
      .reverse()
      .map((l) => [clock(l.ts), l.account, l.symbol, l.side, String(l.qty), String(l.price)]),
  );
}

// The selected symbol's trading status (PROTOCOL.md §3.2): a badge, and beside it when a
// halt ends or the auction's indicative price, quantity, imbalance and end.
function renderStatus() {
  const status = state.symbol ? state.statuses.of(state.symbol) : "open";
  const badge = $("market-status");
  badge.textContent = status;
  badge.dataset.state = status;
  $("auction-info").textContent = state.symbol ? state.statuses.detail(state.symbol, decimals()) : "";
}

/** One element with a class and text (never HTML: headlines come from operators). */
function span(className, text) {
  const element = document.createElement("span");
  element.className = className;
  element.textContent = text;
  return element;
}

const sentimentClass = (s) => (s >= 0.1 ? "buy" : s <= -0.1 ? "sell" : "muted");

// News is public (PROTOCOL.md §7): shown with or without a token.
function renderNews() {
  const items = state.news.newest().slice(0, NEWS_ROWS);
  $("news-empty").hidden = items.length > 0;
  $("news").replaceChildren(
    ...items.map((n) => {
      const li = document.createElement("li");
      li.dataset.seq = String(n.seq);
      li.append(
        span("muted", clock(n.ts)),
        span(`sentiment ${sentimentClass(n.sentiment)}`, `${n.sentiment >= 0 ? "+" : ""}${Number(n.sentiment).toFixed(2)}`),
        span("symbols", n.symbols.length ? n.symbols.join(", ") : "market"),
        span("headline", n.headline),
      );
      if (n.shock !== null && n.shock !== undefined) {
        li.append(span("muted", `shock ${n.shock >= 0 ? "+" : ""}${+(n.shock * 100).toFixed(4)}%`));
      }
      if (n.body) li.title = n.body;
      return li;
    }),
  );
}

// The round's leaderboard comes on the public ``rounds`` channel, but PROTOCOL.md §7 lists it
// among what a monitor token adds: shown only once the relay accepted the token.
function renderLeaderboard() {
  const show = state.tokenState === "ok";
  $("leaderboard-panel").hidden = !show;
  if (!show) return;
  const board = state.rounds.board;
  $("round").textContent = board ? state.rounds.title() : "waiting for the leaderboard…";
  fillRows(
    $("leaderboard").tBodies[0],
    (board ? board.rows.slice(0, LEADERBOARD_CAP) : []).map((r, i) => [
      String(i + 1),
      r.account,
      money(r.equity),
      money(r.pnl),
      percent(r.return_pct),
      money(r.max_drawdown),
      String(r.trades),
      String(r.liquidations),
    ]),
    (tr, i) => (tr.cells[3].className = board.rows[i].pnl > 0 ? "buy" : board.rows[i].pnl < 0 ? "sell" : ""),
  );
}

// ------------------------------------------------------------------ the feed

function send(...messages) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) {
    state.ws.send(JSON.stringify(messages.length === 1 ? messages[0] : messages));
  }
}

function symbolChannels(symbol) {
  return [`book.${symbol}`, `trades.${symbol}`, `bbo.${symbol}`];
}

/** Follow ``symbol``: drop the old one's channels and state, subscribe, load trade history. */
function selectSymbol(symbol) {
  if (state.subscribedSymbol && state.subscribedSymbol !== symbol) {
    send({ type: "unsubscribe", channels: symbolChannels(state.subscribedSymbol) });
  }
  state.symbol = symbol;
  state.subscribedSymbol = symbol;
  state.book = new Book(symbol);
  state.bbo = null;
  state.trades = new TradeHistory();
  send({ type: "subscribe", channels: symbolChannels(symbol), depth: DEPTH, req_id: "symbol" });
  loadHistory(symbol);
  const url = new URL(location.href);
  url.searchParams.set("symbol", symbol);
  history.replaceState(null, "", url);
  invalidate("symbols", "book", "bbo", "trades", "status");
}

async function loadHistory(symbol) {
  try {
    const path = `/api/v1/trades/${encodeURIComponent(symbol)}`;
    let reply = await fetch(`${path}?limit=1000`);
    if (reply.status === 400) reply = await fetch(path); // a relay keeping fewer trades
    if (!reply.ok) return;
    const body = await reply.json();
    if (state.symbol !== symbol) return;
    state.trades.merge(body.trades);
    invalidate("trades");
  } catch {
    // history is a nicety: the live feed goes on without it
  }
}

function subscribeAccounts() {
  if (!state.token) return;
  send({ type: "subscribe", channels: ["accounts"], token: state.token, req_id: "accounts" });
}

function onMessage(msg) {
  switch (msg.type) {
    case "instruments": {
      state.instruments = msg.instruments;
      state.statuses.instruments(msg.instruments);
      invalidate("status");
      const names = msg.instruments.map((i) => i.symbol);
      if (!state.subscribedSymbol || !names.includes(state.symbol)) {
        selectSymbol(names.includes(state.symbol) ? state.symbol : names[0]);
      }
      invalidate("symbols");
      break;
    }
    case "book_snapshot":
      if (state.book && msg.symbol === state.book.symbol) {
        state.book.snapshot(msg);
        invalidate("book");
      }
      break;
    case "book_update":
      if (state.book && msg.symbol === state.book.symbol) {
        if (!state.book.update(msg)) {
          // A gap in the chain: resubscribe for a fresh snapshot (PROTOCOL.md §4).
          const channel = `book.${msg.symbol}`;
          send(
            { type: "unsubscribe", channels: [channel] },
            { type: "subscribe", channels: [channel], depth: DEPTH, req_id: "resync" },
          );
        }
        invalidate("book");
      }
      break;
    case "bbo":
      if (msg.symbol === state.symbol) {
        state.bbo = msg;
        invalidate("bbo");
      }
      break;
    case "trade":
      if (msg.symbol === state.symbol) {
        state.trades.add(msg);
        invalidate("trades");
      }
      break;
    case "account_update":
      if (state.tokenState !== "ok") {
        state.tokenState = "ok";
        invalidate("leaderboard");
      }
      state.accounts.update(msg, Date.now() / 1000);
      invalidate("accounts");
      break;
    case "liquidation":
      pushCapped(state.liquidations, msg);
      invalidate("liquidations");
      break;
    case "subscribed":
      if (msg.req_id === "accounts") {
        state.tokenState = "ok";
        invalidate("accounts", "leaderboard");
      }
      break;
    case "error":
      if (msg.code === "forbidden" || msg.ref === "accounts") {
        state.tokenState = "forbidden";
        state.accounts.clear();
        invalidate("accounts", "leaderboard");
      } else if (!String(msg.ref ?? "").startsWith("extra-")) {
        console.warn("relay error", msg);
      }
      break;
    case "market_status":
      if (state.statuses.status(msg) && msg.symbol === state.symbol) invalidate("status");
      break;
    case "auction":
      if (state.statuses.auction(msg) && msg.symbol === state.symbol) invalidate("status");
      break;
    case "news":
      if (state.news.add(msg)) invalidate("news");
      break;
    case "round_started":
      state.rounds.roundStarted(msg);
      invalidate("leaderboard");
      break;
    case "leaderboard":
      if (state.rounds.leaderboard(msg)) invalidate("leaderboard");
      break;
    default:
      break; // heartbeat, pong, unsubscribed...
  }
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/`);
  state.ws = ws;
  ws.onopen = () => {
    state.connected = true;
    state.backoff = BACKOFF_MIN_MS;
    state.lastMessageAt = Date.now();
    state.subscribedSymbol = null; // a new connection holds no subscriptions
    state.rounds.reconnected();
    state.statuses.reconnected();
    send({ type: "subscribe", channels: ["instruments", "liquidations"], req_id: "base" });
    for (const channel of EXTRA_CHANNELS) {
      send({ type: "subscribe", channels: [channel], req_id: `extra-${channel}` });
    }
    subscribeAccounts();
    invalidate("connection");
  };
  ws.onmessage = (event) => {
    state.lastMessageAt = Date.now();
    const parsed = JSON.parse(event.data);
    if (Array.isArray(parsed)) parsed.forEach(onMessage);
    else onMessage(parsed);
  };
  ws.onclose = () => {
    if (state.ws !== ws) return;
    state.ws = null;
    state.connected = false;
    invalidate("connection");
    setTimeout(connect, state.backoff);
    state.backoff = Math.min(state.backoff * 2, BACKOFF_MAX_MS);
  };
  ws.onerror = () => ws.close();
}

// A connection that went silent (no heartbeat) is dead even if the socket has not said so.
setInterval(() => {
  if (state.ws && state.connected && Date.now() - state.lastMessageAt > SILENCE_MS) {
    state.ws.close();
  }
}, 1000);

// ------------------------------------------------------------------ controls

$("symbol").addEventListener("change", (event) => selectSymbol(event.target.value));
$("interval").addEventListener("change", (event) => {
  state.interval = Number(event.target.value);
  invalidate("trades");
});
$("token").value = state.token;
$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const token = $("token").value.trim();
  if (state.token && state.token !== token) send({ type: "unsubscribe", channels: ["accounts"] });
  state.token = token;
  state.tokenState = "";
  state.accounts.clear();
  const url = new URL(location.href);
  if (token) url.searchParams.set("token", token);
  else url.searchParams.delete("token");
  history.replaceState(null, "", url);
  subscribeAccounts();
  invalidate("accounts", "leaderboard");
});
window.addEventListener("resize", () => invalidate("book", "trades", "accounts"));

invalidate("connection", "book", "bbo", "trades", "accounts", "status", "news", "leaderboard");
connect();
