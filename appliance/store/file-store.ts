/**
 * The file store: where instance files live, and the durable way to put them there.
 * A file is committed by: fsync the staged file, rename it into place (same file system), fsync the
 * directory (and any directory created on the way). Only after that may the index row be committed.
 *
 *   <dataDir>/store/<aa>/<Study UID>/<SOP UID>.dcm     committed instances, a folder per study (aa from a hash
 *                                                      of the Study Instance UID spreads studies over 256 folders)
 *   <dataDir>/staging/incoming/                        files being received; swept at start
 *   <dataDir>/held/                                    uploads waiting for the malware scanner
 *   <dataDir>/quarantine/                              refused files (malware), kept for the admin
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';

export interface FileStore {
  readonly root: string;
  readonly storeDir: string;
  readonly stagingDir: string;
  readonly heldDir: string;
  readonly quarantineDir: string;
  /** A new unique path in staging (not created). */
  stagingPath(suffix?: string): string;
  /** Path, relative to storeDir, where an instance lives. */
  relativePathFor(studyInstanceUID: string, sopInstanceUID: string): string;
  absolute(relative: string): string;
  /**
   * Move a fully written staged file to its place in the store: fsync it (unless already synced), rename it
   * into place, and start the fsync of its directory. Returns the relative path and `durable`, which resolves
   * when the directory entry is on disk: commit the index meanwhile, and acknowledge only after both.
   */
  commit(stagedPath: string, ids: { studyInstanceUID: string; sopInstanceUID: string }, opts?: { alreadySynced?: boolean }): Promise<{ rel: string; durable: Promise<void> }>;
  /**
   * Durably put a fully written staged file in place of a stored one (header rewrite of a stored instance,
   * e.g. a patient merge): fsync it, rename it over `relative` (atomic: a reader or a crash sees the old file
   * or the new one, never a mix), fsync the directory. Resolves once the new file is durable.
   */
  replace(stagedPath: string, relative: string): Promise<void>;
  /** Durably move a file into another area (held, quarantine) under a new name; returns the new path. */
  moveTo(area: 'held' | 'quarantine', file: string, name: string): Promise<string>;
  /** Remove leftovers of interrupted receptions in staging; returns how many were removed. */
  sweepStaging(): number;
  remove(file: string): Promise<void>;
}

export async function fsyncPath(p: string): Promise<void> {
  const fh = await open(p, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** mkdir -p that fsyncs the parent of every directory it creates, so the new entries survive a crash. */
async function ensureDirDurable(dir: string, known: Set<string>): Promise<void> {
  if (known.has(dir)) return;
  try {
    await stat(dir);
  } catch {
    await ensureDirDurable(path.dirname(dir), known);
    try {
      await mkdir(dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    await fsyncPath(path.dirname(dir));
  }
  known.add(dir);
}

export function createFileStore(dataDir: string): FileStore {
  const root = path.resolve(dataDir);
  const storeDir = path.join(root, 'store');
  const stagingDir = path.join(root, 'staging', 'incoming');
  const heldDir = path.join(root, 'held');
  const quarantineDir = path.join(root, 'quarantine');
  for (const d of [storeDir, stagingDir, heldDir, quarantineDir]) mkdirSync(d, { recursive: true });
  const knownDirs = new Set<string>([storeDir, heldDir, quarantineDir]);

  // UIDs are validated (digits and dots, at most 64 characters) before anything is committed: safe names.
  const relativePathFor = (study: string, sop: string) => path.join(createHash('sha1').update(study).digest('hex').slice(0, 2), study, `${sop}.dcm`);

  return {
    root,
    storeDir,
    stagingDir,
    heldDir,
    quarantineDir,
    stagingPath(suffix = '.part') {
      return path.join(stagingDir, `${Date.now().toString(36)}-${randomBytes(6).toString('hex')}${suffix}`);
    },
    relativePathFor,
    absolute(relative) {
      return path.join(storeDir, relative);
    },
    async commit(stagedPath, ids, opts = {}) {
      if (!opts.alreadySynced) await fsyncPath(stagedPath);
      const rel = relativePathFor(ids.studyInstanceUID, ids.sopInstanceUID);
      const dest = path.join(storeDir, rel);
      await ensureDirDurable(path.dirname(dest), knownDirs);
      await rename(stagedPath, dest);
      const durable = fsyncPath(path.dirname(dest));
      durable.catch(() => undefined); // the caller awaits it; never an unhandled rejection meanwhile
      return { rel, durable };
    },
    async replace(stagedPath, relative) {
      await fsyncPath(stagedPath);
      const dest = path.join(storeDir, relative);
      await rename(stagedPath, dest);
      await fsyncPath(path.dirname(dest));
    },
    async moveTo(area, file, name) {
      const dir = area === 'held' ? heldDir : quarantineDir;
      const dest = path.join(dir, name);
      await fsyncPath(file);
      await rename(file, dest);
      await fsyncPath(dir);
      return dest;
    },
    sweepStaging() {
      let n = 0;
      for (const f of readdirSync(stagingDir)) {
        rmSync(path.join(stagingDir, f), { force: true, recursive: true });
        n++;
      }
      return n;
    },
    async remove(file) {
      await rm(file, { force: true });
    },
  };
}
