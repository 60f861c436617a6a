//! Real headless Chromium (Debian's chromium and chromium-driver) driven over WebDriver, with
//! the few moves the console tests make: wait for a condition, click, type, press keys.

use super::stack::free_port;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// How long a condition on the page may take.
const LIMIT: Duration = Duration::from_secs(10);

/// WebDriver key codes.
pub const ENTER: &str = "\u{E007}";
pub const TAB: &str = "\u{E004}";
pub const ESCAPE: &str = "\u{E00C}";

/// A browser session; its chromedriver and Chromium go when it is dropped.
pub struct Browser {
    pub client: Client,
    _driver: Driver,
    _profile: tempfile::TempDir,
}

/// chromedriver in a process group of its own.
struct Driver(tokio::process::Child);

/// A test that fails never closes its session; killing chromedriver alone would leave its
/// Chromium behind, so the whole group goes.
impl Drop for Driver {
    fn drop(&mut self) {
        if let Some(pid) = self.0.id() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .status();
        }
    }
}

impl Browser {
    /// Starts chromedriver and a session, and opens `url`.
    pub async fn open(url: &str) -> Browser {
        let port = free_port();
        let driver = tokio::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("chromedriver is required (Debian package chromium-driver; scripts/test.sh installs it): {e}"));
        let profile = tempfile::tempdir().unwrap();
        let client = session(port, &profile).await;
        client.goto(url).await.unwrap();
        Browser {
            client,
            _driver: Driver(driver),
            _profile: profile,
        }
    }

    /// Polls a JavaScript expression until it is true; bounded, showing the page's text.
    pub async fn wait_js(&self, what: &str, expr: &str) {
        let start = Instant::now();
        loop {
            if self.js(&format!("!!({expr})")).await == json!(true) {
                return;
            }
            if start.elapsed() > LIMIT {
                let body = self.js("document.body.innerText").await;
                panic!(
                    "timed out waiting for {what} ({expr}); page text:\n{}",
                    body.as_str().unwrap_or("")
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The value of a JavaScript expression.
    pub async fn js(&self, expr: &str) -> Value {
        self.client
            .execute(&format!("return ({expr});"), vec![])
            .await
            .unwrap()
    }

    pub async fn click(&self, id: &str) {
        self.client
            .find(Locator::Id(id))
            .await
            .unwrap_or_else(|e| panic!("no #{id}: {e}"))
            .click()
            .await
            .unwrap();
    }

    pub async fn type_into(&self, id: &str, text: &str) {
        self.client
            .find(Locator::Id(id))
            .await
            .unwrap_or_else(|e| panic!("no #{id}: {e}"))
            .send_keys(text)
            .await
            .unwrap();
    }

    /// Sends keys (text or the key codes above) to the focused element.
    pub async fn press(&self, keys: &str) {
        self.client
            .active_element()
            .await
            .unwrap()
            .send_keys(keys)
            .await
            .unwrap();
    }

    /// The id of the focused element.
    pub async fn active_id(&self) -> Value {
        self.js("document.activeElement && document.activeElement.id")
            .await
    }

    /// Waits for a dialog to be open (or closed).
    pub async fn wait_dialog(&self, id: &str, open: bool) {
        let expr = format!("document.getElementById('{id}').open === {open}");
        self.wait_js(&format!("#{id} open={open}"), &expr).await;
    }

    pub async fn close(self) {
        self.client.close().await.unwrap();
    }
}

/// A WebDriver session on the chromedriver at `port`, retried (bounded) while it starts.
async fn session(port: u16, profile: &tempfile::TempDir) -> Client {
    let caps = json!({
        "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--disable-dev-shm-usage", "--window-size=1280,900",
                     format!("--user-data-dir={}", profile.path().display())]
        }
    });
    let caps = caps.as_object().unwrap().clone();
    let url = format!("http://127.0.0.1:{port}");
    let start = Instant::now();
    loop {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(caps.clone())
            .connect(&url)
            .await
        {
            Ok(c) => return c,
            Err(e) => {
                assert!(
                    start.elapsed() < Duration::from_secs(20),
                    "chromedriver did not start a session: {e}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
