// Small SVG charts drawn with DOM APIs (no library): vertical bars over time or buckets, horizontal bars
// for ranked lists, and a sparkline. Labels are text nodes; nothing is parsed as markup.
const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attributes = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

function chart(width, height, label) {
  return svg("svg", { class: "chart", viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label, preserveAspectRatio: "xMidYMid meet" });
}

function niceMax(value) {
  if (value <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * power >= value) return step * power;
  return 10 * power;
}

function short(n) {
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (n >= 1e4) return `${Math.round(n / 1e3)}k`;
  return Number.isInteger(n) ? String(n) : n.toFixed(1);
}

/**
 * Vertical bars: `points` is [{label, value}], in order. Every few labels are shown on the axis; each bar
 * has a <title> with its exact value.
 */
export function columnChart(points, { label, width = 480, height = 220, unit = "" } = {}) {
  const root = chart(width, height, label);
  const left = 40, bottom = 26, top = 10, right = 8;
  const plotW = width - left - right, plotH = height - top - bottom;
  const max = niceMax(Math.max(0, ...points.map((p) => p.value)));
  for (const fraction of [0, 0.5, 1]) {
    const y = top + plotH * (1 - fraction);
    root.append(svg("line", { class: "axis", x1: left, x2: width - right, y1: y, y2: y }));
    root.append(svg("text", { x: left - 6, y: y + 4, "text-anchor": "end" }, short(max * fraction)));
  }
  const step = plotW / Math.max(points.length, 1);
  const barW = Math.max(1, Math.min(40, step * 0.75));
  const labelEvery = Math.max(1, Math.ceil(points.length / 8));
  points.forEach((point, i) => {
    const h = (point.value / max) * plotH;
    const x = left + i * step + (step - barW) / 2;
    const bar = svg("rect", { class: "bar", x, y: top + plotH - h, width: barW, height: Math.max(h, point.value > 0 ? 1 : 0), rx: 2 });
    bar.append(svg("title", {}, `${point.label}: ${point.value}${unit}`));
    root.append(bar);
    if (i % labelEvery === 0) root.append(svg("text", { x: left + i * step + step / 2, y: height - 8, "text-anchor": "middle" }, point.label));
  });
  return root;
}

/** Horizontal bars for a ranked list: [{label, value}], largest first. */
export function barChart(items, { label, width = 480, unit = "" } = {}) {
  const rowH = 26, labelW = 150, valueW = 50;
  const height = Math.max(rowH * items.length + 8, 40);
  const root = chart(width, height, label);
  const max = Math.max(1, ...items.map((item) => item.value));
  const plotW = width - labelW - valueW;
  items.forEach((item, i) => {
    const y = 4 + i * rowH;
    const text = item.label.length > 22 ? item.label.slice(0, 21) + "…" : item.label;
    const name = svg("text", { x: labelW - 8, y: y + 15, "text-anchor": "end" }, text);
    name.append(svg("title", {}, item.label));
    root.append(name);
    const w = Math.max(2, (item.value / max) * plotW);
    const bar = svg("rect", { class: "bar", x: labelW, y: y + 3, width: w, height: rowH - 8, rx: 3 });
    bar.append(svg("title", {}, `${item.label}: ${item.value}${unit}`));
    root.append(bar);
    root.append(svg("text", { class: "value", x: labelW + w + 6, y: y + 15 }, `${short(item.value)}${unit}`));
  });
  return root;
}

/** A line with its area for a series of numbers (the live rate); the last value is marked with a dot. */
export function sparkline(values, { label, width = 300, height = 60 } = {}) {
  const root = chart(width, height, label);
  if (values.length < 2) return root;
  const max = Math.max(1, ...values);
  const step = width / (values.length - 1);
  const points = values.map((v, i) => [i * step, height - 4 - (v / max) * (height - 8)]);
  const path = points.map(([x, y], i) => `${i ? "L" : "M"}${x.toFixed(1)},${y.toFixed(1)}`).join(" ");
  root.append(svg("path", { class: "area", d: `${path} L${width},${height} L0,${height} Z` }));
  root.append(svg("path", { class: "line", d: path }));
  const [lx, ly] = points[points.length - 1];
  root.append(svg("circle", { class: "dot", cx: lx - 2, cy: ly, r: 3 }));
  return root;
}
