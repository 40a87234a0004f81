// Herald's small page behaviours, driven by data attributes. The Content-Security-Policy
// (settings.SECURE_CSP) runs no inline script or event handler: a template says what it
// wants with an attribute, and this file, loaded by base.html, does it.
//
//   <form data-confirm="Delete it?">        asks before the form is submitted (also on
//                                            the one submit button that sends it)
//   <select data-autosubmit>                 submits its form when it changes
//   <button data-copy="#field">              copies that field's value to the clipboard
//   <div data-show-when="name=value">        hidden while the form's field `name` holds
//                                            another value (shown while nothing is chosen)
//   <input type="file" data-max-bytes="N"    refuses a larger file before the upload, with
//          data-too-large="...">             "The file is X MB; " + data-too-large
//
// The listeners sit on the document, so content htmx swaps in behaves the same.
(function () {
  "use strict";

  document.addEventListener("submit", function (event) {
    const message = (event.submitter && event.submitter.dataset.confirm)
      || event.target.dataset.confirm;
    if (message && !window.confirm(message)) {
      event.preventDefault();
      event.stopImmediatePropagation(); // capturing: htmx, on the form itself, never sees it
    }
  }, true);

  document.addEventListener("change", function (event) {
    const field = event.target;
    if (field.dataset.maxBytes) checkSize(field);
    if (field.form) syncShown(field.form);
    if (field.matches("[data-autosubmit]") && field.form) field.form.requestSubmit();
  });

  document.addEventListener("click", function (event) {
    const button = event.target.closest("[data-copy]");
    if (!button) return;
    const source = document.querySelector(button.dataset.copy);
    if (!navigator.clipboard) { // only on https and localhost: leave it selected to copy
      source.select();
      return;
    }
    navigator.clipboard.writeText(source.value).then(function () {
      button.textContent = "Copied";
    });
  });

  function checkSize(input) {
    if (!input.files || !input.files.length) return;
    const size = input.files[0].size;
    input.setCustomValidity(size > Number(input.dataset.maxBytes)
      ? "The file is " + (size / 1048576).toFixed(1) + " MB; " + input.dataset.tooLarge
      : "");
    input.reportValidity();
  }

  function syncShown(root) {
    root.querySelectorAll("[data-show-when]").forEach(function (element) {
      const rule = element.dataset.showWhen;
      const at = rule.indexOf("=");
      const form = element.closest("form");
      const field = form && form.elements[rule.slice(0, at)];
      const value = field ? field.value : "";
      element.hidden = value !== "" && value !== rule.slice(at + 1);
    });
  }

  if (window.htmx) {
    htmx.onLoad(syncShown); // the page, then every piece of content htmx swaps in
  } else {
    document.addEventListener("DOMContentLoaded", function () { syncShown(document); });
  }
})();
