// Canvas charts: depth, candles with volume, equity curves. Each call redraws the whole
// canvas at its CSS size times devicePixelRatio.

const COLORS = { bid: "#26a269", ask: "#e5534b", grid: "#28313b", text: "#7d8794", up: "#26a269", down: "#e5534b" };
const PALETTE = ["#4c8dff", "#f5a623", "#26a269", "#e5534b", "#b37feb", "#36cfc9", "#ff85c0", "#d4b106", "#95de64", "#ffffff"];

function prepare(canvas) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 300;
  const height = canvas.clientHeight || 150;
  if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  ctx.font = "11px system-ui, sans-serif";
  return { ctx, width, height };
}

function empty(ctx, width, height, text) {
  ctx.fillStyle = COLORS.text;
  ctx.textAlign = "center";
  ctx.fillText(text, width / 2, height / 2);
}

/** Cumulative depth: bids to the left of the mid, asks to the right. */
export function drawDepth(canvas, bids, asks, decimals) {
  const { ctx, width, height } = prepare(canvas);
  if (!bids.length && !asks.length) return empty(ctx, width, height, "empty book");
  const cum = (levels) => {
    let total = 0;
    return levels.map(([p, q]) => [p, (total += q)]);
  };
  const b = cum(bids);
  const a = cum(asks);
  const prices = [...b, ...a].map((l) => l[0]);
  let lo = Math.min(...prices);
  let hi = Math.max(...prices);
  const margin = (hi - lo) * 0.08 || Math.abs(hi) * 0.002 || 1;
  lo -= margin;
  hi += margin;
  const maxQty = Math.max(b.length ? b[b.length - 1][1] : 0, a.length ? a[a.length - 1][1] : 0);
  const pad = 18;
  const x = (p) => ((p - lo) / (hi - lo)) * (width - 2) + 1;
  const y = (q) => height - pad - (q / maxQty) * (height - pad - 6);
  // Each side steps away from the touch and runs on to its edge at its total quantity.
  const side = (levels, color, edge) => {
    if (!levels.length) return;
    ctx.beginPath();
    ctx.moveTo(x(levels[0][0]), y(0));
    let prev = 0;
    for (const [p, q] of levels) {
      ctx.lineTo(x(p), y(prev));
      ctx.lineTo(x(p), y(q));
      prev = q;
    }
    ctx.lineTo(edge, y(prev));
    ctx.lineTo(edge, y(0));
    ctx.closePath();
    ctx.fillStyle = color + "55";
    ctx.strokeStyle = color;
    ctx.fill();
    ctx.stroke();
  };
  side(b, COLORS.bid, 1);
  side(a, COLORS.ask, width - 1);
  ctx.fillStyle = COLORS.text;
  ctx.textAlign = "left";
  ctx.fillText(lo.toFixed(decimals), 2, height - 4);
  ctx.textAlign = "right";
  ctx.fillText(hi.toFixed(decimals), width - 2, height - 4);
  ctx.fillText(String(maxQty), width - 2, 12);
}

/** OHLC candles over a volume histogram (the bottom quarter). */
export function drawCandles(canvas, candles, decimals) {
  const { ctx, width, height } = prepare(canvas);
  if (!candles.length) return empty(ctx, width, height, "no trades yet");
  const axis = 56;
  const plotW = width - axis;
  const volH = height * 0.22;
  const priceH = height - volH - 8;
  const n = Math.max(candles.length, 30);
  const slot = plotW / n;
  const shown = candles.slice(-Math.floor(plotW / Math.max(slot, 3)));
  let lo = Math.min(...shown.map((c) => c.l));
  let hi = Math.max(...shown.map((c) => c.h));
  if (hi === lo) { lo -= lo * 0.001 || 1; hi += hi * 0.001 || 1; }
  const maxV = Math.max(...shown.map((c) => c.v));
  const y = (p) => 4 + (1 - (p - lo) / (hi - lo)) * (priceH - 8);
  ctx.strokeStyle = COLORS.grid;
  ctx.beginPath();
  ctx.moveTo(0, priceH + 2);
  ctx.lineTo(plotW, priceH + 2);
  ctx.stroke();
  shown.forEach((c, i) => {
    const cx = plotW - (shown.length - i - 0.5) * slot;
    const color = c.c >= c.o ? COLORS.up : COLORS.down;
    ctx.strokeStyle = color;
    ctx.fillStyle = color;
    ctx.beginPath();
    ctx.moveTo(cx, y(c.h));
    ctx.lineTo(cx, y(c.l));
    ctx.stroke();
    const bw = Math.max(1, slot * 0.7);
    const top = y(Math.max(c.o, c.c));
    ctx.fillRect(cx - bw / 2, top, bw, Math.max(1, y(Math.min(c.o, c.c)) - top));
    const vh = (c.v / maxV) * (volH - 2);
    ctx.globalAlpha = 0.5;
    ctx.fillRect(cx - bw / 2, height - vh, bw, vh);
    ctx.globalAlpha = 1;
  });
  ctx.fillStyle = COLORS.text;
  ctx.textAlign = "left";
  ctx.fillText(hi.toFixed(decimals), plotW + 4, 12);
  ctx.fillText(lo.toFixed(decimals), plotW + 4, priceH);
  ctx.fillText(`vol ${maxV}`, plotW + 4, height - 4);
}

/** Equity curves of the ``limit`` accounts whose equity moved most, each as its change since
 * it was first seen (accounts start with very different cash: raw equity would draw flat
 * lines, and idle accounts would crowd out the ones trading). */
export function drawCurves(canvas, ranked, curves, limit = 10) {
  const { ctx, width, height } = prepare(canvas);
  const moves = ranked.map((a) => {
    const curve = curves.get(a.account) || [];
    const base = curve.length ? curve[0][1] : 0;
    const change = curve.map(([t, v]) => [t, v - base]);
    const span = Math.max(0, ...change.map((p) => Math.abs(p[1])));
    return [a.account, change, span];
  });
  moves.sort((a, b) => b[2] - a[2]);
  const chosen = moves.slice(0, limit);
  const points = chosen.flatMap(([, c]) => c);
  if (!points.length) return empty(ctx, width, height, "no account updates yet");
  const t0 = Math.min(...points.map((p) => p[0]));
  const t1 = Math.max(...points.map((p) => p[0]), t0 + 1);
  let lo = Math.min(0, ...points.map((p) => p[1]));
  let hi = Math.max(0, ...points.map((p) => p[1]));
  if (hi === lo) { lo -= 1; hi += 1; }
  const legend = 110;
  const x = (t) => ((t - t0) / (t1 - t0)) * (width - legend - 4) + 2;
  const y = (v) => 6 + (1 - (v - lo) / (hi - lo)) * (height - 12);
  ctx.strokeStyle = COLORS.grid;
  ctx.beginPath();
  ctx.moveTo(0, y(0));
  ctx.lineTo(width - legend, y(0));
  ctx.stroke();
  chosen.forEach(([name, curve], i) => {
    const color = PALETTE[i % PALETTE.length];
    ctx.strokeStyle = color;
    ctx.beginPath();
    curve.forEach(([t, v], j) => (j ? ctx.lineTo(x(t), y(v)) : ctx.moveTo(x(t), y(v))));
    if (curve.length === 1) ctx.lineTo(x(t1), y(curve[0][1]));
    ctx.stroke();
    ctx.fillStyle = color;
    ctx.textAlign = "left";
    ctx.fillText(name, width - legend + 4, 12 + i * 13);
  });
  ctx.fillStyle = COLORS.text;
  ctx.fillText(`+${hi.toFixed(2)}`, 2, 12);
  ctx.fillText(lo.toFixed(2), 2, height - 4);
}
