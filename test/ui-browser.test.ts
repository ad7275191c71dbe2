// `mixtune ui` in a real browser (Debian's headless chromium via playwright-core, no download):
// the page lists a demo's runs and draws their loss curves, a `mixtune train` started while the
// page is open appears as running and its curve grows, the Results view shows the demo's table and
// responses, the Rows view draws a MISO config's row and attention matrix (and the recipes side by
// side), Chat answers once in each mode, and the console stays free of errors.
// MIXTUNE_UI_SCREENSHOTS=DIR saves a screenshot of each view there (docs/ui-*.png).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../src/util/paths.js';
import { runCli } from './util.js';

const CHROMIUM = process.env.MIXTUNE_CHROMIUM ?? '/usr/bin/chromium';
const bin = join(packageRoot(), 'bin', 'mixtune.js');
const examples = join(packageRoot(), 'examples');
const shots = process.env.MIXTUNE_UI_SCREENSHOTS;
const missing = !existsSync(CHROMIUM);
// CI must run it: a missing browser is a failure there, a skip elsewhere
const skip = missing && process.env.CI !== 'true' ? `no ${CHROMIUM} (apt-get install chromium)` : false;

interface Proc {
  proc: ChildProcess;
  err: () => string;
  exited: Promise<number | null>;
}

function start(args: string[]): Proc {
  const proc = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  proc.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  proc.stdout!.on('data', () => {});
  const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
  return { proc, err: () => err, exited };
}

let dir: string;
let ui: Proc | null = null;
let train: Proc | null = null;

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'mixtune-ui-browser-'));
});
after(async () => {
  for (const p of [train, ui]) {
    if (p && p.proc.exitCode === null) {
      p.proc.kill('SIGTERM');
      await p.exited;
    }
  }
  rmSync(dir, { recursive: true, force: true });
});

test('mixtune ui in headless chromium: runs (live), results, rows, chat; no console errors', { skip, timeout: 240_000 }, async () => {
  assert.ok(!missing, `${CHROMIUM} is missing: apt-get install -y --no-install-recommends chromium (CI=true requires it)`);
  const { chromium } = await import('playwright-core');
  const runs = join(dir, 'runs');
  mkdirSync(runs);
  // a demo folder: two recipe runs with metrics, responses and results.json
  const demo = runCli('demo', '--out', join(runs, 'demo'), '--recipes', 'sft,miso-para', '--steps', '3', '--n-train', '24', '--n-test', '6', '--max-new-tokens', '16', '--batch', '4', '--no-progress');
  assert.equal(demo.code, 0, demo.stderr);

  ui = start(['ui', '--port', '0', '--runs', runs, '--config', join(examples, 'miso-para-stories260K.yaml'), '--model', 'stories260K', '--quiet']);
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`mixtune ui did not start:\n${ui!.err()}`)), 30_000);
    const check = (): void => {
      const m = /mixtune ui: (http:\/\/\S+\/) /.exec(ui!.err());
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    };
    ui!.proc.stderr!.on('data', check);
    void ui!.exited.then((code) => reject(new Error(`mixtune ui exited with ${code}:\n${ui!.err()}`)));
  });

  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
  const problems: string[] = [];
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(`console: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.setDefaultTimeout(60_000);

    // ---- Runs: the demo's runs and their drawn loss curves
    await page.goto(url);
    await page.locator('a.run-name', { hasText: 'demo/sft' }).waitFor();
    await page.locator('a.run-name', { hasText: 'demo/miso-para' }).waitFor();
    await page.locator('.chart path.series[data-run$="demo/sft"]').first().waitFor();
    const demoPoints = Number(await page.locator('.chart path.series[data-run$="demo/sft"]').first().getAttribute('data-points'));
    assert.equal(demoPoints, 3, 'the demo run logged 3 steps');

    // ---- a training run started now: appears as running, its curve grows
    train = start(['train', '--config', join(examples, 'sft-stories260K.yaml'), '--max-steps', '14', '--output-dir', join(runs, 'sft-live'), '--no-progress', '--set', 'training.eval_every=5', '--set', 'training.save_every=0']);
    const live = page.locator('.chart path.series[data-run$="sft-live"]').first();
    await live.waitFor();
    await page.locator('tr[data-run="0/sft-live"] .badge.running').waitFor();
    const pointsNow = async (): Promise<number> => Number(await live.getAttribute('data-points'));
    await page.waitForFunction(() => Number(document.querySelector('.chart path.series[data-run$="sft-live"]')?.getAttribute('data-points') ?? 0) >= 2);
    const early = await pointsNow();
    await page.waitForFunction((n) => Number(document.querySelector('.chart path.series[data-run$="sft-live"]')?.getAttribute('data-points') ?? 0) > n + 2, early);
    const later = await pointsNow();
    assert.ok(later > early, `the live curve grew (${early} -> ${later} points)`);
    if (shots) await page.screenshot({ path: join(shots, 'ui-runs.png'), fullPage: false });
    assert.equal(await train.exited, 0, train.err());
    await page.locator('tr[data-run="0/sft-live"] .badge.finished').waitFor();
    await page.locator('a.run-name', { hasText: 'sft-live' }).click();
    await page.locator('.run-details', { hasText: 'training.max_steps' }).waitFor();

    // ---- Results: the demo table, bars, per-type scores, responses with verdicts
    await page.click('nav a[data-view="results"]');
    await page.locator('table.results td', { hasText: 'miso-para' }).first().waitFor();
    assert.equal(await page.locator('table.results tbody tr').count(), 3, 'base, sft, miso-para');
    assert.ok(await page.locator('#view-results svg rect.bar').count() >= 3 * 5);
    assert.ok(await page.locator('table.per-type tbody tr').count() > 0);
    await page.locator('table.results a', { hasText: 'sft' }).first().click();
    await page.locator('.responses tbody tr').first().waitFor();
    assert.equal(await page.locator('.responses tbody tr').count(), 6);
    await page.locator('.responses .ok, .responses .no').first().waitFor();
    if (shots) await page.screenshot({ path: join(shots, 'ui-results.png'), fullPage: true });

    // ---- Rows: a MISO row, coloured by part, with loss tokens and the attention matrix
    await page.click('nav a[data-view="rows"]');
    await page.locator('.rows-panel canvas.matrix').first().waitFor();
    const toks = await page.locator('.rows-panel').first().locator('.tok').count();
    assert.ok(toks > 50, `${toks} tokens drawn`);
    assert.ok(await page.locator('.rows-panel').first().locator('.tok.loss').count() > 0, 'loss tokens marked');
    const groupsText = await page.locator('.rows-panel .groups-text').first().textContent();
    assert.match(groupsText ?? '', /MISO, \d inputs, uniform weighting/);
    assert.match(groupsText ?? '', /input 1 +pos 0\.\./, 'para: every input starts at position 0');
    await page.locator('.rows-panel').first().locator('.tok.loss').last().click();
    await page.locator('.rows-panel .groups-text', { hasText: /sees \d+ keys: uniform over \d inputs/ }).first().waitFor();
    // an output query's row of the matrix holds the colours of several inputs and the output
    const colours = await page.locator('.rows-panel canvas.matrix').first().evaluate((c: HTMLCanvasElement) => {
      const g = c.getContext('2d')!;
      // two queries above the last one (the selected query's row is outlined)
      const T = Number(c.dataset.tokens);
      const y = Math.floor(((T - 3) * c.height) / T);
      const d = g.getImageData(0, y, c.width, 1).data;
      const seen = new Set<string>();
      for (let i = 0; i < d.length; i += 4) if (!(d[i] === 255 && d[i + 1] === 255 && d[i + 2] === 255)) seen.add(`${d[i]},${d[i + 1]},${d[i + 2]}`);
      return seen.size;
    });
    assert.ok(colours >= 3, `the last query sees inputs and output (${colours} colours)`);
    if (shots) await page.screenshot({ path: join(shots, 'ui-rows.png'), fullPage: false });
    await page.click('text=compare recipes side by side');
    await page.waitForFunction(() => document.querySelectorAll('.rows-panel canvas.matrix').length === 5, undefined, { timeout: 90_000 });
    for (const v of ['causal', 'packed', 'moi', 'miso-para', 'miso-succ']) assert.equal(await page.locator(`.rows-panel[data-variant="${v}"] canvas.matrix`).count(), 1, v);
    if (shots) await page.screenshot({ path: join(shots, 'ui-rows-compare.png'), fullPage: true });

    // ---- Chat: one conversation turn, one MISO answer
    await page.click('nav a[data-view="chat"]');
    await page.selectOption('#view-chat select', 'model');
    await page.fill('.chat-input', 'Once upon a time');
    await page.click('button.send');
    await page.locator('.msg.assistant[data-done="true"]').first().waitFor();
    assert.ok(((await page.locator('.msg.assistant').first().textContent()) ?? '').length > 0, 'an answer');
    await page.locator('.model-status', { hasText: 'loaded: stories260K' }).waitFor();
    await page.check('input[name="chat-mode"][value="miso"]');
    await page.click('button.miso-send');
    await page.locator('.miso-answer[data-done="true"]').waitFor();
    if (shots) await page.screenshot({ path: join(shots, 'ui-chat.png'), fullPage: false });
  } finally {
    await browser.close();
  }
  assert.deepEqual(problems, []);
  ui.proc.kill('SIGTERM');
  assert.equal(await ui.exited, 0, 'SIGTERM: a clean exit');
});
