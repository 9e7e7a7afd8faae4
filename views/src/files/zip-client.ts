/** Open a ZIP in a worker of its own (terminated afterwards), so a big archive never blocks the page. */
import type { ZipLimits, ZipResult } from './zip-reader.ts';

export function openZip(workerUrl: string, file: File, limits: ZipLimits): Promise<ZipResult> {
  return new Promise((resolve) => {
    const w = new Worker(workerUrl);
    w.onmessage = (e: MessageEvent) => {
      w.terminate();
      resolve(e.data as ZipResult);
    };
    w.onerror = () => {
      w.terminate();
      resolve({ ok: false, reason: 'broken' });
    };
    w.postMessage({ file, limits });
  });
}
