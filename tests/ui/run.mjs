// Drives vcproxy's web view (/ui/) in Debian's headless Chromium, for tests/ui.rs.
//
// Protocol: line-delimited JSON. The first line on stdin is the run's spec:
//   {"url": "http://127.0.0.1:PORT", "user": "...", "password": "...",
//    "filter": {"services": [...], "status": [...], "vcenters": [...]},
//    "screenshot": "/path/ui.png", "timeout_ms": 30000}
// Then every step prints one line on stdout, {"step": NAME, ...what was seen}; at
// "filled" the script waits for one line on stdin,
//   {"go": true, "vcenter": "vc1", "task": ID, "status": "SUCCEEDED", "message": "..."}
// (the Rust side has moved the simulators on), then waits for that row to show that
// status and description. It ends with {"step": "done"} and exit code 0, or
// {"step": "error", "at": STEP, "message": ...} and exit code 1. What was seen is
// reported, not judged: the Rust side asserts on it (it knows what the simulators
// hold). Diagnostics go to stderr.
//
// Chromium is Debian's (/usr/bin/chromium, or $VCPROXY_CHROMIUM): playwright-core
// downloads no browser. It starts with a fresh profile and with its background
// networking off (this machine's network is closed; nothing leaves loopback).

import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const CHROMIUM = process.env.VCPROXY_CHROMIUM || '/usr/bin/chromium';
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

async function readLine(what) {
  const { value, done } = await lines.next();
  if (done) throw new Error(`stdin closed while waiting for ${what}`);
  return JSON.parse(value);
}

function emit(obj) {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

function log(...args) {
  console.error('[ui/run.mjs]', ...args);
}

// Runs in the page before its own scripts (injected by the DevTools protocol, so the
// page's CSP does not apply to it): records dialogs, CSP violations and errors.
function pageHooks() {
  const seen = { alerts: [], violations: [], errors: [] };
  Object.defineProperty(window, '__vcproxyTest', { value: seen });
  for (const name of ['alert', 'confirm', 'prompt']) {
    window[name] = (msg) => {
      seen.alerts.push(`${name}(${String(msg)})`);
      return null;
    };
  }
  document.addEventListener('securitypolicyviolation', (e) => {
    seen.violations.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`);
  });
  window.addEventListener('error', (e) => {
    if (e.target && e.target !== window && e.target.tagName) {
      seen.errors.push(`load error: <${e.target.tagName.toLowerCase()}> ${e.target.src || e.target.href || ''}`);
    } else {
      seen.errors.push(`error: ${e.message}`);
    }
  }, true);
}

/** The cells run.mjs reports for each row, in this order. */
const FIELDS = ['vcenter', 'task', 'status', 'operation', 'target', 'user', 'progress',
  'start', 'end', 'description', 'error'];

/** A row as an object with FIELDS' keys in FIELDS' order (for comparing as JSON). */
function normal(row) {
  return Object.fromEntries(FIELDS.map((f) => [f, row[f] === undefined ? null : row[f]]));
}

/** Rows in a fixed order, as one string to compare. */
function tableKey(rows) {
  return JSON.stringify(rows.map(normal).sort((a, b) =>
    (a.vcenter + '\u0000' + a.task < b.vcenter + '\u0000' + b.task ? -1 : 1)));
}

/** What the page shows now: every row's cells, the counts, the connection state. */
async function observe(page) {
  return page.evaluate(() => {
    const rows = Array.from(document.querySelectorAll('#task-rows tr'));
    const text = (tr, sel) => {
      const c = tr.querySelector(sel);
      return c ? c.textContent : null;
    };
    const table = rows.map((tr) => ({
      vcenter: text(tr, '.c-vcenter'),
      task: tr.dataset.task,
      status: text(tr, '.c-status'),
      operation: text(tr, '.c-operation .op'),
      target: text(tr, '.c-target'),
      user: text(tr, '.c-user'),
      progress: text(tr, '.c-progress'),
      start: text(tr, '.c-start'),
      end: text(tr, '.c-end'),
      description: text(tr, '.c-desc'),
      error: text(tr, '.c-error'),
    }));
    const chips = (sel, key) => Object.fromEntries(
      Array.from(document.querySelectorAll(sel)).map((c) => [
        c.dataset[key],
        Number(c.querySelector('.count').textContent),
      ]),
    );
    return {
      rows: rows.length,
      table,
      chips_per_vcenter: chips('#counts-vcenters [data-vcenter]', 'vcenter'),
      chips_per_status: chips('#counts-status [data-status]', 'status'),
      conn: document.getElementById('conn').dataset.state,
      snapshots: Number(document.getElementById('tasks').dataset.snapshots || 0),
      login_visible: !document.getElementById('login-view').hidden,
      app_visible: !document.getElementById('app-view').hidden,
      alerts: window.__vcproxyTest.alerts.slice(),
      violations: window.__vcproxyTest.violations.slice(),
      errors: window.__vcproxyTest.errors.slice(),
    };
  });
}

/** Waits until the table has shown more than `after` snapshots and the stream is live. */
async function waitForSnapshot(page, after, timeout) {
  await page.waitForFunction(
    (n) => Number(document.getElementById('tasks').dataset.snapshots || 0) > n &&
      document.getElementById('conn').dataset.state === 'live',
    after,
    { timeout },
  );
}

async function snapshots(page) {
  return page.evaluate(() => Number(document.getElementById('tasks').dataset.snapshots || 0));
}

async function main() {
  const spec = await readLine('the spec');
  const timeout = spec.timeout_ms || 30000;
  let step = 'launch';
  const profile = mkdtempSync(join(tmpdir(), 'vcproxy-ui-chromium-'));
  let context;
  let page;
  const requests = [];
  const consoleErrors = [];
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ARGS,
      viewport: { width: 1440, height: 900 },
      deviceScaleFactor: 1,
      timezoneId: 'UTC',
      locale: 'en-US',
    });
    context.setDefaultTimeout(timeout);
    await context.addInitScript(pageHooks);
    page = context.pages()[0] || await context.newPage();
    page.on('request', (r) => requests.push(r.url()));
    page.on('console', (m) => {
      if (m.type() === 'error') consoleErrors.push(m.text());
    });
    page.on('pageerror', (e) => consoleErrors.push(`pageerror: ${e.message}`));
    page.on('dialog', (d) => {
      consoleErrors.push(`dialog: ${d.type()} ${d.message()}`);
      d.dismiss().catch(() => {});
    });

    // The page, and the log-in form (no session yet).
    step = 'open';
    const resp = await page.goto(`${spec.url}/ui/`);
    const headers = resp.headers();
    await page.locator('#login-view').waitFor({ state: 'visible' });
    emit({
      step: 'opened',
      status: resp.status(),
      csp: headers['content-security-policy'] || null,
      content_type: headers['content-type'] || null,
    });

    // A wrong password is refused, with the proxy's message.
    step = 'login_refused';
    await page.fill('#login-user', spec.user);
    await page.fill('#login-password', `${spec.password}-wrong`);
    await page.click('#login-submit');
    await page.locator('#login-error').waitFor({ state: 'visible' });
    emit({
      step: 'login_refused',
      error: await page.textContent('#login-error'),
      app_visible: await page.isVisible('#app-view'),
    });

    // The right one: the table fills with every vCenter's tasks.
    step = 'login';
    await page.fill('#login-password', spec.password);
    await page.click('#login-submit');
    await page.locator('#app-view').waitFor({ state: 'visible' });
    await waitForSnapshot(page, 0, timeout);

    // The spec's filter, through the form.
    step = 'filter';
    const f = spec.filter;
    await page.fill('#f-services', f.services.join(',\n'));
    for (const [box, wanted] of [['#f-status', f.status], ['#f-vcenters', f.vcenters]]) {
      for (const input of await page.locator(`${box} input[type=checkbox]`).all()) {
        await input.setChecked(wanted.includes(await input.inputValue()));
      }
    }
    const before = await snapshots(page);
    await page.click('#f-apply');
    await waitForSnapshot(page, before, timeout);
    // Events that arrived with the snapshot are rendered within 30 ms.
    await page.waitForTimeout(200);

    step = 'filled';
    const cookies = await context.cookies(spec.url);
    const session = cookies.find((c) => c.name === 'vcproxy_ui');
    const filled = await observe(page);
    emit({
      step: 'filled',
      ...filled,
      vcenter_boxes: await page.locator('#f-vcenters input').evaluateAll((l) => l.map((i) => i.value)),
      cookie: session
        ? { http_only: session.httpOnly, same_site: session.sameSite, secure: session.secure, path: session.path }
        : null,
      cookie_in_js: await page.evaluate(() => document.cookie.includes('vcproxy_ui')),
      session_in_url: Boolean(session) && requests.some((u) => u.includes(session.value)),
      watch_urls: requests.filter((u) => u.includes('/tasks/watch')),
    });

    // The Rust side moves the simulators on, then says which row must change.
    step = 'wait_go';
    const go = await readLine('go');
    if (!go.go) throw new Error(`not a go: ${JSON.stringify(go)}`);
    step = 'changed';
    await page.waitForFunction(
      ({ vcenter, task, status, message }) => {
        const tr = Array.from(document.querySelectorAll('#task-rows tr'))
          .find((r) => r.dataset.vcenter === vcenter && r.dataset.task === task);
        return Boolean(tr) && tr.dataset.status === status &&
          (message === undefined || message === null ||
            tr.querySelector('.c-desc').textContent === message);
      },
      go,
      { timeout },
    );
    // The rest of the table catches up (every vCenter's next poll): wait until it is
    // what the Rust side expects, or report what it shows after the timeout.
    if (Array.isArray(go.expect_rows)) {
      const want = tableKey(go.expect_rows);
      const deadline = Date.now() + timeout;
      while (Date.now() < deadline && tableKey((await observe(page)).table) !== want) {
        await page.waitForTimeout(100);
      }
    }
    // Anything the hostile text could have started (an image load, its onerror) has
    // had time to happen.
    await page.waitForTimeout(300);
    const row = await page.evaluate(({ vcenter, task }) => {
      const tr = Array.from(document.querySelectorAll('#task-rows tr'))
        .find((r) => r.dataset.vcenter === vcenter && r.dataset.task === task);
      const cell = (c) => tr.querySelector(c);
      return {
        status: tr.dataset.status,
        status_text: cell('.c-status').textContent,
        description: cell('.c-desc').textContent,
        description_html: cell('.c-desc').innerHTML,
        description_children: cell('.c-desc').children.length,
        error: cell('.c-error').textContent,
        end: cell('.c-end').textContent,
        progress: cell('.c-progress').textContent,
      };
    }, go);
    emit({
      step: 'changed',
      row,
      img_in_table: await page.locator('#tasks img').count(),
      img_in_page: await page.locator('img').count(),
      ...(await observe(page)),
    });

    // The screenshot the README shows.
    step = 'screenshot';
    if (spec.screenshot) {
      await page.screenshot({ path: spec.screenshot, fullPage: true });
      emit({ step: 'screenshot', path: spec.screenshot });
    }

    // A reload keeps the session (the cookie): no log-in form, the table fills again.
    step = 'reload';
    await page.reload();
    await page.locator('#app-view').waitFor({ state: 'visible' });
    await waitForSnapshot(page, 0, timeout);
    await page.waitForTimeout(200);
    const reloaded = await observe(page);
    emit({ step: 'reloaded', rows: reloaded.rows, login_visible: reloaded.login_visible, conn: reloaded.conn });

    // Log-out without the CSRF token is refused; the button's (with it) works.
    step = 'csrf';
    const forged = await page.evaluate(async () => {
      const r = await fetch('/ui/logout', { method: 'POST', credentials: 'same-origin' });
      return r.status;
    });
    const stillIn = await page.evaluate(async () => (await fetch('/ui/session')).status);
    emit({ step: 'csrf', logout_without_token: forged, session_after: stillIn });

    step = 'logout';
    await page.click('#logout');
    await page.locator('#login-view').waitFor({ state: 'visible' });
    const after = await page.evaluate(async (q) => ({
      session: (await fetch('/ui/session')).status,
      tasks: (await fetch(`/vcproxy/v1/tasks?${q}`)).status,
    }), f.services.map((s) => `filter_spec.services=${encodeURIComponent(s)}`).join('&'));
    const end = await observe(page);
    emit({
      step: 'logged_out',
      session_status: after.session,
      tasks_status: after.tasks,
      conn: end.conn,
      rows: end.rows,
      console_errors: consoleErrors,
      alerts: end.alerts,
      violations: end.violations,
      errors: end.errors,
    });

    step = 'close';
    await context.close();
    emit({ step: 'done' });
  } catch (e) {
    log(`failed at ${step}:`, e && e.stack ? e.stack : e);
    let shot = null;
    if (page && spec.screenshot) {
      shot = spec.screenshot.replace(/\.png$/, '') + '.error.png';
      await page.screenshot({ path: shot, fullPage: true }).catch(() => { shot = null; });
    }
    emit({
      step: 'error',
      at: step,
      message: String(e && e.message ? e.message : e),
      screenshot: shot,
      console_errors: consoleErrors,
    });
    if (context) await context.close().catch(() => {});
    process.exitCode = 1;
  } finally {
    rmSync(profile, { recursive: true, force: true });
  }
}

main().then(() => process.exit(process.exitCode || 0));
