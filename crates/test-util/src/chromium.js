// Drives real headless Chromium (Debian `chromium`) with npm `playwright-core`:
// opens URL, follows whatever redirects the page takes, saves a screenshot, and
// prints {"url": ..., "text": ..., "cookies": [...]} as one JSON line.
const { chromium } = await import(process.env.PW_MODULE);
const [url, screenshot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
try {
  const context = await browser.newContext();
  const page = await context.newPage();
  const response = await page.goto(url, { waitUntil: 'load', timeout: 30000 });
  await page.screenshot({ path: screenshot, fullPage: true });
  const text = await page.evaluate(() => document.body.innerText);
  const cookies = (await context.cookies()).map((c) => ({ name: c.name, httpOnly: c.httpOnly, sameSite: c.sameSite }));
  console.log(JSON.stringify({ url: page.url(), status: response.status(), text, cookies }));
} finally {
  await browser.close();
}
