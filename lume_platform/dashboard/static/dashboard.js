// The dashboard's charts: each page's chart container names its API source; data come only from /api.
"use strict";

const STATE_COLOURS = {
  COMPLETED: "#1a7f37", FAILED: "#cf222e", CRASHED: "#8b0000", CANCELLED: "#8c959f", CANCELLING: "#afb8c1",
  RUNNING: "#0969da", PENDING: "#bf8700", SCHEDULED: "#d4a72c", PAUSED: "#6e7781", UNKNOWN: "#57606a",
};
const PLOT_CONFIG = { displaylogo: false, responsive: true };
const HOUR_MS = 3600 * 1000;

async function getJson(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  const body = await response.json();
  if (!response.ok) {
    throw new Error(body.detail || `${url} answered ${response.status}`);
  }
  return body;
}

function showError(element, message) {
  element.innerHTML = "";
  const text = document.createElement("p");
  text.className = "error-text chart-error";
  text.textContent = message;
  element.appendChild(text);
}

function markDrawn(element, points) {
  // Tests and people read how many points a chart holds without parsing the SVG.
  element.dataset.points = String(points);
  element.dataset.drawn = "true";
}

async function drawRunsPerHour(element) {
  const overview = await getJson(element.dataset.src);
  const states = new Set();
  overview.runs_per_hour.forEach((bucket) => Object.keys(bucket.counts).forEach((s) => states.add(s)));
  let points = 0;
  const traces = [...states].sort().map((state) => {
    const buckets = overview.runs_per_hour.filter((bucket) => bucket.counts[state] > 0);
    points += buckets.length;
    return {
      // Each bar spans most of its hour: from the hour's start, 54 minutes wide.
      type: "bar", name: state, marker: { color: STATE_COLOURS[state] || "#57606a" }, offset: 0, width: HOUR_MS * 0.9,
      x: buckets.map((bucket) => bucket.hour), y: buckets.map((bucket) => bucket.counts[state]),
    };
  });
  const hours = overview.runs_per_hour.map((bucket) => bucket.hour);
  const end = new Date(Date.parse(hours[hours.length - 1]) + HOUR_MS).toISOString();
  const layout = {
    barmode: "stack", margin: { t: 40, r: 20, b: 60, l: 50 }, yaxis: { title: { text: "runs" }, rangemode: "tozero" },
    xaxis: { type: "date", range: [hours[0], end] }, legend: { orientation: "h", x: 0, y: 1.12 },
  };
  await Plotly.newPlot(element, traces, layout, PLOT_CONFIG);
  markDrawn(element, points);
}

async function drawRunDurations(element) {
  const runs = await getJson(element.dataset.src);
  const byFlow = new Map();
  runs.filter((run) => run.duration_seconds !== null).forEach((run) => {
    if (!byFlow.has(run.flow_name)) byFlow.set(run.flow_name, []);
    byFlow.get(run.flow_name).push(run);
  });
  let points = 0;
  const traces = [...byFlow.keys()].sort().map((flow) => {
    const flowRuns = byFlow.get(flow);
    points += flowRuns.length;
    return {
      type: "scatter", mode: "markers", name: flow,
      x: flowRuns.map((run) => run.start_time || run.expected_start_time),
      y: flowRuns.map((run) => run.duration_seconds), text: flowRuns.map((run) => `${run.name} (${run.state_type})`),
      marker: { size: 9, color: flowRuns.map((run) => STATE_COLOURS[run.state_type] || "#57606a"),
                line: { width: 1, color: "#1d2530" } },
    };
  });
  const layout = { margin: { t: 40, r: 20, b: 60, l: 60 }, yaxis: { title: { text: "duration (s)" }, rangemode: "tozero" },
                   xaxis: { type: "date" }, legend: { orientation: "h", x: 0, y: 1.12 } };
  await Plotly.newPlot(element, traces, layout, PLOT_CONFIG);
  markDrawn(element, points);
}

function seriesQuery(controls, x, y) {
  const query = new URLSearchParams({ flow: controls.dataset.flow, x, y });
  ["since", "until", "filter"].forEach((key) => { if (controls.dataset[key]) query.set(key, controls.dataset[key]); });
  return `/api/results/series?${query}`;
}

async function drawSeries(controls) {
  const chart = document.getElementById("result-series-chart");
  const x = document.getElementById("plot-x").value;
  const y = document.getElementById("plot-y").value;
  if (!y) {
    showError(chart, "the results of this flow have no numeric fields to plot");
    markDrawn(chart, 0);
    return;
  }
  const series = await getJson(seriesQuery(controls, x, y));
  const trace = {
    type: "scatter", mode: x === "created" ? "lines+markers" : "markers", name: y,
    x: series.points.map((p) => p.x), y: series.points.map((p) => p.y),
    customdata: series.points.map((p) => p.unique_hash), marker: { size: 9, color: "#1f4e79" },
  };
  const layout = { margin: { t: 20, r: 20, b: 50, l: 70 }, xaxis: { title: { text: x }, type: x === "created" ? "date" : "linear" },
                   yaxis: { title: { text: y } } };
  chart.innerHTML = "";
  await Plotly.newPlot(chart, [trace], layout, PLOT_CONFIG);
  chart.on("plotly_click", (event) => { window.location.href = `/results/${event.points[0].customdata}`; });
  document.getElementById("plot-note").textContent =
    series.skipped ? `${series.skipped} results lack a number at ${x} or ${y}` : "";
  markDrawn(chart, series.points.length);
}

function fillSelect(select, values, chosen) {
  values.forEach((value) => {
    const option = document.createElement("option");
    option.value = value;
    option.textContent = value;
    option.selected = value === chosen;
    select.appendChild(option);
  });
}

async function setUpSeries(controls) {
  const fields = await getJson(`/api/results/fields?flow=${encodeURIComponent(controls.dataset.flow)}`);
  const ySelect = document.getElementById("plot-y");
  const xSelect = document.getElementById("plot-x");
  const outputs = fields.numeric_fields.filter((f) => f.startsWith("outputs."));
  const yChoices = outputs.length ? outputs : fields.numeric_fields;
  fillSelect(ySelect, yChoices, controls.dataset.y || yChoices[0]);
  fillSelect(xSelect, fields.numeric_fields, controls.dataset.x);
  const redraw = () => drawSeries(controls).catch((error) =>
    showError(document.getElementById("result-series-chart"), error.message));
  ySelect.addEventListener("change", redraw);
  xSelect.addEventListener("change", redraw);
  await drawSeries(controls);
}

function drawPage() {
  const charts = [
    ["runs-per-hour-chart", drawRunsPerHour],
    ["run-durations-chart", drawRunDurations],
  ];
  charts.forEach(([id, draw]) => {
    const element = document.getElementById(id);
    if (element) draw(element).catch((error) => showError(element, error.message));
  });
  const controls = document.getElementById("plot-controls");
  if (controls) {
    setUpSeries(controls).catch((error) => showError(document.getElementById("result-series-chart"), error.message));
  }
}

// Deferred scripts normally run before DOMContentLoaded, but not always (e.g. when served from cache).
if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", drawPage);
} else {
  drawPage();
}
