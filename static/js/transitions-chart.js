// The segment page's chart of people entering and leaving per hour (Chart.js, vendored),
// from the JSON the page holds (#transitions-data: labels, entered, exited).
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    var canvas = document.getElementById("transitions-chart");
    var source = document.getElementById("transitions-data");
    if (!canvas || !source || !window.Chart) return;
    var data = JSON.parse(source.textContent);
    var hours = data.labels.map(function (iso) {
      var d = new Date(iso);
      return d.toLocaleDateString(undefined, { day: "numeric", month: "short" }) + " " +
        d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
    });
    new window.Chart(canvas, {
      type: "bar",
      data: {
        labels: hours,
        datasets: [
          { label: "Entered", data: data.entered, backgroundColor: "#4f46e5" },
          { label: "Exited", data: data.exited.map(function (n) { return -n; }), backgroundColor: "#f59e0b" },
        ],
      },
      options: {
        animation: false,
        maintainAspectRatio: false,
        scales: {
          x: { stacked: true, ticks: { maxTicksLimit: 8, autoSkip: true } },
          y: { stacked: true, ticks: { precision: 0, callback: function (v) { return Math.abs(v); } } },
        },
        plugins: {
          tooltip: { callbacks: { label: function (c) { return c.dataset.label + ": " + Math.abs(c.raw); } } },
        },
      },
    });
  });
})();
