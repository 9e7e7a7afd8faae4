/**
 * A few header workers (2-4, by the machine's cores) sharing a queue: files go out in small batches, results
 * come back as they are ready, so thousands of files are read in parallel while the page stays responsive.
 * The workers start when the pool is created (the page loads), so the first files do not wait for dcmjs to load.
 */
import type { HeaderResult } from './types.ts';

export interface HeaderPool {
  inspect<T extends { file: File }>(items: T[], onProgress?: (done: number, total: number) => void): Promise<{ item: T; result: HeaderResult }[]>;
  terminate(): void;
}

const BATCH = 32;

export function createHeaderPool(workerUrl: string, size?: number): HeaderPool {
  const n = size ?? Math.max(2, Math.min(4, (navigator.hardwareConcurrency || 4) - 1));
  type Job = { id: number; file: File; resolve: (r: HeaderResult) => void };
  const queue: Job[] = [];
  const inFlight = new Map<Worker, Job[]>();
  const idle: Worker[] = [];
  let nextId = 1;
  let crashes = 0;

  const pump = () => {
    while (idle.length && queue.length) {
      const w = idle.pop()!;
      const batch = queue.splice(0, BATCH);
      inFlight.set(w, batch);
      w.postMessage({ batch: batch.map(({ id, file }) => ({ id, file })) });
    }
  };

  const spawn = () => {
    const w = new Worker(workerUrl);
    w.onmessage = (e: MessageEvent) => {
      const jobs = inFlight.get(w) ?? [];
      inFlight.delete(w);
      const byId = new Map((e.data.results as { id: number; result: HeaderResult }[]).map((r) => [r.id, r.result]));
      for (const j of jobs) j.resolve(byId.get(j.id) ?? { kind: 'unreadable', reason: 'no result' });
      idle.push(w);
      pump();
    };
    w.onerror = (ev) => {
      ev.preventDefault();
      const jobs = inFlight.get(w) ?? [];
      inFlight.delete(w);
      for (const j of jobs) j.resolve({ kind: 'unreadable', reason: 'reader failed' });
      w.terminate();
      // A worker that crashed on a file is replaced; one that cannot even load is not (it would loop).
      if (jobs.length && ++crashes < 20) spawn();
      else for (const j of queue.splice(0)) j.resolve({ kind: 'unreadable', reason: 'reader unavailable' });
      pump();
    };
    idle.push(w);
  };
  for (let i = 0; i < n; i++) spawn();

  return {
    inspect(items, onProgress) {
      let done = 0;
      const total = items.length;
      onProgress?.(0, total);
      const promises = items.map(
        (item) =>
          new Promise<{ item: typeof item; result: HeaderResult }>((resolve) => {
            queue.push({
              id: nextId++,
              file: item.file,
              resolve: (result) => {
                done++;
                onProgress?.(done, total);
                resolve({ item, result });
              },
            });
          }),
      );
      pump();
      return Promise.all(promises);
    },
    terminate() {
      for (const w of [...idle, ...inFlight.keys()]) w.terminate();
      idle.length = 0;
      inFlight.clear();
    },
  };
}
