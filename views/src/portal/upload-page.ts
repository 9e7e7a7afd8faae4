/**
 * The portal page (/upload): Panel 1 (three ways in, plus ZIPs), the reading of headers in workers, the
 * summary of what will not be uploaded, Panel 2, consent and START UPLOAD.
 *
 * Structure (for the upload issue to build on):
 *   - files/file-set.ts holds every added File with its header, grouped by study (`filesForStudies`);
 *   - `selection()` below gives the ticked studies with their Image objects (File + header), comments, contact;
 *   - portal/uploader.ts: the Uploader START UPLOAD hands the selection to (now: the summary only).
 * Nothing is sent to the server before START UPLOAD (after consent): headers are read in this browser only.
 *
 * For tests and measurements, #portal carries data-busy ("true" while files are being read), data-adds
 * (additions completed),
 * data-last-add-files / data-last-add-ms (files and milliseconds of the last addition, until Panel 2 showed
 * them) and data-longest-task-ms (the longest main-thread task seen, a freeze would show there).
 */
import { formatBytes, t } from '../common/i18n.ts';
import { setLangSwitchGuard } from '../common/lang-switch.ts';
import { createHeaderPool } from '../dicom/header-pool.ts';
import { createFileSet, type Candidate, type Report } from '../files/file-set.ts';
import { fromDataTransfer, fromFileList } from '../files/sources.ts';
import { openZip } from '../files/zip-client.ts';
import type { ZipLimits } from '../files/zip-reader.ts';
import { renderPatients, type StudyChoice } from './panel2.ts';
import { createSelectionUploader, type Selection, type Uploader } from './uploader.ts';

export const BUILD_URL = '/static/build/';
const LIST_NAMES = 5;
const EMAIL_RE = /^[^\s@<>"]{1,64}@[^\s@<>"]+\.[^\s@<>"]{2,}$/;
const PHONE_RE = /^\+?[0-9 ().\-/]{6,30}$/;

function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const e = document.getElementById(id);
  if (!e) throw new Error(`#${id} missing from the page`);
  return e as T;
}

function names(list: string[]): string {
  const shown = list.slice(0, LIST_NAMES).join(', ');
  return list.length > LIST_NAMES ? `${shown} ${t('summary.andMore', { count: list.length - LIST_NAMES })}` : shown;
}

function para(text: string, cls = ''): HTMLParagraphElement {
  const p = document.createElement('p');
  if (cls) p.className = cls;
  p.textContent = text;
  return p;
}

export function startUploadPage(opts: { uploader?: Uploader } = {}): void {
  const root = document.getElementById('portal');
  if (!root) return;
  const d = root.dataset;
  const expectedBirthDate = d.birthDate ?? '';
  const remainingBytes = Number(d.remainingBytes ?? Infinity);
  const maxFiles = Number(d.maxFiles ?? Infinity);
  const zipLimits: ZipLimits = { maxEntries: Number(d.zipMaxEntries), maxBytes: Number(d.zipMaxBytes), maxRatio: Number(d.zipMaxRatio) };

  const addFiles = byId<HTMLButtonElement>('add-files');
  const addFolder = byId<HTMLButtonElement>('add-folder');
  const inputFiles = byId<HTMLInputElement>('input-files');
  const inputFolder = byId<HTMLInputElement>('input-folder');
  const drop = byId('drop-zone');
  const progress = byId('add-progress');
  const summary = byId('add-summary');
  const errors = byId('add-errors');
  const clear = byId<HTMLButtonElement>('clear-files');
  const panel2 = byId('panel-check');
  const patientsBox = byId('patients');
  const email = byId<HTMLInputElement>('contact-email');
  const phone = byId<HTMLInputElement>('contact-phone');
  const consent = byId<HTMLInputElement>('consent');
  const start = byId<HTMLButtonElement>('start-upload');
  const startHint = byId('start-hint');
  const selectionSummary = byId('selection-summary');
  const uploadStatus = byId('upload-status');

  const set = createFileSet();
  const pool = createHeaderPool(`${BUILD_URL}header-worker.js`);
  const choices = new Map<string, StudyChoice>();
  const uploader = opts.uploader ?? createSelectionUploader();
  let chain: Promise<void> = Promise.resolve();
  let busy = 0;
  let adds = 0;
  let locked = false; // after START UPLOAD succeeded
  let sending = false;

  // The longest main-thread task, as a measure of "the page never freezes".
  let longest = 0;
  try {
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) longest = Math.max(longest, e.duration);
      d.longestTaskMs = String(Math.round(longest));
    }).observe({ type: 'longtask', buffered: true });
  } catch {
    /* not supported */
  }

  const setBusy = () => {
    d.busy = busy > 0 ? 'true' : 'false';
    root.setAttribute('aria-busy', busy > 0 ? 'true' : 'false');
  };

  let lastProgress = 0;
  const showProgress = (text: string, force = false) => {
    const now = performance.now();
    if (!force && now - lastProgress < 200) return;
    lastProgress = now;
    progress.textContent = text;
  };

  const renderReport = (r: Report) => {
    const info: HTMLElement[] = [];
    const bad: HTMLElement[] = [];
    if (r.images) info.push(para(t('summary.images', { count: r.images }), 'ok'));
    else if (r.notDicom || r.unreadable.length) info.push(para(t('summary.noImages')));
    if (r.duplicates) info.push(para(t('summary.duplicates', { count: r.duplicates })));
    if (r.notDicom) info.push(para(t('summary.notDicom', { count: r.notDicom })));
    if (r.images > maxFiles) bad.push(para(t('summary.tooManyFiles', { max: maxFiles })));
    if (r.unreadable.length) bad.push(para(t('summary.unreadable', { count: r.unreadable.length, names: names(r.unreadable.map((u) => u.path)) })));
    for (const dd of r.dicomdirs) {
      const folder = dd.folder || t('summary.topFolder');
      if (dd.missing.length) {
        bad.push(para(t('summary.dicomdirMissing', { folder, count: dd.missing.length, names: names(dd.missing) })));
        bad.push(para(t('summary.dicomdirMissingHint')));
      }
      if (dd.unreadable.length) bad.push(para(t('summary.dicomdirUnreadable', { folder, count: dd.unreadable.length, names: names(dd.unreadable) })));
    }
    if (r.nestedZips.length) bad.push(para(t('summary.nestedZip', { count: r.nestedZips.length, names: names(r.nestedZips) })));
    for (const z of r.refusedZips) {
      const reason = t(`zip.reason.${z.reason}`, { max: zipLimits.maxEntries, size: formatBytes(zipLimits.maxBytes) });
      bad.push(para(t('summary.zipRejected', { name: z.path, reason })));
    }
    summary.replaceChildren(...info);
    errors.replaceChildren(...bad);
    clear.hidden = !(r.images || r.notDicom || r.unreadable.length || r.dicomdirs.length || r.nestedZips.length || r.refusedZips.length) || locked;
  };

  const selection = (): Selection => {
    const chosen = [...choices.entries()].filter(([, c]) => c.selected).map(([uid]) => uid);
    const grouped = set.filesForStudies(chosen);
    return {
      studies: chosen
        .filter((uid) => grouped.has(uid))
        .map((uid) => {
          const images = grouped.get(uid)!;
          return { studyUid: uid, comment: choices.get(uid)!.comment.trim(), images, bytes: images.reduce((n, i) => n + i.file.size, 0) };
        }),
      email: email.value.trim(),
      phone: phone.value.trim(),
    };
  };

  const contactValid = (): boolean => {
    let ok = true;
    for (const [input, re, key] of [
      [email, EMAIL_RE, 'panel2.invalidEmail'],
      [phone, PHONE_RE, 'panel2.invalidPhone'],
    ] as const) {
      const v = input.value.trim();
      const bad = v !== '' && !re.test(v);
      const msgId = `${input.id}-error`;
      let msg = document.getElementById(msgId);
      if (bad) {
        ok = false;
        input.setAttribute('aria-invalid', 'true');
        if (!msg) {
          msg = para(t(key), 'message message-error');
          msg.id = msgId;
          input.after(msg);
          input.setAttribute('aria-describedby', `contact-help ${msgId}`);
        }
      } else {
        input.removeAttribute('aria-invalid');
        input.setAttribute('aria-describedby', 'contact-help');
        msg?.remove();
      }
    }
    return ok;
  };

  const updateStart = () => {
    const sel = selection();
    const images = sel.studies.reduce((n, s) => n + s.images.length, 0);
    const bytes = sel.studies.reduce((n, s) => n + s.bytes, 0);
    const over = bytes > remainingBytes;
    selectionSummary.textContent = sel.studies.length ? t('panel2.selected', { count: sel.studies.length, images, size: formatBytes(bytes) }) : '';
    if (over) selectionSummary.textContent += ` ${t('panel2.overAllowance', { size: formatBytes(bytes), allowance: formatBytes(remainingBytes) })}`;
    const valid = contactValid();
    const ready = !locked && !sending && busy === 0 && consent.checked && sel.studies.length > 0 && !over && valid && images <= maxFiles;
    start.disabled = !ready;
    startHint.textContent = locked ? '' : !sel.studies.length ? t('panel2.hint.studies') : !consent.checked ? t('panel2.hint.consent') : ready ? t('panel2.hint.ready') : '';
  };

  const render = () => {
    renderReport(set.report());
    const patients = set.patients();
    // Forget choices of studies no longer present (after "Remove all images").
    const present = new Set(patients.flatMap((p) => p.studies.map((s) => s.uid)));
    for (const uid of [...choices.keys()]) if (!present.has(uid)) choices.delete(uid);
    renderPatients(patientsBox, patients, choices, { expectedBirthDate, onChange: updateStart });
    panel2.hidden = set.size() === 0;
    updateStart();
  };

  const inspectAndAdd = async (cands: Candidate[], onProgress: (done: number, total: number) => void) => {
    const results = await pool.inspect(cands, onProgress);
    return set.add(results.map(({ item, result }) => ({ candidate: item, result })));
  };

  const addCandidates = async (cands: Candidate[]) => {
    if (!cands.length) return;
    const t0 = performance.now();
    const onProgress = (done: number, total: number) => showProgress(t('progress.reading', { done, total }), done === 0 || done === total);
    const out = await inspectAndAdd(cands, onProgress);
    for (const zip of out.zips) {
      showProgress(t('progress.unzipping', { name: zip.path }), true);
      const r = await openZip(`${BUILD_URL}zip-worker.js`, zip.file, zipLimits);
      if (!r.ok) {
        set.refuseZip(zip.path, r.reason);
        continue;
      }
      await inspectAndAdd(
        r.entries.map((e) => ({ file: e.file, path: `${zip.path}/${e.path}`, source: 'zip' as const })),
        onProgress,
      );
    }
    render();
    const ms = performance.now() - t0;
    showProgress(t('progress.done'), true);
    d.lastAddFiles = String(cands.length);
    d.adds = String(++adds);
    d.lastAddMs = String(Math.round(ms));
    root.dispatchEvent(new CustomEvent('uplink:added', { detail: { files: cands.length, ms } }));
  };

  const enqueue = (get: Promise<Candidate[]> | Candidate[]) => {
    if (locked) return;
    busy++;
    setBusy();
    updateStart();
    chain = chain
      .then(async () => addCandidates(await get))
      .catch((e: unknown) => {
        console.error(e);
        errors.append(para(t('error.INTERNAL')));
      })
      .finally(() => {
        busy--;
        setBusy();
        updateStart();
      });
  };

  const takeInput = (input: HTMLInputElement, source: 'files' | 'folder') => {
    const files = Array.from(input.files ?? []);
    input.value = ''; // so that choosing the same files again fires "change" again
    enqueue(fromFileList(files, source));
  };

  // Panel 1: the three ways in.
  addFiles.addEventListener('click', () => inputFiles.click());
  addFolder.addEventListener('click', () => inputFolder.click());
  inputFiles.addEventListener('change', () => takeInput(inputFiles, 'files'));
  inputFolder.addEventListener('change', () => takeInput(inputFolder, 'folder'));

  drop.addEventListener('click', () => inputFiles.click());
  drop.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' || e.key === ' ') {
      e.preventDefault();
      inputFiles.click();
    }
  });
  let depth = 0;
  drop.addEventListener('dragenter', (e) => {
    e.preventDefault();
    depth++;
    drop.classList.add('dragging');
  });
  drop.addEventListener('dragover', (e) => {
    e.preventDefault();
    if (e.dataTransfer) e.dataTransfer.dropEffect = 'copy';
  });
  drop.addEventListener('dragleave', () => {
    if (--depth <= 0) {
      depth = 0;
      drop.classList.remove('dragging');
    }
  });
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    depth = 0;
    drop.classList.remove('dragging');
    if (!e.dataTransfer) return;
    showProgress(t('panel1.dropped'), true);
    enqueue(fromDataTransfer(e.dataTransfer)); // reads the items now, during the event
  });
  // A file dropped next to the zone must not make the browser open it (and leave the page).
  for (const type of ['dragover', 'drop'] as const)
    window.addEventListener(type, (e) => {
      if (!drop.contains(e.target as Node)) e.preventDefault();
    });

  clear.addEventListener('click', () => {
    if (busy || locked) return;
    set.clear();
    choices.clear();
    progress.textContent = '';
    render();
    addFiles.focus();
  });

  // Panel 2: contact, consent, START UPLOAD.
  for (const input of [email, phone]) input.addEventListener('input', updateStart);
  consent.addEventListener('change', updateStart);
  start.addEventListener('click', async () => {
    updateStart();
    if (start.disabled) return;
    sending = true;
    start.disabled = true;
    const lockControls = (on: boolean) => {
      for (const c of [addFiles, addFolder, consent, email, phone]) c.disabled = on;
      drop.setAttribute('aria-disabled', on ? 'true' : 'false');
      for (const c of patientsBox.querySelectorAll<HTMLInputElement | HTMLTextAreaElement>('input, textarea')) c.disabled = on;
    };
    const view = {
      status(text: string, kind: 'info' | 'ok' | 'error' = 'info') {
        uploadStatus.replaceChildren(para(text, kind === 'error' ? 'message message-error' : kind === 'ok' ? 'message message-info' : ''));
      },
      // The upload was cancelled or stopped: the selection may change and START UPLOAD be pressed again.
      release() {
        locked = false;
        lockControls(false);
        render();
      },
    };
    const ok = await uploader.start(selection(), view);
    sending = false;
    if (ok) {
      locked = true;
      lockControls(true);
      clear.hidden = true;
    }
    updateStart();
  });

  setLangSwitchGuard(() => set.size() === 0 || window.confirm(t('lang.switchConfirm')));

  // Ready: the buttons were disabled until this script ran.
  addFiles.disabled = false;
  addFolder.disabled = false;
  drop.setAttribute('aria-disabled', 'false');
  setBusy();
  render();
}
