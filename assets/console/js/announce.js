// The page's one live region (#announcer, polite): short messages about what changed. What one
// update changes (a stream message, an answer) is gathered into one message, so a screen reader
// says it once; the grid and lists themselves are never live regions.
const ANNOUNCE_KEEP = 5;
let pendingNews = [];

function announce(text) {
  if (!text) return;
  if (pendingNews.length === 0) setTimeout(flushNews, 0);
  if (!pendingNews.includes(text)) pendingNews.push(text);
}

function flushNews() {
  const region = $("announcer");
  region.append(el("p", "", pendingNews.join(" ")));
  pendingNews = [];
  while (region.children.length > ANNOUNCE_KEEP) region.firstElementChild.remove();
}
