// The campaign page's charts. Messages sent, delivered and failed over time since the
// launch (Chart.js, vendored), from the JSON the page holds (#sends-data:
// selectors.sends_over_time: labels, sent, delivered, failed, bucket_seconds).
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    var canvas = document.getElementById("sends-chart");
    var source = document.getElementById("sends-data");
    if (!canvas || !source || !window.Chart) return;
    var data = JSON.parse(source.textContent);
    var seconds = data.bucket_seconds || 60;
    var labels = data.labels.map(function (iso) {
      var d = new Date(iso);
      var options = { hour: "2-digit", minute: "2-digit" };
      if (seconds < 60) options.second = "2-digit";
      return d.toLocaleTimeString(undefined, options);
    });
    new window.Chart(canvas, {
      type: "bar",
      data: {
        labels: labels,
        datasets: [
          { label: "Sent", data: data.sent, backgroundColor: "#4f46e5" },
          { label: "Delivered", data: data.delivered, backgroundColor: "#16a34a" },
          { label: "Failed", data: data.failed, backgroundColor: "#dc2626" },
        ],
      },
      options: {
        animation: false,
        maintainAspectRatio: false,
        scales: {
          x: { ticks: { maxTicksLimit: 8, autoSkip: true } },
          y: { beginAtZero: true, ticks: { precision: 0 } },
        },
        plugins: {
          tooltip: { callbacks: { title: function (items) {
            return items.length ? "From " + items[0].label + " (" + seconds + " s)" : "";
          } } },
        },
      },
    });
  });
})();

// Opens and clicks over time (#engagement-data: selectors.engagement_over_time: labels,
// bucket_seconds, series [{label, group, kind, data}]): cumulative rates per variant,
// opens solid and clicks dashed, a colour per variant.
(function () {
  "use strict";
  var COLOURS = ["#4f46e5", "#ea580c", "#0891b2", "#16a34a", "#c026d3", "#64748b"];
  document.addEventListener("DOMContentLoaded", function () {
    var canvas = document.getElementById("engagement-chart");
    var source = document.getElementById("engagement-data");
    if (!canvas || !source || !window.Chart) return;
    var data = JSON.parse(source.textContent);
    var seconds = data.bucket_seconds || 60;
    var labels = data.labels.map(function (iso) {
      var d = new Date(iso);
      if (seconds >= 3600) {
        return d.toLocaleString(undefined, { day: "numeric", month: "short", hour: "2-digit" });
      }
      return d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
    });
    var unit = data.unit === "count" ? "" : "%"; // a banner's counts, else rates
    var groups = [];
    data.series.forEach(function (s) { if (groups.indexOf(s.group) < 0) groups.push(s.group); });
    new window.Chart(canvas, {
      type: "line",
      data: {
        labels: labels,
        datasets: data.series.map(function (s) {
          var colour = COLOURS[groups.indexOf(s.group) % COLOURS.length];
          return {
            label: s.label, data: s.data, borderColor: colour, backgroundColor: colour,
            borderDash: s.kind === "click" ? [6, 4] : [], pointRadius: 0, tension: 0.2,
          };
        }),
      },
      options: {
        animation: false,
        maintainAspectRatio: false,
        interaction: { mode: "index", intersect: false },
        scales: {
          x: { ticks: { maxTicksLimit: 8, autoSkip: true } },
          y: { beginAtZero: true, ticks: { callback: function (v) { return v + unit; } } },
        },
        plugins: {
          tooltip: { callbacks: { label: function (item) {
            return item.dataset.label + ": " + item.formattedValue + unit;
          } } },
        },
      },
    });
  });
})();
