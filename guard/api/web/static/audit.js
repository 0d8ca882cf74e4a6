// The reviewer page: filters -> table -> drill-down, and two canvas charts. Data is only ever inserted with
// textContent (never innerHTML), and the session cookie (HttpOnly) authenticates every fetch.
"use strict";

const COLORS = { allow: "#3b7d3b", redact: "#2f6db5", flag: "#c98a12", block: "#b53030" };
const DECISIONS = ["allow", "redact", "flag", "block"];
let nextCursor = null;
let selectedRow = null;

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function query(extra) {
  const params = new URLSearchParams();
  for (const [name, value] of new FormData(document.getElementById("filters"))) {
    if (!value) continue;
    // datetime-local is the browser's local time; the API takes ISO 8601 with a zone.
    params.set(name, name === "since" || name === "until" ? new Date(value).toISOString() : value);
  }
  for (const [name, value] of Object.entries(extra || {})) params.set(name, value);
  return params.toString();
}

async function getJson(path) {
  const response = await fetch(path, { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (response.status === 401) {
    window.location.assign("/audit"); // the session ended: back to the sign-in form
    throw new Error("signed out");
  }
  if (!response.ok) {
    let message = "HTTP " + response.status;
    try { message = (await response.json()).error.message; } catch (_) { /* not an error body */ }
    throw new Error(message);
  }
  return response.json();
}

function status(text) { document.getElementById("status").textContent = text; }

function findingsSummary(findings) {
  const seen = new Set((findings || []).map((f) => f.check + ":" + f.type));
  return seen.size ? Array.from(seen).join(", ") : "—";
}

function addRows(items) {
  const body = document.querySelector("#decisions tbody");
  for (const item of items) {
    const row = el("tr");
    row.tabIndex = 0;
    row.dataset.id = item.decision_id;
    row.dataset.decision = item.decision;
    row.append(
      el("td", item.created_at.replace("T", " ").slice(0, 19)),
      el("td", item.route),
      el("td", item.decision, "decision decision-" + item.decision),
      el("td", item.policy_name ? item.policy_name + "@" + (item.policy_version || "?") : "—"),
      el("td", findingsSummary(item.findings)),
    );
    row.addEventListener("click", () => openDecision(row));
    row.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") { event.preventDefault(); openDecision(row); }
    });
    body.append(row);
  }
}

async function loadDecisions(append) {
  const extra = { limit: "50" };
  if (append && nextCursor) extra.cursor = nextCursor;
  const page = await getJson("/audit/api/decisions?" + query(extra));
  if (!append) document.querySelector("#decisions tbody").replaceChildren();
  addRows(page.items);
  nextCursor = page.next_cursor;
  document.getElementById("more").hidden = !nextCursor;
  const shown = document.querySelectorAll("#decisions tbody tr").length;
  status(shown + " decision" + (shown === 1 ? "" : "s") + " shown" + (nextCursor ? " (more available)" : ""));
}

function fmt(value) { return value === null || value === undefined ? "—" : typeof value === "number" ? value.toFixed(3) : value; }

async function openDecision(row) {
  if (selectedRow) selectedRow.removeAttribute("aria-selected");
  selectedRow = row;
  row.setAttribute("aria-selected", "true");
  const record = await getJson("/audit/api/decisions/" + encodeURIComponent(row.dataset.id));
  const panel = document.getElementById("detail");
  document.getElementById("detail-title").textContent = "Decision " + record.decision_id;
  const meta = document.getElementById("detail-meta");
  meta.replaceChildren();
  const facts = [
    ["Time", record.created_at], ["Route", record.route], ["Decision", record.decision],
    ["Outcome", record.outcome + " (HTTP " + record.http_status + ")"],
    ["Policy", record.policy_name ? record.policy_name + "@" + record.policy_version : "—"],
    ["Policy stored", record.policy_found ? "yes (thresholds from the policy)" : "no (thresholds as recorded)"],
    ["Key", record.key_id || "—"], ["Tenant", record.tenant || "—"],
  ];
  for (const [name, value] of facts) meta.append(el("dt", name), el("dd", value));
  const body = document.querySelector("#explanation tbody");
  body.replaceChildren();
  if (!record.explanation.length) {
    const cell = el("td", "No findings: nothing in the policy matched.");
    cell.colSpan = 8;
    const empty = el("tr");
    empty.append(cell);
    body.append(empty);
  }
  for (const item of record.explanation) {
    const tr = el("tr");
    tr.append(
      el("td", item.check), el("td", item.type),
      el("td", item.clause + (item.policy_clause ? " — " + item.policy_clause : "")),
      el("td", fmt(item.rule)), el("td", fmt(item.score)),
      el("td", fmt(item.threshold) + (item.threshold === null ? "" : " (" + item.threshold_source + ")")),
      el("td", item.action), el("td", fmt(item.redacted_span), "span"),
    );
    body.append(tr);
  }
  const texts = (record.input_redacted || []).map((m) => (m.role ? m.role + ": " : "") + (m.content || ""));
  if (record.output_redacted) texts.push("output: " + record.output_redacted);
  document.getElementById("detail-text").textContent = texts.join("\n") || "(no stored text)";
  panel.hidden = false;
  panel.scrollIntoView({ block: "nearest" });
}

function setupCanvas(canvas) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || canvas.width;
  const height = canvas.clientHeight || canvas.height;
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  ctx.font = "12px system-ui, sans-serif";
  return { ctx, width, height };
}

function axisMax(value) {
  const step = Math.pow(10, Math.floor(Math.log10(Math.max(value, 1))));
  return Math.ceil(value / step) * step;
}

function drawDays(stats) {
  const canvas = document.getElementById("chart-days");
  const { ctx, width, height } = setupCanvas(canvas);
  const days = Array.from(new Set(stats.by_decision.map((c) => c.day))).sort();
  const counts = {};
  for (const c of stats.by_decision) (counts[c.day] = counts[c.day] || {})[c.decision] = c.count;
  const totals = days.map((d) => DECISIONS.reduce((sum, k) => sum + (counts[d][k] || 0), 0));
  const top = axisMax(Math.max(0, ...totals));
  const left = 40, bottom = height - 24, plot = bottom - 10;
  ctx.strokeStyle = "#888";
  ctx.fillStyle = "#333";
  ctx.beginPath(); ctx.moveTo(left, 10); ctx.lineTo(left, bottom); ctx.lineTo(width - 8, bottom); ctx.stroke();
  ctx.textAlign = "right";
  ctx.fillText(String(top), left - 4, 14);
  ctx.fillText("0", left - 4, bottom);
  if (!days.length) { ctx.textAlign = "left"; ctx.fillText("no decisions", left + 8, bottom - 8); }
  const slot = (width - left - 16) / Math.max(days.length, 1);
  const bar = Math.min(48, slot * 0.7);
  days.forEach((day, i) => {
    let y = bottom;
    const x = left + 8 + i * slot + (slot - bar) / 2;
    for (const decision of DECISIONS) {
      const h = ((counts[day][decision] || 0) / top) * plot;
      ctx.fillStyle = COLORS[decision];
      ctx.fillRect(x, y - h, bar, h);
      y -= h;
    }
    ctx.fillStyle = "#333";
    ctx.textAlign = "center";
    ctx.fillText(day.slice(5), x + bar / 2, bottom + 14);
  });
  canvas.setAttribute("aria-label", "Decisions per day: " + days.map((d, i) =>
    d + " " + DECISIONS.filter((k) => counts[d][k]).map((k) => k + " " + counts[d][k]).join(", ") +
    " (total " + totals[i] + ")").join("; "));
  const legend = document.getElementById("legend-days");
  legend.replaceChildren();
  for (const decision of DECISIONS) {
    const swatch = el("span", "", "swatch");
    swatch.style.backgroundColor = COLORS[decision]; // CSSOM, allowed by the CSP (no inline style attribute)
    legend.append(swatch, el("span", decision + " "));
  }
}

function drawCategories(stats) {
  const canvas = document.getElementById("chart-categories");
  const { ctx, width, height } = setupCanvas(canvas);
  const totals = {};
  for (const c of stats.by_category) totals[c.category] = (totals[c.category] || 0) + c.count;
  const rows = Object.entries(totals).sort((a, b) => b[1] - a[1]).slice(0, 8);
  const top = axisMax(Math.max(0, ...rows.map((r) => r[1])));
  const left = 170, rowHeight = Math.min(26, (height - 10) / Math.max(rows.length, 1));
  ctx.fillStyle = "#333";
  if (!rows.length) ctx.fillText("no findings", 8, 20);
  rows.forEach(([category, count], i) => {
    const y = 6 + i * rowHeight;
    const w = (count / top) * (width - left - 40);
    ctx.fillStyle = "#5a4fa0";
    ctx.fillRect(left, y, w, rowHeight - 6);
    ctx.fillStyle = "#333";
    ctx.textAlign = "right";
    ctx.fillText(category.length > 26 ? category.slice(0, 25) + "…" : category, left - 6, y + rowHeight / 2);
    ctx.textAlign = "left";
    ctx.fillText(String(count), left + w + 4, y + rowHeight / 2);
  });
  canvas.setAttribute("aria-label", "Decisions by category: " + rows.map((r) => r[0] + " " + r[1]).join(", "));
}

async function loadStats() {
  const stats = await getJson("/audit/api/stats?" + query());
  drawDays(stats);
  drawCategories(stats);
  document.querySelector(".charts").dataset.rendered = "true";
}

async function refresh() {
  status("Loading…");
  document.getElementById("detail").hidden = true;
  try {
    await Promise.all([loadDecisions(false), loadStats()]);
  } catch (error) {
    status("Could not load: " + error.message);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("filters").addEventListener("submit", (event) => { event.preventDefault(); refresh(); });
  document.getElementById("more").addEventListener("click", () =>
    loadDecisions(true).catch((error) => status("Could not load: " + error.message)));
  refresh();
});
