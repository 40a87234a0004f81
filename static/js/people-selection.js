// The People page's selection (templates/people/people_list.html): ticked rows or "all
// matching", the label and the bulk buttons that follow it. The form carries the numbers:
// data-total (people matching), data-exact ("true" unless data-total is an estimate) and
// data-large (from how many people the "large selection" notice shows).
(function () {
  "use strict";

  const form = document.getElementById("bulk-form");
  if (!form) return;
  const total = Number(form.dataset.total);
  const exact = form.dataset.exact === "true";
  const large = Number(form.dataset.large);
  const checks = () => Array.from(form.querySelectorAll(".row-check"));
  const allMatching = document.getElementById("all-matching");
  const label = document.getElementById("selection-label");
  const selectAll = document.getElementById("select-all-matching");
  const selectPage = document.getElementById("select-page");
  const fmt = n => n.toLocaleString("en-US");

  function refresh() {
    const ticked = checks().filter(c => c.checked).length;
    const n = allMatching.value === "1" ? total : ticked;
    label.textContent = allMatching.value === "1"
      ? `All ${exact ? "" : "≈ "}${fmt(total)} matching people selected`
      : (ticked ? `${fmt(ticked)} selected on this page` : "No one selected");
    selectAll.hidden = !(ticked && ticked === checks().length && total > ticked && allMatching.value !== "1");
    for (const id of ["manage-tags-button", "manage-audiences-button", "manage-segments-button", "broadcast-button", "export-button"]) {
      const b = document.getElementById(id); if (b) b.disabled = n === 0;
    }
    const scope = document.getElementById("manage-tags-scope");
    const about = exact || allMatching.value !== "1" ? "" : "about ";
    if (scope) scope.textContent = `Add or remove a tag for ${about}${fmt(n)} people.`;
    document.querySelectorAll(".selection-scope").forEach(el => { el.textContent = `Add or remove ${about}${fmt(n)} people.`; });
    const notice = document.getElementById("large-selection-notice");
    if (notice) notice.hidden = n < large;
  }

  form.addEventListener("change", e => {
    if (e.target.classList.contains("row-check")) { allMatching.value = "0"; refresh(); }
  });
  selectPage.addEventListener("change", () => { checks().forEach(c => c.checked = selectPage.checked); allMatching.value = "0"; refresh(); });
  selectAll.addEventListener("click", () => { allMatching.value = "1"; refresh(); });
  refresh();
})();
