//! A real headless Chromium driven over WebDriver: Debian's `chromium` and `chromium-driver`,
//! one chromedriver per test on a free loopback port, with fantoccini as the client.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// Where the screenshots go (looked at by whoever changes the dashboard).
pub fn screenshot_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/ui-screenshots");
    std::fs::create_dir_all(&dir).expect("create target/ui-screenshots");
    dir
}

fn program(name: &str, package: &str) -> String {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|d| d.join(name).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "{name} is missing: the dashboard tests need Debian's {package} package \
        (apt-get install -y chromium chromium-driver; `cargo xtask test` installs it)"
    );
    name.to_string()
}

pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
    base: String,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium of `width`×`height`, for the server at
    /// `base` (`http://127.0.0.1:PORT`).
    pub async fn start(base: &str, width: u32, height: u32) -> Self {
        Self::start_with(base, width, height, &[]).await
    }

    /// `start` with more Chromium arguments (e.g. `--force-dark-mode`).
    pub async fn start_with(base: &str, width: u32, height: u32, extra: &[&str]) -> Self {
        let chromium = program("chromium", "chromium");
        let driver = program("chromedriver", "chromium-driver");
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
            l.local_addr().expect("addr").port()
        };
        let driver = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let profile = tempfile::tempdir().expect("tempdir");
        let mut args = vec![
            "--headless=new".to_string(),
            // Root in a container: Chromium's sandbox needs user namespaces it lacks.
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--no-first-run".into(),
            "--disable-extensions".into(),
            "--disable-background-networking".into(),
            format!("--user-data-dir={}", profile.path().display()),
            format!("--window-size={width},{height}"),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": format!("/usr/bin/{chromium}"),
                "args": args,
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        let client = loop {
            let mut builder = ClientBuilder::rustls().expect("a TLS connector");
            builder.capabilities(caps.clone());
            match builder.connect(&url).await {
                Ok(c) => break c,
                Err(e) if started.elapsed() < Duration::from_secs(30) => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("chromedriver on {url} gave no session: {e}"),
            }
        };
        client
            .set_window_size(width, height)
            .await
            .expect("window size");
        Self {
            client,
            driver,
            _profile: profile,
            base: base.to_string(),
        }
    }

    /// Opens `path` of the server (e.g. `/ui/#/apps`).
    pub async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap_or_else(|e| panic!("open {path}: {e}"));
    }

    /// Runs `script` (a function body; `arguments` are `args`) in the page.
    pub async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Polls `script` until it returns something other than null or false; that value.
    pub async fn wait_js(&self, what: &str, timeout: Duration, script: &str) -> Value {
        let started = Instant::now();
        loop {
            let v = self.js(script, vec![]).await;
            if !v.is_null() && v != Value::Bool(false) {
                return v;
            }
            if started.elapsed() > timeout {
                let text = self
                    .js("return document.body.innerText", vec![])
                    .await
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                panic!("timed out waiting for {what}; the page shows:\n{text:.3000}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The text of the first element matching `css`, once there is one.
    pub async fn text_of(&self, css: &str) -> String {
        let script = format!(
            "const e = document.querySelector({}); return e ? e.innerText : null;",
            json!(css)
        );
        self.wait_js(css, Duration::from_secs(20), &script)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The first element matching `css`, once there is one.
    async fn element(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"))
    }

    pub async fn click(&self, css: &str) {
        self.element(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Types `text` into the field `css` (replacing what it held).
    pub async fn type_into(&self, css: &str, text: &str) {
        let element = self.element(css).await;
        element.clear().await.expect("clear");
        element.send_keys(text).await.expect("type");
    }

    /// Saves a PNG of the window as `target/ui-screenshots/NAME.png`, once the page has had
    /// nothing blocked by its Content-Security-Policy.
    pub async fn shot(&self, name: &str) -> PathBuf {
        let blocked = self
            .js("return document.body.dataset.cspViolations || null", vec![])
            .await;
        assert_eq!(blocked, Value::Null, "{name}: the policy blocked something");
        let png = self.client.screenshot().await.expect("screenshot");
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        let path = screenshot_dir().join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
        path
    }

    /// Ends the session, then chromedriver (dropping does the latter alone).
    pub async fn finish(self) {
        let _closed = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // A failed test: chromedriver takes its browser with it.
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
