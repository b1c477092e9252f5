//! The `/ring` page in a real headless browser (Debian's `chromium`, driven over the W3C
//! WebDriver protocol by `chromedriver`) against a real 3-ingester ring in a real etcd,
//! all started by the test on 127.0.0.1.
//!
//! The page lists the three instances and their ownership sums to 100 %; a screenshot is
//! written (path printed); a SIGKILLed ingester turns unhealthy, the operator presses
//! Forget and confirms, and the next page load no longer lists it.
//!
//! Environment:
//! - `RINGKIT_REQUIRE_BROWSER=1` (set by scripts/test.sh): a missing browser fails the
//!   test. Without it, the test is skipped with a loud message.
//! - `RINGKIT_CHROMIUM` / `RINGKIT_CHROMEDRIVER`: binaries to use (default
//!   `/usr/bin/chromium`, `/usr/bin/chromedriver`).

mod common;

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::{Node, NodeOpts, all_active, ids, wait_for};
use ringkit_kv::testsuite::{EtcdServer, skip_etcd};
use ringkit_testkit::{port, require};
use serde_json::{Value, json};

/// W3C WebDriver's key for element references.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
const WAIT: Duration = Duration::from_secs(30);

fn binary(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var).map_or_else(|| PathBuf::from(default), PathBuf::from)
}

/// A chromedriver child (in its own process group, so the browsers it starts go with it)
/// and one browser session.
struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start(chromium: &Path, chromedriver: &Path) -> Browser {
        let port = port::free();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromedriver.display()));
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let deadline = Instant::now() + WAIT;
        loop {
            let ready = http.get(format!("{base}/status")).send().await;
            if let Ok(r) = ready
                && let Ok(v) = r.json::<Value>().await
                && v["value"]["ready"] == true
            {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::Builder::new()
            .prefix("ringkit-chromium-")
            .tempdir()
            .unwrap();
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--window-size=1360,1000",
        ]
        .map(String::from)
        .into_iter()
        .chain([format!("--user-data-dir={}", profile.path().display())])
        .collect::<Vec<_>>();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args},
        }}});
        let mut browser = Browser {
            driver,
            base,
            session: String::new(),
            http,
            _profile: profile,
        };
        let v = browser.call("POST", "/session", Some(caps)).await;
        browser.session = v["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_owned();
        browser
    }

    /// One WebDriver command; returns its `value`, failing on a WebDriver error.
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = if self.session.is_empty() {
            format!("{}{path}", self.base)
        } else {
            format!("{}/session/{}{path}", self.base, self.session)
        };
        let req = match method {
            "GET" => self.http.get(&url),
            "DELETE" => self.http.delete(&url),
            _ => self
                .http
                .post(&url)
                .json(&body.unwrap_or_else(|| json!({}))),
        };
        let resp = tokio::time::timeout(WAIT, req.send())
            .await
            .unwrap_or_else(|_| panic!("WebDriver {method} {path}: no answer"))
            .unwrap();
        let v: Value = resp.json().await.unwrap();
        assert!(
            v["value"]["error"].is_null(),
            "WebDriver {method} {path}: {}",
            v["value"]
        );
        v["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url }))).await;
    }

    /// Elements matching a CSS selector (under `within` if given).
    async fn find_all(&self, css: &str, within: Option<&str>) -> Vec<String> {
        let path = match within {
            Some(e) => format!("/element/{e}/elements"),
            None => "/elements".to_owned(),
        };
        let v = self
            .call(
                "POST",
                &path,
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| {
                e[ELEMENT]
                    .as_str()
                    .unwrap_or_else(|| panic!("element reference {e}"))
                    .to_owned()
            })
            .collect()
    }

    async fn find(&self, css: &str, within: Option<&str>) -> String {
        let found = self.find_all(css, within).await;
        assert_eq!(found.len(), 1, "expected one {css}, found {}", found.len());
        found.into_iter().next().unwrap()
    }

    async fn text(&self, element: &str) -> String {
        let v = self
            .call("GET", &format!("/element/{element}/text"), None)
            .await;
        v.as_str().unwrap_or_default().to_owned()
    }

    async fn attribute(&self, element: &str, name: &str) -> String {
        let v = self
            .call("GET", &format!("/element/{element}/attribute/{name}"), None)
            .await;
        v.as_str().unwrap_or_default().to_owned()
    }

    /// Waits (bounded) until the page's `<h1>` reads `expected`. Read by a script in the
    /// page, so a navigation in progress cannot leave us holding a stale element.
    async fn wait_for_heading(&self, expected: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let v = self
                .call(
                    "POST",
                    "/execute/sync",
                    Some(json!({
                        "script": "const h = document.querySelector('h1'); return h ? h.textContent : null;",
                        "args": [],
                    })),
                )
                .await;
            if v.as_str() == Some(expected) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "page heading is {v}, want {expected:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn click(&self, element: &str) {
        self.call("POST", &format!("/element/{element}/click"), None)
            .await;
    }

    async fn screenshot(&self, path: &Path) {
        let v = self.call("GET", "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
        eprintln!("screenshot of /ring written to {}", path.display());
    }

    /// `(instance id, ownership %)` of every row of the instances table.
    async fn ring_rows(&self) -> Vec<(String, f64)> {
        let mut rows = Vec::new();
        for row in self.find_all("#instances tbody tr", None).await {
            let id = self.attribute(&row, "data-instance").await;
            let cell = self.find("td[data-col=ownership]", Some(&row)).await;
            let text = self.text(&cell).await;
            let pct: f64 = text
                .trim()
                .trim_end_matches('%')
                .parse()
                .unwrap_or_else(|e| panic!("ownership cell {text:?} of {id}: {e}"));
            rows.push((id, pct));
        }
        rows
    }

    async fn quit(mut self) {
        self.call("DELETE", "", None).await;
        self.session.clear();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The driver leads its own process group; the browsers it started are in it.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.driver.id())])
            .status();
        let _ = self.driver.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ring_page_in_a_browser_lists_the_ring_and_forgets_a_dead_ingester() {
    let required = require::required("RINGKIT_REQUIRE_BROWSER");
    let chromium = binary("RINGKIT_CHROMIUM", "/usr/bin/chromium");
    let chromedriver = binary("RINGKIT_CHROMEDRIVER", "/usr/bin/chromedriver");
    if !chromium.exists() || !chromedriver.exists() {
        let msg = format!(
            "browser test needs {} and {} (Debian: apt-get install -y chromium chromium-driver)",
            chromium.display(),
            chromedriver.display()
        );
        assert!(!required, "RINGKIT_REQUIRE_BROWSER=1: {msg}");
        eprintln!("\n!!!!!!!! SKIPPING the browser test: {msg} !!!!!!!!\n");
        return;
    }
    if skip_etcd() {
        assert!(
            !required,
            "RINGKIT_REQUIRE_BROWSER=1 but RINGKIT_SKIP_ETCD=1"
        );
        eprintln!("RINGKIT_SKIP_ETCD is set: skipping");
        return;
    }
    let etcd = EtcdServer::start().expect("etcd starts (install etcd-server)");
    let endpoint = etcd.endpoint();
    // Auto-forget off: only the Forget button can remove the dead ingester.
    let opts = NodeOpts {
        auto_forget_periods: 0,
        ..NodeOpts::default()
    };
    let n1 = Node::start("ingester-1", &endpoint, &opts);
    let _n2 = Node::start("ingester-2", &endpoint, &opts);
    let mut n3 = Node::start("ingester-3", &endpoint, &opts);
    wait_for(&n1.url, "3 ACTIVE instances", |r| all_active(r, 3, 64)).await;

    let browser = Browser::start(&chromium, &chromedriver).await;
    let page = format!("{}/ring", n1.url);
    browser.goto(&page).await;
    let rows = browser.ring_rows().await;
    let mut listed: Vec<&str> = rows.iter().map(|(id, _)| id.as_str()).collect();
    listed.sort();
    assert_eq!(listed, ["ingester-1", "ingester-2", "ingester-3"]);
    let total: f64 = rows.iter().map(|(_, p)| p).sum();
    // Each cell is rounded to 0.001 %.
    assert!(
        (total - 100.0).abs() < 0.01,
        "ownership sums to {total}: {rows:?}"
    );
    assert!(rows.iter().all(|(_, p)| *p > 0.0), "{rows:?}");
    assert!(
        browser.find_all("#instances button", None).await.is_empty(),
        "no Forget button while all are healthy"
    );
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-test");
    browser.screenshot(&shots.join("ring.png")).await;

    // Crash ingester-3: it stays in the ring, unhealthy, until someone forgets it.
    n3.kill();
    wait_for(&n1.url, "ingester-3 unhealthy", |r| {
        r["shards"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["id"] == "ingester-3" && s["state"] == "UNHEALTHY")
    })
    .await;
    browser.goto(&page).await;
    let row = browser.find("tr[data-instance=\"ingester-3\"]", None).await;
    assert!(browser.text(&row).await.contains("UNHEALTHY"));
    browser.screenshot(&shots.join("ring-unhealthy.png")).await;
    let forget = browser.find("button", Some(&row)).await;
    browser.click(&forget).await;

    // The confirmation step: its own page, nothing removed yet.
    browser
        .wait_for_heading("Forget instance ingester-3?")
        .await;
    assert_eq!(ids(&common::ring(&n1.url).await).len(), 3);
    let confirm = browser.find("#confirm-forget", None).await;
    browser.click(&confirm).await;
    // The POST lands (and redirects) before we load the page again.
    wait_for(&n1.url, "ingester-3 forgotten", |r| ids(r).len() == 2).await;

    // Post/redirect/get lands on /ring; the next load no longer lists ingester-3.
    browser.goto(&page).await;
    let rows = browser.ring_rows().await;
    let mut listed: Vec<&str> = rows.iter().map(|(id, _)| id.as_str()).collect();
    listed.sort();
    assert_eq!(listed, ["ingester-1", "ingester-2"]);
    let total: f64 = rows.iter().map(|(_, p)| p).sum();
    assert!(
        (total - 100.0).abs() < 0.01,
        "ownership sums to {total}: {rows:?}"
    );
    browser
        .screenshot(&shots.join("ring-after-forget.png"))
        .await;
    browser.quit().await;
    drop(etcd);
}
