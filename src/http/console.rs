//! The operator console, embedded in the binary: no build step at run time, no CDN.

use axum::http::header;
use axum::response::{IntoResponse, Response};

const INDEX: &str = include_str!("../../assets/console/index.html");
/// The script, one file per concept (assets/console/js/README.md), served as one file inside one
/// function scope so that nothing leaks into the page's globals. Order: what a part calls at load
/// time comes before it; `main.js`, which starts the page, is last.
const APP_JS: &str = concat!(
    "\"use strict\";\n(() => {\n",
    include_str!("../../assets/console/js/util.js"),
    include_str!("../../assets/console/js/announce.js"),
    include_str!("../../assets/console/js/chart.js"),
    include_str!("../../assets/console/js/grid.js"),
    include_str!("../../assets/console/js/automation.js"),
    include_str!("../../assets/console/js/attention.js"),
    include_str!("../../assets/console/js/cooldown.js"),
    include_str!("../../assets/console/js/status.js"),
    include_str!("../../assets/console/js/holds.js"),
    include_str!("../../assets/console/js/history.js"),
    include_str!("../../assets/console/js/dialogs.js"),
    include_str!("../../assets/console/js/stream.js"),
    include_str!("../../assets/console/js/layout.js"),
    include_str!("../../assets/console/js/main.js"),
    "})();\n"
);
const APP_CSS: &str = include_str!("../../assets/console/app.css");
const REVIEWS_JS: &str = include_str!("../../assets/console/reviews.js");

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

pub async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX)
}

pub async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

/// The review controls on the history and the unreviewed count.
pub async fn reviews_js() -> Response {
    asset("text/javascript; charset=utf-8", REVIEWS_JS)
}

pub async fn app_css() -> Response {
    asset("text/css; charset=utf-8", APP_CSS)
}
