// A run owns its output_dir: one process at a time (a lock file with the owner's pid and host,
// stale locks detected), a run.json that records the settings the run was started with (so a
// resume continues only the same run, and says what differs), no silent retraining over a
// finished or unfinished run, and no leftovers of killed checkpoint writes.
import { createHash } from 'node:crypto';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { TrainConfig } from './config.js';
import { listCheckpoints } from './checkpoint.js';
import { MixtuneError } from '../util/errors.js';
import { writeJsonAtomic } from '../util/fs.js';

export const LOCK_FILE = '.mixtune.lock';
export const RUN_FILE = 'run.json';

interface LockInfo {
  pid: number;
  host: string;
  started: string;
}

export interface RunRecord {
  /** sha256 of `settings` (16 hex digits). */
  fingerprint: string;
  /** The config keys that decide the run's trajectory, flattened ("training.lr": 0.002). */
  settings: Record<string, unknown>;
  started: string;
  finished: boolean;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'; // exists, owned by someone else
  }
}

/**
 * Takes the output folder's lock (created with O_EXCL, so two runs cannot both get it). A lock
 * whose process is gone (same host) is stale and replaced. Returns the release function; it also
 * runs when the process exits.
 */
export function lockRunDir(dir: string): () => void {
  const path = join(dir, LOCK_FILE);
  const me: LockInfo = { pid: process.pid, host: hostname(), started: new Date().toISOString() };
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, 'wx');
      writeSync(fd, JSON.stringify(me) + '\n');
      closeSync(fd);
      let released = false;
      const release = (): void => {
        if (released) return;
        released = true;
        process.removeListener('exit', release);
        try {
          const cur = JSON.parse(readFileSync(path, 'utf8')) as LockInfo;
          if (cur.pid === me.pid && cur.host === me.host) rmSync(path, { force: true });
        } catch {
          /* already gone */
        }
      };
      process.on('exit', release);
      return release;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new MixtuneError(`${path}: cannot create the lock file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
      }
    }
    let owner: LockInfo | null = null;
    try {
      owner = JSON.parse(readFileSync(path, 'utf8')) as LockInfo;
    } catch {
      owner = null; // half-written or garbage: treat as stale
    }
    if (owner && owner.host === me.host && owner.pid !== me.pid && alive(owner.pid)) {
      throw new MixtuneError(`output_dir ${dir} is in use by another mixtune train (pid ${owner.pid}, since ${owner.started}); wait for it, or use another output_dir`);
    }
    if (owner && owner.host !== me.host) {
      throw new MixtuneError(`output_dir ${dir} is locked by a run on host ${owner.host} (pid ${owner.pid}, since ${owner.started}); if that run is gone, delete ${path}`);
    }
    rmSync(path, { force: true }); // stale: its process is gone
  }
  throw new MixtuneError(`${path}: cannot take the lock`);
}

/** Settings that decide what a run trains (not where it writes or how often it logs / saves). */
export function runSettings(cfg: TrainConfig): Record<string, unknown> {
  const flat: Record<string, unknown> = {};
  const walk = (v: unknown, key: string): void => {
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
      for (const [k, x] of Object.entries(v as Record<string, unknown>)) walk(x, key ? `${key}.${k}` : k);
    } else if (v !== undefined) flat[key] = v;
  };
  walk(cfg, '');
  for (const k of ['output_dir', 'training.log_every', 'training.eval_every', 'training.save_every', 'training.keep_last', 'data.skip_bad']) delete flat[k];
  return flat;
}

export function fingerprintSettings(settings: Record<string, unknown>): string {
  const keys = Object.keys(settings).sort();
  return createHash('sha256').update(JSON.stringify(keys.map((k) => [k, settings[k]]))).digest('hex').slice(0, 16);
}

export function readRunRecord(dir: string): RunRecord | null {
  const p = join(dir, RUN_FILE);
  if (!existsSync(p)) return null;
  try {
    return JSON.parse(readFileSync(p, 'utf8')) as RunRecord;
  } catch (e) {
    throw new MixtuneError(`${p}: corrupt run record (${(e as Error).message}); pass --overwrite to start over`);
  }
}

export function writeRunRecord(dir: string, r: RunRecord): void {
  writeJsonAtomic(join(dir, RUN_FILE), r);
}

/** "training.lr: 0.002 in the checkpoint's run, 0.003 now; ..." for the keys that differ. */
export function describeDifferences(before: Record<string, unknown>, now: Record<string, unknown>): string {
  const keys = [...new Set([...Object.keys(before), ...Object.keys(now)])].sort();
  const diffs = keys.filter((k) => JSON.stringify(before[k]) !== JSON.stringify(now[k]))
    .map((k) => `${k}: ${before[k] === undefined ? 'unset' : JSON.stringify(before[k])} in the run, ${now[k] === undefined ? 'unset' : JSON.stringify(now[k])} now`);
  return diffs.slice(0, 4).join('; ') + (diffs.length > 4 ? `; and ${diffs.length - 4} more` : '');
}

/** What the output folder already holds of a run. */
function usedBy(dir: string): { finished: boolean; checkpoints: number; anything: boolean } {
  const rec = readRunRecord(dir);
  const ckpts = listCheckpoints(dir).length;
  const anything = ckpts > 0 || existsSync(join(dir, 'final')) || existsSync(join(dir, 'metrics.jsonl'));
  return { finished: rec?.finished === true || (rec === null && existsSync(join(dir, 'final'))), checkpoints: ckpts, anything };
}

/** Files of a run that `--overwrite` replaces (nothing else in the folder is touched). */
function clearRun(dir: string): void {
  for (const name of readdirSync(dir)) {
    if (/^(checkpoint-\d+|final|adapter|metrics\.jsonl|summary\.json|run\.json)$/.test(name) || /^\.checkpoint-\d+\.tmp-\d+$/.test(name) || /^final\.(tmp|old)-/.test(name)) {
      rmSync(join(dir, name), { recursive: true, force: true });
    }
  }
}

/** Leftovers of checkpoint / export writes killed halfway (never a live process's: we hold the lock). */
export function removeStaleTemporaries(dir: string): number {
  let n = 0;
  for (const name of readdirSync(dir)) {
    if (/^\.checkpoint-\d+\.tmp-\d+$/.test(name) || /^(final|adapter)\.(tmp|old)-[0-9a-f]+$/.test(name)) {
      rmSync(join(dir, name), { recursive: true, force: true });
      n++;
    }
  }
  return n;
}

/**
 * Decides what a new `mixtune train` may do with its output folder (lock already held):
 * - resume: the folder's run must have the same settings (else the differing keys are named);
 * - overwrite: the previous run's files are removed;
 * - neither: a folder that holds a finished or unfinished run is refused, naming --resume / --overwrite.
 * Returns the run's record; the caller writes it (writeRunRecord) when training starts, so a run
 * that fails before its first step leaves the folder as it was.
 */
export function claimRunDir(dir: string, cfg: TrainConfig, o: { resume: boolean; overwrite: boolean }): RunRecord {
  const settings = runSettings(cfg);
  const fingerprint = fingerprintSettings(settings);
  if (o.resume) {
    const rec = readRunRecord(dir);
    if (rec && rec.fingerprint !== fingerprint) {
      throw new MixtuneError(`--resume: ${dir} holds a run with other settings (${describeDifferences(rec.settings, settings)}); ` +
        'resume with the same config, or start over with --overwrite');
    }
    return rec ?? { fingerprint, settings, started: new Date().toISOString(), finished: false };
  }
  const used = usedBy(dir);
  if (used.anything && !o.overwrite) {
    if (used.finished) throw new MixtuneError(`output_dir ${dir} holds a finished run (final/); pass --overwrite to replace it, or choose another output_dir`);
    throw new MixtuneError(`output_dir ${dir} holds an unfinished run${used.checkpoints ? ` (${used.checkpoints} checkpoint${used.checkpoints > 1 ? 's' : ''})` : ''}; ` +
      'pass --resume to continue it, or --overwrite to start over');
  }
  if (o.overwrite) clearRun(dir);
  return { fingerprint, settings, started: new Date().toISOString(), finished: false };
}
