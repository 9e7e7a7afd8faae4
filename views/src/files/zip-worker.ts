/** The ZIP worker: opens one ZIP (zip-reader.ts) off the page's thread and posts its entries back. */
import { readZip, type ZipLimits } from './zip-reader.ts';

const scope = self as unknown as { onmessage: ((e: MessageEvent) => void) | null; postMessage(message: unknown): void };

scope.onmessage = (e: MessageEvent) => {
  const { file, limits } = e.data as { file: File; limits: ZipLimits };
  readZip(file, limits).then(
    (result) => scope.postMessage(result),
    () => scope.postMessage({ ok: false, reason: 'broken' }),
  );
};
