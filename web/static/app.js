/* domainstats dashboard: reads the JSON API, refreshes every few seconds. No framework. */
"use strict";

window.domainstats = (() => {
  const REFRESH_MS = 3000;
  const STEPS = { "15m": "15s", "1h": "1m", "24h": "15m", "7d": "1h" };
  const PALETTE = ["#2f6fdf", "#e0662d", "#2c9f5c", "#b03fb5", "#c9a227"];
  const $ = (selector) => document.querySelector(selector);
  const number = new Intl.NumberFormat();

  function text(tag, content, className) {
    const node = document.createElement(tag);
    node.textContent = content;
    if (className) node.className = className;
    return node;
  }

  async function getJSON(path) {
    const response = await fetch(path, { headers: { Accept: "application/json" } });
    if (!response.ok && response.status >= 500) throw new Error(`HTTP ${response.status}`);
    return response.json();
  }

  /** Run `refresh` now and every REFRESH_MS; show the offline banner while it fails. */
  function every(refresh) {
    const banner = $("#offline");
    const tick = async () => {
      try {
        await refresh();
        banner.hidden = true;
      } catch (error) {
        banner.hidden = false;
      }
      setTimeout(tick, REFRESH_MS);
    };
    tick();
  }

  function showEmpty(node, message) {
    node.hidden = !message;
    node.textContent = message || "";
  }

  // ----- charts -----------------------------------------------------------------------

  let chart = null;
  let chartKey = "";

  function drawChart(container, series, emptyNode, emptyMessage) {
    const withData = series.filter((s) => s.points.some((p) => p.value > 0));
    if (!withData.length) {
      if (chart) { chart.destroy(); chart = null; chartKey = ""; }
      showEmpty(emptyNode, emptyMessage);
      return;
    }
    showEmpty(emptyNode, "");
    const times = series[0].points.map((p) => Date.parse(p.time) / 1000);
    const data = [times, ...series.map((s) => s.points.map((p) => p.value))];
    const key = series.map((s) => s.domain).join(",") + "|" + times.length;
    const width = Math.max(280, container.clientWidth);
    if (chart && key === chartKey) {
      chart.setData(data);
      return;
    }
    if (chart) chart.destroy();
    chartKey = key;
    chart = new uPlot({
      width,
      height: 280,
      series: [{}, ...series.map((s, i) => ({
        label: s.domain, stroke: PALETTE[i % PALETTE.length], width: 2, points: { show: true, size: 4 },
      }))],
      axes: [{ stroke: "currentColor" }, { stroke: "currentColor", size: 70 }],
      cursor: { focus: { prox: 16 } },
      legend: { live: true },
      hooks: { setCursor: [showTooltip] },
    }, data, container);
  }

  /** A tooltip at the point under the cursor: its time and every series' value. */
  function showTooltip(u) {
    let tip = u.root.querySelector(".tooltip");
    if (!tip) {
      tip = text("div", "", "tooltip");
      tip.setAttribute("role", "status");
      u.over.append(tip);
    }
    const { idx, left, top } = u.cursor;
    if (idx == null || left < 0) { tip.hidden = true; return; }
    const when = new Date(u.data[0][idx] * 1000).toISOString().replace(".000Z", "Z");
    const lines = u.series.slice(1).map((s, i) => `${s.label}: ${number.format(u.data[i + 1][idx])}`);
    tip.replaceChildren(text("strong", when), ...lines.map((line) => text("div", line)));
    tip.hidden = false;
    tip.style.left = `${Math.min(left + 12, u.over.clientWidth - tip.offsetWidth)}px`;
    tip.style.top = `${Math.max(0, top - tip.offsetHeight - 8)}px`;
  }

  window.addEventListener("resize", () => {
    const container = $("#chart");
    if (chart && container) chart.setSize({ width: Math.max(280, container.clientWidth), height: 280 });
  });

  // ----- the overview ------------------------------------------------------------------

  function dashboard() {
    let period = "min";
    document.querySelectorAll("[data-period]").forEach((button) => {
      button.addEventListener("click", () => {
        period = button.dataset.period;
        document.querySelectorAll("[data-period]").forEach((b) =>
          b.setAttribute("aria-pressed", String(b === button)));
        refreshTop();
      });
    });
    $("#by").addEventListener("change", () => refreshTop());
    $("#lookback").addEventListener("change", () => { chartKey = ""; refreshChart(); });
    $("#chart-domains").addEventListener("change", () => { chartKey = ""; refreshChart(); });

    async function refreshTop() {
      const by = $("#by").value;
      const body = await getJSON(`/domains/${period}?limit=20&by=${by}`);
      const rows = Object.entries(body.domains);
      const total = rows.reduce((sum, [, v]) => sum + v, 0);
      const max = rows.length ? rows[0][1] : 0;
      const tbody = $("#top tbody");
      tbody.replaceChildren(...rows.map(([name, value]) => {
        const tr = document.createElement("tr");
        const link = text("a", name);
        link.href = `/ui/domains/${encodeURIComponent(name)}`;
        const cell = document.createElement("td");
        cell.append(link);
        const bar = document.createElement("td");
        bar.className = "bar-cell";
        const fill = text("span", "", "bar");
        fill.style.width = `${(100 * value / max).toFixed(1)}%`;
        bar.append(fill);
        tr.append(cell, text("td", number.format(value), "num"),
          text("td", `${(100 * value / total).toFixed(1)} %`, "num"), bar);
        return tr;
      }));
      const label = { min: "minute", hour: "hour", day: "day" }[period];
      showEmpty($("#top-empty"), rows.length ? "" :
        `No ${by === "clicks" ? "clicks" : "traffic"} in the last ${label} — POST /domains to send some.`);
      $("#top-updated").textContent = `Updated ${body.updated_at}`;
    }

    async function refreshChart() {
      const lookback = $("#lookback").value;
      const picked = $("#chart-domains").value.trim();
      const which = picked ? `domains=${encodeURIComponent(picked)}` : "top=5&window=" + lookback;
      const body = await getJSON(`/series?${which}&lookback=${lookback}&step=${STEPS[lookback]}`);
      if (body.status !== "ok") { showEmpty($("#chart-empty"), body.message); return; }
      drawChart($("#chart"), body.series, $("#chart-empty"),
        "Nothing to chart yet — the top five appear here once clicks arrive.");
    }

    async function refreshAlerts() {
      const body = await getJSON("/alerts");
      $("#firing").replaceChildren(...(body.firing.length ? body.firing.map((a) =>
        text("li", `${a.rule}: firing since ${a.at} (value ${number.format(a.value)}, ` +
          `threshold ${number.format(a.threshold)})`, "firing"))
        : [text("li", "No alert is firing.", "muted")]));
      $("#history").replaceChildren(...(body.history.length ? body.history.slice(0, 10).map((e) =>
        text("li", e.message, e.state === "recovered" ? "recovered" : "event"))
        : [text("li", "No alerts yet. Add rules with POST /alerts/rules.", "muted")]));
    }

    async function refreshStats() {
      const stats = await getJSON("/stats");
      $("#request-count").textContent = number.format(stats.requestCount);
      $("#clicks").textContent = number.format(stats.clicks);
      $("#domains").textContent = number.format(stats.domains);
      const sources = await getJSON("/sources");
      $("#sources").replaceChildren(...(sources.sources.length ? sources.sources.map((s) =>
        text("li", `${s.url}: ${s.up === null ? "not scraped yet" : s.up ? "up" : "down"}` +
          (s.last_error ? ` (${s.last_error})` : ""), s.up === false ? "firing" : ""))
        : [text("li", "No scrape targets (start with --scrape URL).", "muted")]));
    }

    every(() => Promise.all([refreshTop(), refreshChart(), refreshAlerts(), refreshStats()]));
  }

  // ----- one domain --------------------------------------------------------------------

  function domain() {
    const name = $("#domain-view").dataset.domain;
    $("#metric").addEventListener("change", () => { chartKey = ""; refreshChart(); });
    $("#lookback").addEventListener("change", () => { chartKey = ""; refreshChart(); });

    async function refreshChart() {
      const lookback = $("#lookback").value;
      const metric = $("#metric").value;
      const body = await getJSON(`/domains/${encodeURIComponent(name)}/series?` +
        `lookback=${lookback}&step=${STEPS[lookback]}&metric=${metric}`);
      drawChart($("#chart"), [{ domain: name, points: body.points || [] }], $("#chart-empty"),
        `No ${metric} for ${name} in this range.`);
    }

    async function refreshStats() {
      const response = await fetch(`/domains/${encodeURIComponent(name)}`);
      if (response.status === 404) {
        showEmpty($("#domain-empty"), `No traffic seen for ${name} yet, and no limits set.`);
        return;
      }
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const body = await response.json();
      showEmpty($("#domain-empty"), "");
      const rows = [
        ["Received (bit/s)", "rx_bitrate", "max_rx_bitrate"],
        ["Sent (bit/s)", "tx_bitrate", "max_tx_bitrate"],
        ["Clicks per second", "clicks_per_s", "max_clicks_per_s"],
      ];
      $("#rates tbody").replaceChildren(...rows.map(([label, rate, limit]) => {
        const tr = document.createElement("tr");
        const over = body.exceeded[rate];
        const peak = body.peaks[rate];
        tr.append(text("td", label), text("td", number.format(body.rates[rate]), "num"),
          text("td", peak === undefined ? "–" : number.format(peak), "num"),
          text("td", body.limits[limit] ? number.format(body.limits[limit]) : "none", "num"),
          text("td", over ? "exceeded" : "ok", over ? "firing" : "ok"));
        return tr;
      }));
      $("#totals tbody").replaceChildren(...Object.entries(body.totals).map(([period, t]) => {
        const tr = document.createElement("tr");
        tr.append(text("td", period), text("td", number.format(t.clicks), "num"),
          text("td", number.format(t.bytes_in), "num"), text("td", number.format(t.bytes_out), "num"));
        return tr;
      }));
    }

    every(() => Promise.all([refreshChart(), refreshStats()]));
  }

  return { dashboard, domain };
})();
