// Drives the admin page in real headless Chromium (Debian `chromium`, npm
// `playwright-core`, both from scripts/install-peers) for crates/cli/tests/admin_page.rs.
// Usage: node admin_page.js ADMIN_URL URL TOKEN SCREENSHOT
// Prints one JSON object with what the page showed; the Rust test asserts on it.
"use strict";
const { chromium } = require("playwright-core");

async function main() {
  const [adminUrl, url, token, screenshot] = process.argv.slice(2);
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
  const out = { console: [], failed_requests: [] };
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    page.on("console", (m) => {
      if (m.type() === "error" || m.type() === "warning") out.console.push(m.text());
    });
    page.on("pageerror", (e) => out.console.push("pageerror: " + e.message));
    page.on("requestfailed", (r) => out.failed_requests.push(r.url()));
    const response = await page.goto(adminUrl + "/", { waitUntil: "networkidle" });
    out.csp = response.headers()["content-security-policy"] || null;
    await page.waitForSelector("#providers tbody tr");
    await page.waitForSelector("#counters tbody tr");
    out.ready = await page.textContent("#ready");
    out.providers = await page.$$eval("#providers tbody tr", (rows) =>
      rows.map((r) => Array.from(r.cells, (c) => c.textContent)));
    out.rules = await page.$$eval("#rules tbody tr", (rows) =>
      rows.map((r) => Array.from(r.cells, (c) => c.textContent)));
    out.counters = await page.$$eval("#counters tbody tr", (rows) =>
      rows.map((r) => Array.from(r.cells, (c) => c.textContent)));
    await page.fill("#url", url);
    await page.fill("#token", token);
    await page.click("#explain");
    await page.waitForSelector("#result:not([hidden])");
    out.verdict = await page.textContent("#verdict");
    out.steps = await page.$$eval("#steps tbody tr", (rows) =>
      rows.map((r) => Array.from(r.cells, (c) => c.textContent)));
    // An inline script the page did not ship must not run (CSP); what the console
    // says about it is not the page's own error.
    out.page_console = out.console.slice();
    out.inline_ran = await page.evaluate(() => {
      const s = document.createElement("script");
      s.textContent = "window.__inline = true;";
      document.body.appendChild(s);
      return window.__inline === true;
    });
    out.storage = await page.evaluate(() => localStorage.length + sessionStorage.length);
    await page.screenshot({ path: screenshot, fullPage: true });
  } finally {
    await browser.close();
  }
  process.stdout.write(JSON.stringify(out) + "\n");
}

main().catch((e) => {
  process.stderr.write(String(e && e.stack || e) + "\n");
  process.exit(1);
});
