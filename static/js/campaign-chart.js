// The campaign page's chart of messages sent, delivered and failed over time since the
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
