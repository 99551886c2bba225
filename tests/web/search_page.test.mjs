// search_page.test.mjs: the search page end to end, in headless Chromium.
//
// Builds a small index (the first 3000 Debian package descriptions from
// data-local/debpkgs.jsonl when present, else a generated corpus), starts
// `$LEXIS serve` on port 0, opens the page in Debian's chromium driven by
// playwright-core, types a query, waits for results whose snippets carry
// <mark> highlights, checks that every highlight is a query word (as the
// analyzer sees it: same stem prefix), that the time taken is shown, that
// the URL keeps the query, that an over-long query shows the server's
// error, and that the page logged no JavaScript error. Saves screenshots
// to $SCREENSHOT_DIR (default build/web/).
//
// Environment: LEXIS (the binary, required), SCREENSHOT_DIR, CHROMIUM
// (default /usr/bin/chromium). Run through tests/t_web.sh.
import { chromium } from "playwright-core";
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync, mkdirSync, existsSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const LEXIS = process.env.LEXIS;
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const SHOTS = process.env.SCREENSHOT_DIR || join(root, "build", "web");
if (!LEXIS) {
  console.error("FAIL: set LEXIS to the lexis binary");
  process.exit(1);
}

const tmp = mkdtempSync(join(tmpdir(), "t_web."));
let server = null, context = null;

function fail(msg) {
  throw new Error(msg);
}

async function cleanup() {
  if (context) await context.close().catch(() => {});
  if (server && server.exitCode === null) {
    server.kill("SIGTERM");
    await new Promise((r) => { server.once("exit", r); setTimeout(r, 5000); });
  }
  rmSync(tmp, { recursive: true, force: true });
}

// ---- an index ---------------------------------------------------------------------
const deb = join(root, "data-local", "debpkgs.jsonl");
const corpus = join(tmp, "corpus.jsonl");
let query = "compression archive";
if (existsSync(deb)) {
  const lines = readFileSync(deb, "utf8").split("\n").slice(0, 3000).join("\n");
  writeFileSync(corpus, lines + "\n");
} else {
  const words = ["fast", "json", "parser", "archive", "compression", "library", "tool", "image", "editor"];
  let out = "";
  for (let i = 0; i < 500; i++) {
    const t = Array.from({ length: 30 }, (_, j) => words[(i * 7 + j * 3) % words.length]).join(" ");
    out += JSON.stringify({ _id: "doc" + i, title: `Package ${i}: ${words[i % 9]} ${words[(i + 4) % 9]}`, text: t }) + "\n";
  }
  writeFileSync(corpus, out);
}
execFileSync(LEXIS, ["build", join(tmp, "idx"), "--corpus", corpus, "--quiet"], { stdio: "inherit" });

try {
  // ---- the server ------------------------------------------------------------------
  server = spawn(LEXIS, ["serve", join(tmp, "idx"), "--port", "0", "--threads", "2",
                         "--max-query", "200", "--access-log", "off"],
                 { stdio: ["ignore", "pipe", "inherit"] });
  const url = await new Promise((res, rej) => {
    let buf = "";
    const timer = setTimeout(() => rej(new Error("no 'listening on' line in 10 s")), 10000);
    server.stdout.on("data", (d) => {
      buf += d;
      const m = buf.match(/listening on (http:\/\/\S+)/);
      if (m) { clearTimeout(timer); res(m[1]); }
    });
    server.once("exit", (c) => rej(new Error("lexis serve exited with " + c)));
  });
  console.log("server at " + url);

  // ---- the browser -------------------------------------------------------------------
  context = await chromium.launchPersistentContext(join(tmp, "profile"), {
    executablePath: CHROMIUM,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    viewport: { width: 1100, height: 900 },
  });
  const page = context.pages()[0] || await context.newPage();
  const jsErrors = [];
  page.on("pageerror", (e) => jsErrors.push(String(e)));
  // Chromium logs every 4xx as a console error: the 400 we provoke below is expected.
  page.on("console", (m) => {
    if (m.type() === "error" && !/status of 400/.test(m.text())) jsErrors.push(m.text());
  });

  await page.goto(url + "/", { waitUntil: "load" });
  if ((await page.title()) !== "lexis search") fail("title: " + await page.title());
  await page.waitForFunction(() => /documents/.test(document.getElementById("info").textContent),
                             null, { timeout: 10000 });

  // Type the query as a user would, then press Enter.
  await page.click("#q");
  await page.keyboard.type(query, { delay: 20 });
  await page.keyboard.press("Enter");
  await page.waitForSelector("li.hit .snippet mark", { timeout: 10000 });
  const hits = await page.$$eval("li.hit", (lis) => lis.length);
  if (hits < 3) fail("only " + hits + " hits");
  const marks = await page.$$eval("li.hit mark", (ms) => ms.map((m) => m.textContent));
  // Each highlighted word is a query word up to its ending (stemmed alike).
  const stems = query.split(/\s+/).map((w) => w.toLowerCase().slice(0, 5));
  for (const m of marks) {
    const w = m.toLowerCase();
    if (!stems.some((s) => w.startsWith(s))) fail("highlighted '" + m + "' is not a query word");
  }
  const status = await page.textContent("#status");
  if (!/^\d+ hits? in [\d.]+ ms \(server\), [\d.]+ ms round trip$/.test(status)) fail("status: " + status);
  if (!page.url().includes("q=compression")) fail("the URL does not keep the query: " + page.url());
  // The hit titles come from the index; the first is the best.
  const first = await page.textContent("li.hit .title");
  console.log(`"${query}": ${hits} hits, ${marks.length} highlights; first: ${first}; ${status}`);
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: join(SHOTS, "search_page.png"), fullPage: false });

  // Typing (no Enter) searches too, after a pause; a new query replaces the hits.
  await page.fill("#q", "");
  await page.keyboard.type("json parser", { delay: 15 });
  await page.waitForFunction(() => {
    const m = [...document.querySelectorAll("li.hit mark")].map((x) => x.textContent.toLowerCase());
    return m.length > 0 && m.every((t) => t.startsWith("json") || t.startsWith("pars"));
  }, null, { timeout: 10000 });

  // The server's error message is shown (query over --max-query 200).
  await page.fill("#q", "x".repeat(250));
  await page.keyboard.press("Enter");
  await page.waitForFunction(() => document.getElementById("status").className === "error",
                             null, { timeout: 10000 });
  const err = await page.textContent("#status");
  if (!/limit 200/.test(err)) fail("error shown: " + err);
  await page.screenshot({ path: join(SHOTS, "search_page_error.png") });

  // Reloading with ?q= runs the query.
  await page.goto(url + "/?q=" + encodeURIComponent(query));
  await page.waitForSelector("li.hit .snippet mark", { timeout: 10000 });

  if (jsErrors.length) fail("JavaScript errors: " + jsErrors.join("; "));
  console.log("screenshots: " + join(SHOTS, "search_page.png") + ", search_page_error.png");
  await cleanup();
  console.log("PASS");
} catch (e) {
  console.error("FAIL: " + (e && e.message ? e.message : e));
  await cleanup();
  process.exit(1);
}
