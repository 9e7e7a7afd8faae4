/** The header worker: reads DICOM headers (inspect.ts, dcmjs) off the page's thread, a batch at a time. */
import { inspectFile } from './inspect.ts';
import type { HeaderResult } from './types.ts';

const scope = self as unknown as { onmessage: ((e: MessageEvent) => void) | null; postMessage(message: unknown): void };

scope.onmessage = (e: MessageEvent) => {
  const { batch } = e.data as { batch: { id: number; file: File }[] };
  Promise.all(
    batch.map(async ({ id, file }) => {
      let result: HeaderResult;
      try {
        result = await inspectFile(file);
      } catch (err) {
        result = { kind: 'unreadable', reason: err instanceof Error ? err.message : String(err) };
      }
      return { id, result };
    }),
  ).then((results) => scope.postMessage({ results }));
};
