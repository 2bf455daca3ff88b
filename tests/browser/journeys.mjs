// The portal in a real browser (issue #21): Playwright (playwright-core from npm) drives
// Debian's chromium through every role's main journey on a server that
// tests/e2e/portal_browser.rs has prepared through the API, then runs axe-core on the
// main pages, saves a full-page screenshot of each role's main page, writes a results
// file and exits non-zero if anything failed.
//
//     node tests/browser/journeys.mjs /path/to/journeys.json
//
// The journeys click through: they navigate by the page's own links and forms, fill
// inputs, choose files and press buttons, as a person would; they read the API (with the
// role's key, outside the browser) only to check what a page did. The browser never sees
// a key except by typing it into the sign-in form, and nothing here prints one: every
// message is redacted before it is written or logged.
//
// Chromium: `PDX_CHROMIUM` or /usr/bin/chromium, headless, `--no-sandbox` (CI runs as
// root in a container). Pages are loaded in `locale` (default zh-CN, the portal's
// default language), so the screenshots are the Chinese pages.
//
// ## The input: journeys.json (written by tests/e2e/portal_browser.rs)
//
// {
//   "base_url":     "http://127.0.0.1:41234",   // the prepared server, no trailing slash
//   "output_dir":   "/tmp/…/browser",           // screenshots and downloads go here
//   "results_path": "/tmp/…/browser/results.json",
//   "locale":       "zh-CN",                    // optional; Accept-Language of the pages
//   "keys": {                                   // one API key per role (secrets)
//     "provider": "…", "developer": "…", "reviewer": "…", "reviewer2": "…",
//     "exchange": "…", "buyer": "…", "supervisor": "…"
//   },                                          // reviewer2: another organisation's
//   "provider": {
//     "dataset_id": "ds_…",      // the provider's registered dataset (no version yet)
//     "csv_path": "/tmp/…/electricity.csv"     // a CSV in that dataset's schema
//   },
//   "developer": {
//     "grant_id": "gr_…",        // the developer's approved SQL grant …
//     "dataset_id": "ds_…",      // … on this published conditional dataset
//     "sql": "SELECT …"          // a query the grant admits
//   },
//   "review": {
//     "output_id": "out_…",      // the developer's output awaiting two reviewers
//     "first_reason": "…"        // the first reviewer's comment (the second must not see it)
//   },
//   "exchange": { "product_id": "prd_…" },                   // a product awaiting listing
//   "buyer":    { "product_id": "prd_…", "product_title": "…" },   // a listed product
//   "supervisor": {
//     "ledger_kind": "asset_certificate",   // a kind the ledger holds, to filter by
//     "lineage_product_id": "prd_…"         // a listed product whose lineage is drawn
//   },
//   "public": {
//     "open_dataset_id": "ds_…",            // unconditionally open, published, certified
//     "conditional_dataset_id": "ds_…"      // conditionally open: no dummy data for the public
//   },
//   "xss": {
//     "dataset_id": "ds_…",      // a published open dataset whose title holds markup
//     "dataset_title": "…<script>window.__xss=1</script> \"><img src=x onerror=\"window.__xss=1\">",
//     "sql": "-- <script>window.__xss=1</script> \"><img src=x onerror=\"window.__xss=1\">\nSELECT …",
//     "payloads": ["<script>window.__xss=1</script>", "\"><img src=x onerror=\"window.__xss=1\">"]
//   },
//   "session_expiry": {          // a second server whose sessions end after idle_seconds
//     "base_url": "http://127.0.0.1:41235",
//     "role": "provider",
//     "key": "…",
//     "idle_seconds": 3
//   }
// }
//
// ## The output: results.json (at results_path)
//
// {
//   "ok": true,                             // every journey and every axe page passed
//   "browser": "156.0.8078.129",
//   "locale": "zh-CN",
//   "journeys": [{ "name": "provider", "ok": true, "message": "…", "duration_ms": 1234 }],
//   "axe": [{ "page": "provider /provider", "url": "/provider", "ok": true,
//             "violations": [{ "id": "…", "impact": "serious", "help": "…", "help_url": "…",
//                              "nodes": 2, "targets": ["…"] }],   // serious or critical
//             "other_violations": [{ "id": "…", "impact": "moderate", "nodes": 1 }],
//             "error": null }],
//   "screenshots": [{ "role": "provider", "page": "/provider", "status": 200, "path": "/tmp/…/provider.png" }],
//   "failure_screenshots": ["/tmp/…/failed-provider.png"],
//   "downloads": [{ "journey": "buyer", "path": "/tmp/…/….tar", "bytes": 10240 }],
//   "warnings": ["…"]                       // CSP reports and script errors seen (not failures)
// }
//
// Exit status: 0 when `ok`, 1 when a journey or an axe page failed, 2 when the input
// could not be read or the browser could not start.

import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import process from 'node:process';

import { chromium, request as apiRequest } from 'playwright-core';

const require = createRequire(import.meta.url);

/** How long one click, fill or wait for an element may take. */
const ACTION_MS = 30_000;
/** How long a navigation may take. */
const NAVIGATION_MS = 60_000;
/** How long a background job (ingest, model run, ledger verification) may take. */
const JOB_MS = 240_000;

/** Where sign-in leads each role (session.rs `home_of`). */
const HOME = {
  provider: '/provider',
  developer: '/developer',
  reviewer: '/review',
  reviewer2: '/review',
  exchange: '/exchange',
  buyer: '/buyer',
  supervisor: '/supervisor',
};

/** The pages axe-core checks: the public ones, then each role's main page. */
const AXE_PAGES = [
  { role: null, path: '/' },
  { role: null, path: '/catalog' },
  { role: null, path: '/signin' },
  { role: 'provider', path: '/provider' },
  { role: 'developer', path: '/developer' },
  { role: 'reviewer', path: '/review' },
  { role: 'exchange', path: '/exchange' },
  { role: 'buyer', path: '/buyer' },
  { role: 'supervisor', path: '/supervisor' },
];

/** axe impacts that fail the run. */
const FAILING_IMPACTS = new Set(['serious', 'critical']);

// ---------------------------------------------------------------------------------
// Input, results, redaction.

const configPath = process.argv[2];
if (!configPath) {
  console.error('usage: node tests/browser/journeys.mjs <journeys.json>');
  process.exit(2);
}

let cfg;
try {
  cfg = JSON.parse(await readFile(configPath, 'utf8'));
  for (const field of ['base_url', 'output_dir', 'results_path', 'keys']) {
    if (!cfg[field]) {
      throw new Error(`${configPath} has no "${field}"`);
    }
  }
} catch (err) {
  console.error(`cannot read the journeys' input: ${err.message}`);
  process.exit(2);
}

const BASE = cfg.base_url.replace(/\/+$/, '');
const OUT = cfg.output_dir;
const LOCALE = cfg.locale || 'zh-CN';
await mkdir(OUT, { recursive: true });

/** Every secret in the input: no message may carry one. */
const SECRETS = [...Object.values(cfg.keys), cfg.session_expiry && cfg.session_expiry.key]
  .filter((s) => typeof s === 'string' && s.length > 0);

/** `text` with every key replaced. */
function redact(text) {
  let out = String(text);
  for (const secret of SECRETS) {
    out = out.split(secret).join('[api key]');
  }
  return out;
}

const results = {
  ok: false,
  browser: null,
  locale: LOCALE,
  journeys: [],
  axe: [],
  screenshots: [],
  failure_screenshots: [],
  downloads: [],
  warnings: [],
};

async function writeResults() {
  await writeFile(cfg.results_path, JSON.stringify(results, null, 2) + '\n');
}

/** Throws `message` unless `condition` holds. */
function check(condition, message) {
  if (!condition) {
    throw new Error(message);
  }
}

/** Waits until `locator` is visible; the error names `what`. */
async function visible(locator, what, timeout = ACTION_MS) {
  try {
    await locator.first().waitFor({ state: 'visible', timeout });
  } catch {
    throw new Error(`not visible: ${what}`);
  }
}

/** A pathname test for `page.waitForURL`. */
function pathIs(pathname) {
  return (url) => url.pathname === pathname;
}

/** The pathname of the page's current URL. */
function pathOf(page) {
  return new URL(page.url()).pathname;
}

/** The text of the page's first alert (an API refusal), for messages. */
async function alertText(page) {
  const alert = page.locator('main [role="alert"]').first();
  return (await alert.count()) > 0 ? (await alert.innerText()).trim() : '';
}

// ---------------------------------------------------------------------------------
// The API, outside the browser, to check what pages did.

const apiContexts = new Map();

/** An API client as `role` (or the public for null), against `base`. */
async function api(role, base = BASE) {
  const id = `${role}@${base}`;
  if (!apiContexts.has(id)) {
    const headers = role ? { Authorization: `Bearer ${cfg.keys[role]}` } : {};
    apiContexts.set(id, await apiRequest.newContext({ baseURL: base, extraHTTPHeaders: headers }));
  }
  return apiContexts.get(id);
}

/** GET `path` from the API as `role`: { status, json }. */
async function apiGet(role, apiPath) {
  const response = await (await api(role)).get(apiPath, { failOnStatusCode: false });
  let json = null;
  try {
    json = await response.json();
  } catch {
    json = null;
  }
  return { status: response.status(), json };
}

// ---------------------------------------------------------------------------------
// The browser, pages and journeys.

let browser;
try {
  browser = await chromium.launch({
    executablePath: process.env.PDX_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-dev-shm-usage'],
  });
  results.browser = browser.version();
} catch (err) {
  results.warnings.push(redact(`chromium did not start: ${err.message}`));
  await writeResults();
  console.error(redact(`chromium did not start: ${err.message}`));
  process.exit(2);
}

/** A new browser context and page: dialogs accepted (forms' data-confirm), CSP reports
 * and script errors collected as warnings. */
async function openPage(options = {}) {
  const context = await browser.newContext({
    locale: LOCALE,
    viewport: { width: 1280, height: 900 },
    acceptDownloads: true,
    ...options,
  });
  context.setDefaultTimeout(ACTION_MS);
  context.setDefaultNavigationTimeout(NAVIGATION_MS);
  const page = await context.newPage();
  page.on('dialog', (dialog) => dialog.accept().catch(() => {}));
  page.on('console', (message) => {
    const text = message.text();
    if (message.type() === 'error' && /Content[ -]Security[ -]Policy/i.test(text)) {
      results.warnings.push(redact(`CSP on ${page.url()}: ${text}`));
    }
  });
  page.on('pageerror', (error) => {
    results.warnings.push(redact(`script error on ${page.url()}: ${error.message}`));
  });
  return { context, page };
}

/** Signs `page` in as `role` through the sign-in form on `base`, checks it landed on the
 * role's home, and that the key is nowhere in the page, its URL, cookies or storage. */
async function signIn(page, role, key = cfg.keys[role], base = BASE, home = HOME[role]) {
  check(typeof key === 'string' && key.length > 0, `no key for ${role}`);
  const response = await page.goto(`${base}/signin`);
  check(response && response.status() === 200, `GET /signin answered ${response && response.status()}`);
  const form = page.locator('main form[action="/signin"]');
  await form.locator('#api_key').fill(key);
  await form.locator('button[type="submit"]').click();
  // Either the role's home, or the form again with the refusal.
  const outcome = await Promise.race([
    page.waitForURL((url) => url.pathname !== '/signin', { timeout: NAVIGATION_MS })
      .then(() => 'signed in'),
    page.locator('main [role="alert"]').first().waitFor({ state: 'visible', timeout: NAVIGATION_MS })
      .then(() => 'refused'),
  ]).catch(() => 'no answer');
  if (outcome !== 'signed in') {
    throw new Error(`sign-in as ${role} ${outcome}: ${await alertText(page)}`);
  }
  check(pathOf(page) === home, `sign-in as ${role} led to ${pathOf(page)}, not ${home}`);
  const html = await page.content();
  check(!html.includes(key), `the ${role} key appears in ${home}`);
  check(!page.url().includes(key), `the ${role} key appears in the URL`);
  const cookies = await page.context().cookies();
  check(!cookies.some((c) => c.value.includes(key)), `the ${role} key is in a cookie`);
  const session = cookies.find((c) => c.name === 'pdx_session');
  check(session && session.httpOnly && session.sameSite === 'Strict',
    `the session cookie is not HttpOnly and SameSite=Strict: ${JSON.stringify(session && {
      httpOnly: session.httpOnly, sameSite: session.sameSite })}`);
  const storage = await page.evaluate(() => JSON.stringify([
    Object.assign({}, window.localStorage),
    Object.assign({}, window.sessionStorage),
  ]));
  check(!storage.includes(key), `the ${role} key is in browser storage`);
}

/** Saves a full-page PNG of `pagePath` as `<role>.png`. */
async function mainScreenshot(page, role, pagePath, base = BASE) {
  const response = await page.goto(`${base}${pagePath}`);
  const file = path.join(OUT, `${role}.png`);
  await page.screenshot({ path: file, fullPage: true });
  results.screenshots.push({
    role,
    page: pagePath,
    status: response ? response.status() : null,
    path: file,
  });
}

/** Runs one journey: `body(j)` gets `j.page(options)` for a fresh browser context and
 * `j.signedIn(role, options)` for one signed in as `role`. The first signed-in page (or
 * the one marked `main`) is screenshotted on `screenshot.path` at the end, pass or fail;
 * a failure also saves the page it happened on. */
async function journey(name, screenshot, body) {
  const opened = [];
  let main = null;
  let last = null;
  const j = {
    async page(options = {}) {
      const { context, page } = await openPage(options);
      opened.push(context);
      last = page;
      return page;
    },
    async signedIn(role, options = {}) {
      const { main: isMain, ...contextOptions } = options;
      const page = await j.page(contextOptions);
      await signIn(page, role);
      if (screenshot && (isMain === true || (isMain === undefined && main === null))) {
        main = page;
      }
      return page;
    },
    setMain(page) {
      main = page;
    },
  };
  const started = Date.now();
  const entry = { name, ok: false, message: '', duration_ms: 0 };
  try {
    const message = await body(j);
    entry.ok = true;
    entry.message = redact(message || 'ok');
  } catch (err) {
    entry.message = redact(err && err.message ? err.message : err);
    if (last) {
      const file = path.join(OUT, `failed-${name}.png`);
      try {
        await last.screenshot({ path: file, fullPage: true });
        results.failure_screenshots.push(file);
        entry.message += ` (on ${redact(last.url())}; see ${file})`;
      } catch {
        // The page is gone; the message stands alone.
      }
    }
  }
  if (screenshot && main) {
    try {
      await mainScreenshot(main, screenshot.role, screenshot.path, screenshot.base || BASE);
    } catch (err) {
      results.warnings.push(redact(`no screenshot of ${screenshot.path}: ${err.message}`));
    }
  }
  for (const context of opened) {
    await context.close().catch(() => {});
  }
  entry.duration_ms = Date.now() - started;
  results.journeys.push(entry);
  console.log(`${entry.ok ? 'ok  ' : 'FAIL'} ${name} (${entry.duration_ms} ms): ${entry.message}`);
}

/** Waits for `selector` on a page that reloads itself while a job runs (runs.js, or a
 * `Refresh` header); reloads `url` itself when the page has not got there for a while,
 * in case its own reload stopped. */
async function waitThroughReloads(page, url, selector, what) {
  const deadline = Date.now() + JOB_MS;
  for (;;) {
    try {
      await page.locator(selector).first().waitFor({ state: 'attached', timeout: 15_000 });
      return;
    } catch {
      if (Date.now() > deadline) {
        throw new Error(`${what} did not happen in ${JOB_MS / 1000} s`);
      }
      await page.goto(url).catch(() => {});
    }
  }
}

/** Checks that no markup from data ran or became elements: no `window.__xss`, no
 * `<img src=x>`, no inline handler, no script carrying the payload. Run in a context
 * with `bypassCSP`, so that it is the escaping that is tested, not the CSP behind it. */
async function assertInert(page, where) {
  // Give an injected <img src=x onerror> the time to fail and fire.
  await page.waitForTimeout(500);
  const state = await page.evaluate(() => ({
    xss: typeof window.__xss === 'undefined' ? null : String(window.__xss),
    images: document.querySelectorAll('img[src="x"]').length,
    handlers: document.querySelectorAll('[onerror]').length,
    scripts: Array.from(document.scripts).filter((s) => (s.textContent || '').includes('__xss')).length,
  }));
  check(state.xss === null, `${where}: window.__xss = ${state.xss}: markup from data ran`);
  check(state.images === 0 && state.handlers === 0 && state.scripts === 0,
    `${where}: markup from data became elements: ${JSON.stringify(state)}`);
}

// ---------------------------------------------------------------------------------
// The journeys.

// The public: the home page, the catalog through the navigation, filtered by the open
// attribute with the filter form.
await journey('public', { role: 'public', path: '/catalog' }, async (j) => {
  const page = await j.page();
  j.setMain(page);
  const open = cfg.public.open_dataset_id;
  const conditional = cfg.public.conditional_dataset_id;
  const response = await page.goto(`${BASE}/`);
  check(response && response.status() === 200, `/ answered ${response && response.status()}`);
  await page.locator('header nav a[href="/catalog"]').click();
  await page.waitForURL(pathIs('/catalog'));
  await visible(page.locator(`main a[href="/catalog/${conditional}"]`), 'the conditional dataset in the catalog');
  const form = page.locator('main form[action="/catalog"]');
  await form.locator('#catalog-open').selectOption('unconditional');
  await form.locator('button[type="submit"]').click();
  await page.waitForURL((url) => url.pathname === '/catalog'
    && url.searchParams.get('open_attribute') === 'unconditional');
  await visible(page.locator(`main a[href="/catalog/${open}"]`), 'the open dataset among the open ones');
  check((await page.locator(`main a[href="/catalog/${conditional}"]`).count()) === 0,
    'the filter for open datasets still lists the conditional one');
  await page.locator(`main a[href="/catalog/${open}"]`).first().click();
  await page.waitForURL(pathIs(`/catalog/${open}`));
  await visible(page.locator('main h1'), 'the dataset page');
  return 'catalog filtered by open attribute; the open dataset found and opened';
});

// The provider: upload a CSV through the upload page and read the certificate.
await journey('provider', { role: 'provider', path: '/provider' }, async (j) => {
  const page = await j.signedIn('provider');
  const id = cfg.provider.dataset_id;
  await page.locator(`main a[href="/provider/datasets/${id}"]`).first().click();
  await page.waitForURL(pathIs(`/provider/datasets/${id}`));
  await page.locator(`main a[href="/provider/datasets/${id}/upload"]`).click();
  await page.waitForURL(pathIs(`/provider/datasets/${id}/upload`));
  const form = page.locator('main form[data-upload]');
  await form.locator('#upload-file').setInputFiles(cfg.provider.csv_path);
  await form.locator('button[type="submit"]').click();
  // upload.js sends the file, then polls the ingest job until it is certified (a link
  // to the report) or failed (the status marked as an error).
  try {
    await page.waitForFunction(() => {
      const f = document.querySelector('form[data-upload]');
      return f && (f.querySelector('[data-upload-result] a')
        || f.querySelector('[data-upload-status].error'));
    }, null, { timeout: JOB_MS, polling: 250 });
  } catch {
    throw new Error(`the upload did not finish: ${await form.locator('[data-upload-status]').innerText()}`);
  }
  const status = (await form.locator('[data-upload-status]').innerText()).trim();
  check((await form.locator('[data-upload-result] a').count()) === 1, `the upload failed: ${status}`);
  const [value, max] = await form.locator('#upload-progress').evaluate((bar) => [bar.value, bar.max]);
  check(value === max, `the progress bar stopped at ${value} of ${max}`);
  await form.locator('[data-upload-result] a').click();
  await page.waitForURL((url) => /^\/provider\/datasets\/[^/]+\/versions\/\d+\/report$/.test(url.pathname));
  const version = pathOf(page).match(/\/versions\/(\d+)\/report$/)[1];
  const certificate = await apiGet('provider', `/v1/datasets/${id}/versions/${version}/certificate`);
  check(certificate.status === 200, `the API has no certificate for version ${version}: ${certificate.status}`);
  const number = certificate.json.certificate.certificate_no;
  check(status.includes(number), `the upload's status does not name certificate ${number}: ${status}`);
  await visible(page.locator('main section.card code', { hasText: number }), `certificate ${number} on the report`);
  await visible(page.locator('main figure.chart svg'), 'the report\'s chart');
  return `uploaded; version ${version} certified as ${number}, shown on its report`;
});

// The developer: the SQL editor, a dry run with its instant preview, the run with live
// progress to success, and the output's check report.
await journey('developer', { role: 'developer', path: '/developer' }, async (j) => {
  const page = await j.signedIn('developer');
  await page.locator('header nav a[href="/developer/sql"]').click();
  await page.waitForURL(pathIs('/developer/sql'));
  const form = page.locator('main form[action="/developer/sql"]');
  await form.locator('#grant_id').selectOption(cfg.developer.grant_id);
  await form.locator('#kind').selectOption('sql');
  await form.locator('#name').fill('districts, from the browser');
  await form.locator('#body').fill(cfg.developer.sql);
  await form.locator('button[name="action"][value="dry_run"]').click();
  // runs.js posts the fields and puts the server's fragment under the form.
  await page.waitForFunction(() => {
    const target = document.getElementById('dry-run-result');
    return target && !target.hasAttribute('aria-busy') && target.querySelector('.card, .error');
  }, null, { timeout: JOB_MS, polling: 250 });
  check(pathOf(page) === '/developer/sql', 'the dry run left the editor: no instant preview');
  const preview = page.locator('#dry-run-result');
  check((await preview.locator('.error').count()) === 0, `the dry run was refused: ${await preview.innerText()}`);
  await visible(preview.locator('table'), 'the dry run\'s preview tables');
  await form.locator('button[name="action"][value="run"]').click();
  try {
    await page.waitForURL((url) => /^\/developer\/runs\/[^/]+$/.test(url.pathname));
  } catch {
    throw new Error(`the run did not start: ${await alertText(page)}`);
  }
  const runUrl = page.url();
  const job = pathOf(page).split('/').pop();
  await visible(page.locator('main progress#run-progress'), 'the run\'s progress bar');
  await waitThroughReloads(page, runUrl, 'main section[data-run-done="true"]', `run ${job}`);
  const apiJob = await apiGet('developer', `/v1/jobs/${job}`);
  check(apiJob.status === 200 && apiJob.json.status === 'succeeded',
    `run ${job} did not succeed: ${apiJob.status} ${JSON.stringify(apiJob.json && apiJob.json.status)}`);
  const section = page.locator('main section[data-run-status-url]');
  check((await section.locator('.error').count()) === 0, `the run page shows a failure: ${await alertText(page)}`);
  const outputLink = section.locator('a[href^="/developer/outputs/"]');
  await visible(outputLink, 'the link to the run\'s output');
  await outputLink.first().click();
  await page.waitForURL((url) => /^\/developer\/outputs\/[^/]+$/.test(url.pathname));
  await visible(page.locator('main section#report h2'), 'the output\'s check report');
  const output = pathOf(page).split('/').pop();
  return `dry run previewed; run ${job} succeeded; output ${output} shows its check report`;
});

// Two reviewers of other organisations approve the output; the second does not see the
// first's vote before voting.
await journey('reviewers', { role: 'reviewer', path: '/review' }, async (j) => {
  const output = cfg.review.output_id;
  const reason = cfg.review.first_reason;
  const outputPath = `/review/outputs/${output}`;
  const voteButton = (page, decision) => page.locator(
    `main form[action="${outputPath}"] button[name="decision"][value="${decision}"]`);

  const first = await j.signedIn('reviewer');
  const queued = first.locator(`main [data-queue="awaiting-me"] tr[data-output="${output}"]`);
  await visible(queued, 'the output in the first reviewer\'s queue');
  await queued.locator(`a[href="${outputPath}"]`).click();
  await first.waitForURL(pathIs(outputPath));
  await visible(first.locator('main p[data-votes="0"]'), 'no votes yet');
  await first.locator('#review-reason').fill(reason);
  await voteButton(first, 'approve').click();
  await first.waitForURL(pathIs(outputPath));
  await visible(first.locator('main td[data-decision="approve"]'), 'the first reviewer\'s own vote');
  await visible(first.locator('main p[data-votes="1"]'), 'one vote');

  const second = await j.signedIn('reviewer2', { main: false });
  const waiting = second.locator(`main [data-queue="awaiting-me"] tr[data-output="${output}"]`);
  await visible(waiting, 'the output in the second reviewer\'s queue');
  await waiting.locator(`a[href="${outputPath}"]`).click();
  await second.waitForURL(pathIs(outputPath));
  await visible(second.locator('main p[data-votes="1"]'), 'the count of one vote');
  check((await second.locator('[data-decision]').count()) === 0,
    'the second reviewer sees a decision before voting');
  check(!(await second.content()).includes(reason),
    'the second reviewer sees the first reviewer\'s comment before voting');
  await second.locator('#review-reason').fill('second look: counts over many firms');
  await voteButton(second, 'approve').click();
  await second.waitForURL(pathIs(outputPath));
  await visible(second.locator('main [data-status="released"]'), 'the output released');
  check((await second.locator('main td[data-decision="approve"]').count()) === 2,
    'both votes are not shown once decided');
  check((await second.content()).includes(reason), 'the first comment is not shown once decided');
  const seen = await apiGet('developer', `/v1/outputs/${output}`);
  check(seen.status === 200 && seen.json.status === 'released',
    `the API does not have output ${output} released: ${seen.status} ${seen.json && seen.json.status}`);
  return `output ${output} released by two reviewers; the second saw one vote, no decision`;
});

// The exchange lists a product from its desk.
await journey('exchange', { role: 'exchange', path: '/exchange' }, async (j) => {
  const page = await j.signedIn('exchange');
  const product = cfg.exchange.product_id;
  const card = page.locator('main section.card', {
    has: page.locator(`a[href="/exchange/products/${product}"]`),
  });
  await visible(card, 'the pending product on the desk');
  await visible(card.locator('svg'), 'the product\'s lineage graph');
  await card.locator(`form[action="/exchange/products/${product}/list"] button[type="submit"]`).click();
  await page.waitForURL((url) => url.pathname === `/exchange/products/${product}`
    && url.searchParams.get('notice') === 'listed');
  const seen = await apiGet('exchange', `/v1/products/${product}`);
  check(seen.status === 200 && seen.json.status === 'listed',
    `the API does not have ${product} listed: ${seen.status} ${seen.json && seen.json.status}`);
  const registration = seen.json.registration_no;
  check(typeof registration === 'string' && registration.length > 0, 'no registration number');
  await visible(page.locator('main dd', { hasText: registration }), `registration ${registration}`);
  return `product ${product} listed as ${registration}`;
});

// A buyer finds a listed product, orders it, pays and downloads it.
await journey('buyer', { role: 'buyer', path: '/buyer' }, async (j) => {
  const page = await j.signedIn('buyer');
  const product = cfg.buyer.product_id;
  const search = page.locator('main form[action="/buyer"]');
  await search.locator('#market-q').fill(cfg.buyer.product_title);
  await search.locator('button[type="submit"]').click();
  await page.waitForURL((url) => url.pathname === '/buyer' && url.searchParams.has('q'));
  await page.locator(`main a[href="/buyer/products/${product}"]`).first().click();
  await page.waitForURL(pathIs(`/buyer/products/${product}`));
  await page.locator(`main form[action="/buyer/products/${product}/order"] button[type="submit"]`).click();
  try {
    await page.waitForURL((url) => /^\/buyer\/orders\/[^/]+$/.test(url.pathname));
  } catch {
    throw new Error(`the order was not placed: ${await alertText(page)}`);
  }
  const order = pathOf(page).split('/').pop();
  const pay = page.locator(`main form[action="/buyer/orders/${order}/pay"]`);
  await pay.locator('#payment-ref').fill('browser-payment-0001');
  await pay.locator('button[type="submit"]').click();
  await page.waitForURL((url) => url.pathname === `/buyer/orders/${order}`
    && url.searchParams.get('notice') === 'paid');
  const link = page.locator(`main a[href="/buyer/orders/${order}/download"]`);
  await visible(link, 'the download link of the paid order');
  const [download] = await Promise.all([page.waitForEvent('download'), link.click()]);
  const failure = await download.failure();
  check(failure === null, `the download failed: ${failure}`);
  const name = download.suggestedFilename();
  check(name.endsWith('.tar'), `the download is not the archive: ${name}`);
  const file = path.join(OUT, path.basename(name));
  await download.saveAs(file);
  const bytes = (await stat(file)).size;
  check(bytes > 0, 'the downloaded archive is empty');
  results.downloads.push({ journey: 'buyer', path: file, bytes });
  const seen = await apiGet('buyer', `/v1/orders/${order}`);
  check(seen.status === 200 && seen.json.status === 'delivered',
    `the API does not have order ${order} delivered: ${seen.status} ${seen.json && seen.json.status}`);
  return `order ${order} placed, paid and downloaded (${name}, ${bytes} bytes)`;
});

// The supervisor filters the ledger, verifies it to completion and opens a lineage graph.
await journey('supervisor', { role: 'supervisor', path: '/supervisor' }, async (j) => {
  const page = await j.signedIn('supervisor');
  const kind = cfg.supervisor.ledger_kind;
  await page.locator('header nav a[href="/supervisor/ledger"]').click();
  await page.waitForURL(pathIs('/supervisor/ledger'));
  const filter = page.locator('main form[action="/supervisor/ledger"]');
  await filter.locator('#ledger-kind').selectOption(kind);
  await filter.locator('button[type="submit"]').click();
  await page.waitForURL((url) => url.pathname === '/supervisor/ledger'
    && url.searchParams.get('kind') === kind);
  const kinds = await page.locator('main tbody tr[data-kind]').evaluateAll(
    (rows) => rows.map((row) => row.getAttribute('data-kind')));
  check(kinds.length > 0, `no ${kind} entries after filtering`);
  check(kinds.every((k) => k === kind), `the filter by ${kind} shows ${[...new Set(kinds)].join(', ')}`);

  await page.locator('header nav a[href="/supervisor/verify"]').click();
  await page.waitForURL(pathIs('/supervisor/verify'));
  await page.locator('main form[action="/supervisor/verify"] button[type="submit"]').click();
  await page.waitForURL((url) => /^\/supervisor\/verify\/[^/]+$/.test(url.pathname));
  const verifyUrl = page.url();
  await waitThroughReloads(page, verifyUrl,
    '#verify-status[data-status="succeeded"], #verify-status[data-status="failed"]', 'the verification');
  const status = await page.locator('#verify-status').getAttribute('data-status');
  const ok = await page.locator('#verify-status').getAttribute('data-ok');
  check(status === 'succeeded' && ok === 'true',
    `the verification ended ${status} (ok: ${ok}): ${(await page.locator('#verify-status').innerText()).trim()}`);

  const product = cfg.supervisor.lineage_product_id;
  await page.goto(`${BASE}/supervisor/lineage`);
  const trace = page.locator('main form[action="/supervisor/lineage"]');
  await trace.locator('#lineage-product').fill(product);
  await trace.locator('button[type="submit"]').click();
  await page.waitForURL(pathIs(`/supervisor/lineage/${product}`));
  await visible(page.locator('main svg'), 'the lineage graph');
  return `${kinds.length} ${kind} entries; the ledger verified; product ${product}'s lineage drawn`;
});

// Refusals: another role's pages answer as the API does (403); the public gets no
// conditional data and no signed-in page (401).
await journey('refusals', null, async (j) => {
  const developer = await j.signedIn('developer');
  const conditional = cfg.public.conditional_dataset_id;
  const asDeveloper = [
    // page, the API route it stands on
    ['/provider', `/v1/datasets/${cfg.provider.dataset_id}/output-policy`],
    [`/provider/datasets/${conditional}`, `/v1/datasets/${conditional}/output-policy`],
    ['/review', '/v1/review'],
    ['/supervisor/ledger', '/v1/orgs'],
  ];
  const seen = [];
  for (const [pagePath, apiPath] of asDeveloper) {
    const response = await developer.goto(`${BASE}${pagePath}`);
    const status = response ? response.status() : null;
    const apiStatus = (await apiGet('developer', apiPath)).status;
    check(status === apiStatus, `${pagePath} as a developer: page ${status}, API ${apiStatus}`);
    check(status === 403, `${pagePath} as a developer answered ${status}, not 403`);
    await visible(developer.locator('main [role="alert"]'), `the refusal on ${pagePath}`);
    seen.push(`${pagePath} ${status}`);
  }

  const visitor = await j.page();
  const dummy = `/catalog/${conditional}/dummy`;
  const refused = await visitor.goto(`${BASE}${dummy}`);
  const apiDummy = (await apiGet(null, `/v1/datasets/${conditional}/dummy?rows=20`)).status;
  check(refused && refused.status() === apiDummy,
    `${dummy} for the public: page ${refused && refused.status()}, API ${apiDummy}`);
  check(apiDummy === 401 || apiDummy === 403, `the API gives the public dummy rows of a conditional dataset (${apiDummy})`);
  check((await visitor.locator('main table').count()) === 0, `${dummy} shows a table to the public`);
  seen.push(`public ${dummy} ${apiDummy}`);
  const home = await visitor.goto(`${BASE}/provider`);
  const whoami = (await apiGet(null, '/v1/whoami')).status;
  check(home && home.status() === 401 && whoami === 401,
    `/provider for the public: page ${home && home.status()}, API ${whoami}`);
  await visible(visitor.locator('main a[href="/signin"]'), 'the sign-in link on the 401 page');
  seen.push('public /provider 401');
  // The control: the open dataset's dummy rows are the public's.
  const open = await visitor.goto(`${BASE}/catalog/${cfg.public.open_dataset_id}/dummy`);
  check(open && open.status() === 200, `the open dataset's dummy page answered ${open && open.status()}`);
  await visible(visitor.locator('main table'), 'the open dataset\'s dummy rows');
  return seen.join('; ');
});

// XSS: a dataset title and a SQL text holding markup are shown as text and never run.
await journey('xss', null, async (j) => {
  const payloads = cfg.xss.payloads;
  check(Array.isArray(payloads) && payloads.some((p) => p.includes('<script>'))
    && payloads.some((p) => p.includes('onerror')), 'the input carries no <script> and onerror payloads');
  const title = cfg.xss.dataset_title;
  const dataset = cfg.xss.dataset_id;
  check(payloads.every((p) => title.includes(p) && cfg.xss.sql.includes(p)),
    'the title and the SQL do not carry every payload');

  const visitor = await j.page({ bypassCSP: true });
  await visitor.goto(`${BASE}/catalog`);
  const link = visitor.locator(`main a[href="/catalog/${dataset}"]`).first();
  await visible(link, 'the dataset with markup in its title, in the catalog');
  check((await link.textContent()).includes(title), 'the catalog does not show the title as text');
  await assertInert(visitor, '/catalog');
  await link.click();
  await visitor.waitForURL(pathIs(`/catalog/${dataset}`));
  check((await visitor.locator('main h1').innerText()).includes(title), 'the dataset page\'s heading is not the title as text');
  for (const payload of payloads) {
    await visible(visitor.getByText(payload, { exact: false }), `"${payload}" as text on the dataset page`);
  }
  await assertInert(visitor, `/catalog/${dataset}`);

  const developer = await j.signedIn('developer', { bypassCSP: true });
  await developer.goto(`${BASE}/developer/sql`);
  const form = developer.locator('main form[action="/developer/sql"]');
  await form.locator('#grant_id').selectOption(cfg.developer.grant_id);
  await form.locator('#name').fill(payloads[payloads.length - 1]);
  await form.locator('#body').fill(cfg.xss.sql);
  await form.locator('button[name="action"][value="dry_run"]').click();
  await developer.waitForFunction(() => {
    const target = document.getElementById('dry-run-result');
    return target && !target.hasAttribute('aria-busy') && target.querySelector('.card, .error');
  }, null, { timeout: JOB_MS, polling: 250 });
  await assertInert(developer, 'the editor after a dry run');
  await form.locator('button[name="action"][value="run"]').click();
  try {
    await developer.waitForURL((url) => /^\/developer\/runs\/[^/]+$/.test(url.pathname));
  } catch {
    throw new Error(`the run with markup in its SQL did not start: ${await alertText(developer)}`);
  }
  // runs.js reloads the page when the run ends: let it, then read the settled page.
  await waitThroughReloads(developer, developer.url(), 'main section[data-run-done="true"]', 'the run with markup');
  const code = developer.locator('main section#model pre code');
  await visible(code, 'the model text on the run page');
  const text = await code.textContent();
  check(payloads.every((p) => text.includes(p)), 'the run page does not show the SQL as text');
  for (const payload of payloads) {
    await visible(developer.getByText(payload, { exact: false }), `"${payload}" as text on the run page`);
  }
  await assertInert(developer, pathOf(developer));
  return 'the title (catalog, dataset page) and the SQL (editor, run page) are text; nothing ran';
});

// CSRF: a form posted with the session cookie but without the form's token is refused.
await journey('csrf', null, async (j) => {
  const page = await j.signedIn('supervisor');
  await page.goto(`${BASE}/supervisor/verify`);
  const account = await page.request.get(`${BASE}/account`, { maxRedirects: 0 });
  check(account.status() === 200, `the request context does not carry the session: /account ${account.status()}`);
  const none = await page.request.post(`${BASE}/supervisor/verify`, { form: {}, maxRedirects: 0 });
  check(none.status() === 403, `a form without its token answered ${none.status()}, not 403`);
  const forged = await page.request.post(`${BASE}/supervisor/verify`, {
    form: { csrf: 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' },
    maxRedirects: 0,
  });
  check(forged.status() === 403, `a form with a forged token answered ${forged.status()}, not 403`);
  // The control: the same post with the page's token is accepted.
  const token = await page.locator('main form[action="/supervisor/verify"] input[name="csrf"]').inputValue();
  const good = await page.request.post(`${BASE}/supervisor/verify`, { form: { csrf: token }, maxRedirects: 0 });
  check(good.status() === 303, `the form with its token answered ${good.status()}, not 303`);
  return 'without a token 403, with a forged one 403, with the page\'s 303';
});

// Session expiry: a server whose sessions end after a few idle seconds.
await journey('session-expiry', null, async (j) => {
  const expiry = cfg.session_expiry;
  const base = expiry.base_url.replace(/\/+$/, '');
  const home = HOME[expiry.role];
  const idleMs = expiry.idle_seconds * 1000;
  const page = await j.page();
  await signIn(page, expiry.role, expiry.key, base, home);
  // Active use keeps it alive past the idle limit (the server notes a request at most
  // every half idle time, so requests a quarter apart keep it alive) …
  const steps = 6;
  for (let i = 0; i < steps; i += 1) {
    await page.waitForTimeout(idleMs / 4);
    const response = await page.goto(`${base}${home}`);
    check(response && response.status() === 200,
      `the session ended while in use (step ${i + 1}): ${response && response.status()}`);
  }
  // … and idleness ends it.
  await page.waitForTimeout(idleMs + 1500);
  const response = await page.goto(`${base}${home}`);
  check(response && response.status() === 401, `an idle session's ${home} answered ${response && response.status()}, not 401`);
  await visible(page.locator('main .notice[role="status"] a[href="/signin"]'), 'the notice that the session ended');
  const cookies = await page.context().cookies(base);
  check(!cookies.some((c) => c.name === 'pdx_session' && c.value !== ''), 'the ended session\'s cookie was not cleared');
  return `alive through ${steps} requests over ${(steps * idleMs) / 4000} s; ended after ${expiry.idle_seconds} s idle (401, notice, cookie cleared)`;
});

// ---------------------------------------------------------------------------------
// Accessibility: axe-core on the main pages, in contexts that bypass the CSP (axe is
// injected as a script, which the CSP rightly forbids).

const axeSource = require.resolve('axe-core/axe.min.js');
for (const target of AXE_PAGES) {
  const label = `${target.role || 'public'} ${target.path}`;
  const entry = { page: label, url: target.path, ok: false, violations: [], other_violations: [], error: null };
  let context;
  try {
    const opened = await openPage({ bypassCSP: true });
    context = opened.context;
    const page = opened.page;
    if (target.role) {
      await signIn(page, target.role);
    }
    const response = await page.goto(`${BASE}${target.path}`);
    check(response && response.status() === 200, `${target.path} answered ${response && response.status()}`);
    await page.addScriptTag({ path: axeSource });
    const report = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
    for (const violation of report.violations) {
      const summary = {
        id: violation.id,
        impact: violation.impact,
        help: violation.help,
        help_url: violation.helpUrl,
        nodes: violation.nodes.length,
        targets: violation.nodes.slice(0, 5).map((node) => node.target.join(' ')),
      };
      if (FAILING_IMPACTS.has(violation.impact)) {
        entry.violations.push(summary);
      } else {
        entry.other_violations.push({ id: summary.id, impact: summary.impact, nodes: summary.nodes });
      }
    }
    entry.ok = entry.violations.length === 0;
  } catch (err) {
    entry.error = redact(err.message);
  }
  if (context) {
    await context.close().catch(() => {});
  }
  results.axe.push(entry);
  const found = entry.violations.map((v) => `${v.impact} ${v.id} (${v.nodes}): ${v.help} [${v.targets.join(' | ')}]`);
  console.log(`${entry.ok ? 'ok  ' : 'FAIL'} axe ${label}${entry.error ? `: ${entry.error}` : ''}`
    + (found.length ? `\n    ${found.join('\n    ')}` : '')
    + (entry.other_violations.length
      ? ` (minor/moderate: ${entry.other_violations.map((v) => v.id).join(', ')})` : ''));
}

// ---------------------------------------------------------------------------------
// The end.

for (const context of apiContexts.values()) {
  await context.dispose().catch(() => {});
}
await browser.close().catch(() => {});

results.ok = results.journeys.length > 0
  && results.journeys.every((entry) => entry.ok)
  && results.axe.every((entry) => entry.ok);
await writeResults();
for (const warning of results.warnings) {
  console.log(`warning: ${warning}`);
}
for (const shot of results.screenshots) {
  console.log(`screenshot ${shot.role}: ${shot.path}`);
}
console.log(results.ok ? 'all journeys and accessibility checks passed' : 'FAILED: see above');
process.exit(results.ok ? 0 : 1);
