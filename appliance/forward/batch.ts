/**
 * What one association carries: due jobs of one destination and one study, in queue order, cut at
 * forward.maxInstancesPerAssociation instances and forward.maxBytesPerAssociation bytes. An instance larger
 * than the byte cap still goes (alone), or it could never be sent.
 */

export interface BatchCaps {
  maxInstances: number;
  maxBytes: number;
}

export function takeBatch<T extends { size: number }>(candidates: readonly T[], caps: BatchCaps): T[] {
  const out: T[] = [];
  let bytes = 0;
  for (const c of candidates) {
    if (out.length >= caps.maxInstances) break;
    if (out.length > 0 && bytes + c.size > caps.maxBytes) break;
    out.push(c);
    bytes += c.size;
  }
  return out;
}

/** The key the worker uses to keep one association per destination and study at a time. */
export function groupKey(destination: string, studyUid: string): string {
  return `${destination}\n${studyUid}`;
}
