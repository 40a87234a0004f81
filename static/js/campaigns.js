// The campaign editor's small behaviours (templates/campaigns/), driven by data attributes
// under the Content-Security-Policy (no inline script):
//
//   <textarea data-sms-count="#out">        counts characters and SMS segments as one types:
//                                            GSM-7 (160 in one segment, 153 each when
//                                            longer; ^{}\[~]|€ take two), UCS-2 as soon as
//                                            one character is outside it (70, 67): the rule
//                                            of channels/sms.py, which the preview applies
//                                            to the message rendered for a person
//   <input data-filter-rows="selector">      hides the rows (selector) whose
//                                            data-filter-text does not contain what is typed
//   <button data-preview-width="mobile"      lays the preview frame out at a phone's width
//           data-preview-frame="#frame">     (375 px) or a desktop mail client's (700 px),
//                                            scaled down to fit its box (.preview-frame)
//   <form data-dirty-note="#note">           says "Unsaved changes" in #note once edited
//
// The listeners sit on the document, so content htmx swaps in behaves the same.
(function () {
  "use strict";

  var GSM_BASIC = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
  var GSM_EXTENSION = "^{}\\[~]|€\f";

  function smsSize(body) {
    var gsm = true, septets = 0;
    for (var i = 0; i < body.length; i++) {
      var c = body.charAt(i);
      if (GSM_BASIC.indexOf(c) >= 0) septets += 1;
      else if (GSM_EXTENSION.indexOf(c) >= 0) septets += 2;
      else { gsm = false; break; }
    }
    var units = gsm ? septets : body.length; // UTF-16 code units: an emoji takes two
    var single = gsm ? 160 : 70, multi = gsm ? 153 : 67;
    var segments = units === 0 ? 0 : (units <= single ? 1 : Math.ceil(units / multi));
    return {
      encoding: gsm ? "GSM-7" : "UCS-2", units: units, segments: segments,
      perSegment: units <= single ? single : multi,
    };
  }

  function plural(n, word) { return n + " " + word + (n === 1 ? "" : "s"); }

  function showSmsCount(field) {
    var out = document.querySelector(field.dataset.smsCount);
    if (!out) return;
    var size = smsSize(field.value);
    var text = plural(size.units, "character") + " · " + size.encoding + " · ";
    var segments = plural(size.segments, "segment");
    var room = size.segments ? size.segments * size.perSegment - size.units : size.perSegment;
    out.textContent = "";
    out.append(text);
    var strong = document.createElement("strong");
    strong.textContent = segments;
    if (size.segments > 1) strong.className = "sms-over";
    out.append(strong);
    out.append(" (" + size.perSegment + " per segment; " + room + " left in this one)" +
      (/\{\{|\{%/.test(field.value) ? ". Counted as written: the preview counts it for a person." : "."));
    out.dataset.segments = String(size.segments);
    out.dataset.encoding = size.encoding;
  }

  function filterRows(input) {
    var needle = input.value.trim().toLowerCase();
    document.querySelectorAll(input.dataset.filterRows).forEach(function (row) {
      row.hidden = needle !== "" && (row.dataset.filterText || "").indexOf(needle) < 0;
    });
  }

  document.addEventListener("input", function (event) {
    var field = event.target;
    if (field.dataset && field.dataset.smsCount) showSmsCount(field);
    if (field.dataset && field.dataset.filterRows) filterRows(field);
    var form = field.form;
    if (form && form.dataset.dirtyNote) {
      var note = document.querySelector(form.dataset.dirtyNote);
      if (note) note.textContent = "Unsaved changes";
    }
  });

  // a filter box is no form field to save: keep its change event from the pickers' htmx
  document.addEventListener("change", function (event) {
    if (event.target.dataset && event.target.dataset.filterRows) event.stopPropagation();
  }, true);

  // the width chosen is kept for the page: a preview reloaded after a save keeps it
  var chosenWidth = "desktop";

  function applyWidth(button) {
    var frame = document.querySelector(button.dataset.previewFrame);
    if (!frame) return;
    var mobile = button.dataset.previewWidth === "mobile";
    frame.classList.toggle("preview-mobile", mobile);
    frame.classList.toggle("preview-desktop", !mobile);
    fitFrame(frame);
    button.parentElement.querySelectorAll("[data-preview-width]").forEach(function (b) {
      var on = b === button;
      b.classList.toggle("active", on);
      b.setAttribute("aria-pressed", on ? "true" : "false");
    });
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-preview-width]");
    if (!button) return;
    chosenWidth = button.dataset.previewWidth;
    applyWidth(button);
  });

  // The frame keeps the width its class gives it (the email is laid out as a client of
  // that width would) and is scaled to its box; the box takes the scaled height. CSSOM
  // styles, which the Content-Security-Policy allows (it refuses style attributes).
  function fitFrame(frame) {
    var box = frame.parentElement;
    frame.style.transform = "";
    frame.style.marginLeft = "";
    box.style.height = "";
    var room = box.clientWidth - 16; // the box's padding
    var width = frame.offsetWidth, height = frame.offsetHeight;
    if (!width || room <= 0) return;
    var scale = Math.min(1, room / width);
    frame.style.transform = "scale(" + scale + ")";
    frame.style.marginLeft = Math.max(0, (room - width * scale) / 2) + "px";
    box.style.height = (height * scale + 16) + "px";
  }

  function fitFrames(root) {
    root.querySelectorAll(".preview-frame").forEach(fitFrame);
  }

  window.addEventListener("resize", function () { fitFrames(document); });

  function setUp(root) {
    root.querySelectorAll("[data-sms-count]").forEach(showSmsCount);
    root.querySelectorAll('[data-preview-width="' + chosenWidth + '"]').forEach(applyWidth);
    fitFrames(root);
  }

  if (window.htmx) {
    htmx.onLoad(setUp);
  } else {
    document.addEventListener("DOMContentLoaded", function () { setUp(document); });
  }
})();
