/**
 * The three ways in, turned into candidates for the file set: a file chooser's FileList (names only), a
 * folder chooser's FileList (webkitRelativePath: "CD/77654033/CR1/6154") and a drop (DataTransfer: whole
 * folders are walked with webkitGetAsEntry; a drop of plain files, or a browser without entries, uses files).
 */
import type { Candidate, Source } from './file-set.ts';

export function fromFileList(list: FileList | File[], source: Source): Candidate[] {
  return Array.from(list, (file) => ({ file, path: file.webkitRelativePath || file.name, source }));
}

function readAllEntries(dir: FileSystemDirectoryEntry): Promise<FileSystemEntry[]> {
  const reader = dir.createReader();
  const all: FileSystemEntry[] = [];
  return new Promise((resolve) => {
    const next = () =>
      reader.readEntries(
        (batch) => {
          if (!batch.length) return resolve(all);
          all.push(...batch);
          next(); // readEntries returns at most ~100 entries per call
        },
        () => resolve(all),
      );
    next();
  });
}

function fileOf(entry: FileSystemFileEntry): Promise<File | null> {
  return new Promise((resolve) => entry.file(resolve, () => resolve(null)));
}

async function walk(entry: FileSystemEntry, out: Candidate[]): Promise<void> {
  if (entry.isFile) {
    const file = await fileOf(entry as FileSystemFileEntry);
    if (file) out.push({ file, path: entry.fullPath.replace(/^\/+/, '') || file.name, source: 'drop' });
  } else if (entry.isDirectory) {
    for (const child of await readAllEntries(entry as FileSystemDirectoryEntry)) await walk(child, out);
  }
}

/**
 * Candidates from a drop. Must be called synchronously in the drop handler: the DataTransfer's items are only
 * readable during the event; the walk itself continues afterwards.
 */
export function fromDataTransfer(dt: DataTransfer): Promise<Candidate[]> {
  const entries: FileSystemEntry[] = [];
  const loose: File[] = [];
  for (const item of Array.from(dt.items ?? [])) {
    if (item.kind !== 'file') continue;
    const entry = typeof item.webkitGetAsEntry === 'function' ? item.webkitGetAsEntry() : null;
    if (entry) entries.push(entry);
    else {
      const f = item.getAsFile();
      if (f) loose.push(f);
    }
  }
  if (!entries.length && !loose.length && dt.files?.length) loose.push(...Array.from(dt.files));
  return (async () => {
    const out: Candidate[] = loose.map((file) => ({ file, path: file.name, source: 'drop' as const }));
    for (const e of entries) await walk(e, out);
    return out;
  })();
}
