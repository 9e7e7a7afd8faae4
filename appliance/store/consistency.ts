/**
 * Start-up checks of the store: leftovers in staging are swept, and after an unclean shutdown the index is
 * checked against the store. A file in the store without an index row was never acknowledged (the crash
 * came between rename and the index commit): it is removed. An index row whose file is missing or has the
 * wrong size is reported loudly and its rows removed, so that index and store agree.
 */
import { existsSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from '../log.ts';
import type { FileStore } from './file-store.ts';
import type { StudyIndex } from './study-index.ts';

export interface ConsistencyReport {
  unclean: boolean;
  sweptStaging: number;
  checked: number;
  orphanFilesRemoved: number;
  missingFiles: string[];
}

function* walk(dir: string): Generator<string> {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) yield* walk(p);
    else yield p;
  }
}

export function runningMarker(dataDir: string): string {
  return path.join(dataDir, '.running');
}

/** Run the start-up checks and set the running marker (removed by markCleanShutdown). */
export function checkStore(dataDir: string, store: FileStore, index: StudyIndex, log: Logger): ConsistencyReport {
  const marker = runningMarker(dataDir);
  const unclean = existsSync(marker);
  const report: ConsistencyReport = { unclean, sweptStaging: store.sweepStaging(), checked: 0, orphanFilesRemoved: 0, missingFiles: [] };
  if (report.sweptStaging) log.warn({ files: report.sweptStaging }, 'removed unfinished files from staging (receptions interrupted by a stop)');
  if (unclean) {
    log.warn('the previous run did not shut down cleanly: checking the index against the store');
    const known = new Map<string, number>();
    const bad: number[] = [];
    for (const row of index.allInstanceFiles()) {
      report.checked++;
      known.set(path.join(store.storeDir, row.path), row.size);
      let size = -1;
      try {
        size = statSync(path.join(store.storeDir, row.path)).size;
      } catch {
        /* missing */
      }
      if (size !== row.size) {
        bad.push(row.id);
        report.missingFiles.push(row.sop_uid);
      }
    }
    if (bad.length) {
      log.error({ instances: bad.length, sops: report.missingFiles.slice(0, 20) }, 'indexed instances whose files are missing or damaged; their index rows were removed');
      index.removeInstances(bad);
    }
    for (const f of walk(store.storeDir)) {
      if (!known.has(f)) {
        rmSync(f, { force: true });
        report.orphanFilesRemoved++;
      }
    }
    if (report.orphanFilesRemoved) log.warn({ files: report.orphanFilesRemoved }, 'removed store files that were never acknowledged (no index row)');
  }
  writeFileSync(marker, String(process.pid));
  return report;
}

export function markCleanShutdown(dataDir: string): void {
  rmSync(runningMarker(dataDir), { force: true });
}
