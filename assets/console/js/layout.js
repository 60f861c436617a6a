// Whatever is scrolled or focused into view stays clear of the sticky bar, however tall its
// banners make it: the bar's height becomes `scroll-padding-top` through a constructed style
// sheet (no inline style; app.css holds a fixed estimate for browsers without these APIs).
function trackStickyHeight() {
  if (!("ResizeObserver" in window) || !("adoptedStyleSheets" in document)) return;
  const sticky = $("sticky");
  const sheet = new CSSStyleSheet();
  document.adoptedStyleSheets = [...document.adoptedStyleSheets, sheet];
  const apply = () => sheet.replaceSync("html { scroll-padding-top: " + Math.ceil(sticky.getBoundingClientRect().height + 8) + "px; }");
  new ResizeObserver(apply).observe(sticky);
  apply();
}
