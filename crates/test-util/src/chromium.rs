//! Real headless Chromium (Debian `chromium`) driven by npm `playwright-core`
//! (`chromium.js`): one navigation, its final page and a screenshot.

use std::path::Path;
use std::process::Command;

use crate::peers_dir;

/// Opens `url` in headless Chromium, follows the redirects, saves a screenshot at
/// `screenshot`; returns `{"url", "status", "text", "cookies"}` of the last page.
pub fn chromium_visit(url: &str, screenshot: &Path, scratch: &Path) -> serde_json::Value {
    let module = peers_dir().join("node/node_modules/playwright-core/index.mjs");
    assert!(
        module.exists(),
        "{} is missing: run scripts/install-peers",
        module.display()
    );
    let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("chromium is not installed: run scripts/install-peers");
    let script = scratch.join("chromium.mjs");
    std::fs::write(&script, include_str!("chromium.js")).unwrap();
    let out = Command::new("node")
        .arg(&script)
        .arg(url)
        .arg(screenshot)
        .env("PW_MODULE", format!("file://{}", module.display()))
        .env("CHROMIUM", chromium)
        .env("HOME", scratch)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chromium: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("chromium said {stdout:?}: {e}"))
}
