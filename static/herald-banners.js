// Herald's in-app banners for customers' pages:
//   <div data-herald-placement="top"></div>
//   <script src=".../static/herald-banners.js" data-key="hpk_..." data-person="crm-1001" defer>
// (data-endpoint defaults to the script's origin), or HeraldBanners.load({key, person,
// endpoint, root}) after sign-in; "herald:banners" fires on document once rendered.
// Requests stay CORS-simple (no preflight); the API's text goes in as text nodes only.
// data-styles="off" (or {styles: false}): no default stylesheet (the page styles
// .herald-banner itself, e.g. under a CSP that refuses inline styles).
(function () {
  "use strict";

  const script = document.currentScript;
  const origin = script && script.src ? new URL(script.src).origin : location.origin;
  const TEXT_PLAIN = "text/plain;charset=UTF-8";
  const CSS = ".herald-banner{position:relative;display:flex;gap:12px;margin:0 0 12px;" +
    "padding:12px 36px 12px 12px;border:1px solid #ccc;border-radius:6px}" +
    ".herald-banner__image{max-width:96px}.herald-banner__title{margin:0 0 4px;font-size:1.1em}" +
    ".herald-banner__close{position:absolute;top:6px;right:6px;border:0;background:none;" +
    "font-size:20px;cursor:pointer}";
  const reported = new Set(); // person + banner id, once per page load
  const observer = window.IntersectionObserver && new IntersectionObserver((entries) => {
    for (const entry of entries) {
      if (entry.isIntersecting) {
        observer.unobserve(entry.target);
        entry.target.heraldSeen();
      }
    }
  }, { threshold: 0.5 });

  const str = (value) => (value == null ? "" : String(value));
  const isWebUrl = (url) => /^https?:\/\//i.test(str(url));

  function el(tag, attrs, content) {
    const node = document.createElement(tag);
    for (const name in attrs) node.setAttribute(name, attrs[name]);
    if (content) node.textContent = content;
    return node;
  }

  // sendBeacon outlives a navigation (a CTA click); keepalive fetch is the fallback.
  function sendEvent(url, token, type) {
    const json = JSON.stringify({ token: token, type: type });
    try {
      const blob = new Blob([json], { type: TEXT_PLAIN });
      if (navigator.sendBeacon && navigator.sendBeacon(url, blob)) return;
      fetch(url, {
        method: "POST", keepalive: true, mode: "cors", credentials: "omit",
        headers: { "Content-Type": TEXT_PLAIN }, body: json,
      }).catch(() => {});
    } catch (e) { /* never break the page */ }
  }

  function renderBanner(config, place, banner) {
    const title = str(banner.title);
    const send = (type) => sendEvent(config.events, str(banner.token), type);
    const aside = el("aside", {
      class: "herald-banner", role: "complementary",
      "aria-label": title || "Announcement", "data-herald-banner": str(banner.id),
    });
    if (isWebUrl(banner.image_url)) {
      const attrs = { class: "herald-banner__image", alt: "", src: banner.image_url, loading: "lazy" };
      aside.appendChild(el("img", attrs));
    }
    const content = aside.appendChild(el("div", { class: "herald-banner__content" }));
    if (title) content.appendChild(el("h2", { class: "herald-banner__title" }, title));
    if (str(banner.body)) {
      const p = content.appendChild(el("p", { class: "herald-banner__body" }));
      str(banner.body).split(/\r?\n/).forEach((line, i) => {
        if (i) p.appendChild(el("br"));
        p.appendChild(document.createTextNode(line));
      });
    }
    if (isWebUrl(banner.cta_url)) {
      const cta = el("a", { class: "herald-banner__cta", href: banner.cta_url, rel: "noopener" },
        str(banner.cta_label) || "Learn more");
      cta.addEventListener("click", () => send("click"));
      content.appendChild(cta);
    }
    if (banner.dismissible) {
      const label = "Dismiss: " + (title || "Announcement");
      const close = el("button", { type: "button", class: "herald-banner__close", "aria-label": label },
        "\u00d7");
      close.addEventListener("click", () => {
        send("dismiss");
        if (observer) observer.unobserve(aside);
        aside.remove();
        // Keep keyboard focus where the banner was.
        if (!place.hasAttribute("tabindex")) place.setAttribute("tabindex", "-1");
        place.focus();
      });
      aside.appendChild(close);
    }
    place.appendChild(aside);

    const seen = config.person + "\n" + str(banner.id);
    aside.heraldSeen = () => {
      if (reported.has(seen)) return;
      reported.add(seen);
      send("impression");
    };
    if (observer) observer.observe(aside);
    else aside.heraldSeen();
  }

  function render(config, places, banners) {
    if (config.styles !== false && !document.querySelector("style[data-herald-banners]")) {
      // A strict CSP may refuse it; the markup works unstyled.
      document.head.appendChild(el("style", { "data-herald-banners": "" }, CSS));
    }
    for (const place of places) {
      place.textContent = "";
      for (const banner of banners) {
        if (str(banner.placement) === place.heraldName) renderBanner(config, place, banner);
      }
    }
    document.dispatchEvent(new CustomEvent("herald:banners", { detail: { banners: banners } }));
  }

  // Resolves to the banners rendered ([] on failure); never rejects.
  async function load(options) {
    const opts = options || {};
    const endpoint = str(opts.endpoint || origin).replace(/\/+$/, "");
    const key = encodeURIComponent(str(opts.key));
    const config = {
      person: str(opts.person), events: endpoint + "/public/v1/banners/events?key=" + key,
      styles: opts.styles !== false,
    };
    try {
      if (!key) throw new Error("no key");
      const places = (opts.root || document).querySelectorAll("[data-herald-placement]");
      const names = [];
      for (const place of places) {
        const name = (place.heraldName = place.getAttribute("data-herald-placement").trim());
        if (name && !names.includes(name) && names.length < 10) names.push(name);
      }
      if (!names.length) return [];
      let url = endpoint + "/public/v1/banners?key=" + key +
        "&placement=" + names.map(encodeURIComponent).join(",");
      if (config.person) url += "&person=" + encodeURIComponent(config.person);
      const response = await fetch(url, { mode: "cors", credentials: "omit" });
      if (response.status !== 200) throw new Error("HTTP " + response.status);
      const data = await response.json();
      const banners = (data && Array.isArray(data.banners) ? data.banners : []).filter(Boolean);
      render(config, places, banners);
      return banners;
    } catch (e) {
      console.warn("Herald banners not shown: " + ((e && e.message) || e));
      return [];
    }
  }

  window.HeraldBanners = { load: load };

  if (script && script.dataset.key) {
    const data = script.dataset;
    const auto = () => load({ key: data.key, person: data.person, endpoint: data.endpoint,
                              styles: data.styles !== "off" });
    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", auto);
    else auto();
  }
})();
