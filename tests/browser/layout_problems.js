// What a person sees wrong on a page (tests/browser/test_layout.py): one line per problem,
// naming the element (its tag, id and words) so that a failure says what to fix.
() => {
  const problems = [];
  const name = (el) => `${el.tagName.toLowerCase()}${el.id ? "#" + el.id : ""}`
    + ` "${(el.innerText || el.value || el.getAttribute("aria-label") || "").trim().slice(0, 40)}"`;
  const root = document.documentElement;
  if (root.scrollWidth > root.clientWidth + 1)
    problems.push(`the page scrolls sideways (${root.scrollWidth}px wide in ${root.clientWidth}px)`);
  const shown = (el) => {
    if (el.closest(".modal, [hidden], .collapse:not(.show)")) return false;
    const r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0;
  };
  for (const el of document.querySelectorAll("main .btn, main .form-control, main .form-select, main .badge")) {
    if (!shown(el) || el.closest(".table-responsive")) continue;
    const card = el.closest(".card");
    if (card) {
      const r = el.getBoundingClientRect(), c = card.getBoundingClientRect();
      if (r.right > c.right + 1 || r.left < c.left - 1) problems.push(`${name(el)} sticks out of its card`);
    }
    if (el.matches(".btn") && el.scrollWidth > el.clientWidth + 1) problems.push(`${name(el)}: its words are cut`);
  }
  const ctx = document.createElement("canvas").getContext("2d");
  for (const select of document.querySelectorAll("main select")) {
    if (!shown(select) || select.multiple || select.selectedIndex < 0) continue;
    const style = getComputedStyle(select);
    ctx.font = `${style.fontWeight} ${style.fontSize} ${style.fontFamily}`;
    const text = ctx.measureText(select.options[select.selectedIndex].text).width;
    const room = select.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
    if (text > room + 2) problems.push(`${name(select)} cuts its chosen option "${select.options[select.selectedIndex].text}"`);
  }
  return problems;
}
