/**
 * START UPLOAD (issue 5): the Uploader the portal page hands the selection to (portal/uploader.ts).
 *
 *  1. Check before send: the manifest (studies, and per file its SOP Instance UID, SOP Class UID, size and
 *     name; comments, contact) goes to POST /upload/api/uploads. The server answers which files to send (the
 *     rest it has already, from this upload or an earlier one of the same code or user) and, for a file it has
 *     some bytes of, the tus URL to continue at: a closed tab, the code entered again and the same files added
 *     again continue from the server's offsets (no browser storage involved).
 *  2. Transfer: tus (tus-js-client), a few files at a time, in chunks of a few MB (both set by the server;
 *     fewer files at a time on a slow line, so that no request runs long).
 *     Network errors and 5xx are retried with growing delays, then again every 15 s (or when the browser is
 *     back online), for as long as the page is open: a dropped network or a restarted appliance is ridden out.
 *  3. PAUSE UPLOAD / RESUME UPLOAD; CANCEL UPLOAD (asks first; the server discards what is staged and says so).
 *     "Do not close your browser during upload" is shown, and leaving the page asks first, until every file is
 *     sent.
 *  4. Progress: overall percentage, MB/s and time left, images sent per study. Once every file is sent the
 *     server's record (upload/status.njk, polled with htmx) takes over: Validating files, Upload successful and
 *     the receipt.
 *
 * For tests, #panel-upload carries data-transfer (sending | paused | sent | cancelled | stopped), data-percent,
 * data-sent-files and data-reference; #upload-server carries the server's data-state.
 */
import * as tus from 'tus-js-client';
import { csrfToken, HttpError, postJson } from '../common/http.ts';
import { formatBytes, formatDicomDate, t } from '../common/i18n.ts';
import type { Image } from '../files/file-set.ts';
import { errorText, type Selection, type Uploader, type UploadView } from '../portal/uploader.ts';
import { createRateMeter, perMille, roundDuration, secondsLeft } from './progress.ts';

interface Htmx {
  ajax(verb: string, path: string, ctx: { target: string | Element; swap?: string }): Promise<void>;
}

interface BeginResponse {
  reference: string;
  resumed: boolean;
  send: { sop: string; url: string | null }[];
  done: number;
  endpoint: string;
  chunkBytes: number;
  parallel: number;
}

type JobState = 'queued' | 'active' | 'waiting' | 'done' | 'refused';

interface Job {
  sop: string;
  image: Image;
  studyUid: string;
  url: string | null;
  upload: tus.Upload | null;
  state: JobState;
  /** Bytes the server has or is receiving (tus progress). */
  sent: number;
  /** The next progress report is the offset the server already had (a resume): not part of the rate. */
  fresh: boolean;
  restarts: number;
}

export const STATUS_URL = '/upload/status';
const RETRY_DELAYS = [0, 1000, 2000, 4000, 8000, 15000, 15000, 15000, 30000];
const WAIT_MS = 15000;
/** Longest a chunk should take on the line as measured (see `parallel` in runTransfer). */
const CHUNK_SECONDS = 40;
/** Errors after which nothing can go on without the uploader (enter the code again, reload). */
const STOP_CODES = new Set(['SESSION_EXPIRED', 'CODE_EXPIRED', 'CODE_REVOKED', 'CODE_UNKNOWN', 'UNAUTHENTICATED', 'FORBIDDEN', 'CSRF']);

function byId<T extends HTMLElement = HTMLElement>(id: string): T | null {
  return document.getElementById(id) as T | null;
}

function statusOf(err: unknown): number {
  return (err as tus.DetailedError | undefined)?.originalResponse?.getStatus() ?? 0;
}

function methodOf(err: unknown): string {
  return (err as tus.DetailedError | undefined)?.originalRequest?.getMethod() ?? '';
}

/** The {error, message} the server puts in a refusal, if any. */
function bodyOf(err: unknown): { error?: string; message?: string } {
  try {
    const text = (err as tus.DetailedError | undefined)?.originalResponse?.getBody() ?? '';
    const v = JSON.parse(text) as unknown;
    return typeof v === 'object' && v !== null ? (v as { error?: string; message?: string }) : {};
  } catch {
    return {};
  }
}

function retryable(err: unknown): boolean {
  const s = statusOf(err);
  return s === 0 || s >= 500 || s === 408 || s === 409 || s === 423 || s === 429;
}

function htmx(): Htmx | undefined {
  return (window as unknown as { htmx?: Htmx }).htmx;
}

/** Ask for the server's record of the upload now (the fragment then polls by itself while unfinished). */
export function refreshStatus(): void {
  const el = byId('upload-server');
  // A failed request is handled by the htmx:sendError listener (watchServerStatus).
  if (el) htmx()?.ajax('GET', STATUS_URL, { target: el, swap: 'outerHTML' }).catch(() => undefined);
}

/**
 * Follow the server's record on the page (also without a transfer, e.g. after a reload): show the panel when
 * there is an upload, announce state changes, poll again after a network error (the appliance restarting).
 */
function watchServerStatus(onState: (state: string, el: HTMLElement) => void): void {
  let last = '';
  let retry: number | undefined;
  const seen = () => {
    const el = byId('upload-server');
    if (!el) return;
    const state = el.dataset.state ?? '';
    const panel = byId('panel-upload');
    if (panel && state && state !== 'none' && state !== 'loading') panel.hidden = false;
    if (state !== last) {
      last = state;
      const heading = byId('upload-state');
      const live = byId('upload-live');
      if (live && heading) live.textContent = heading.textContent ?? '';
      onState(state, el);
    }
  };
  document.body.addEventListener('htmx:afterSettle', seen);
  const again = (e: Event) => {
    const elt = (e as CustomEvent<{ elt?: Element }>).detail?.elt;
    if (!(elt instanceof HTMLElement) || elt.id !== 'upload-server') return;
    if (elt.dataset.state === 'none' || elt.dataset.state === 'complete' || elt.dataset.state === 'cancelled' || elt.dataset.state === 'expired') return;
    window.clearTimeout(retry);
    retry = window.setTimeout(refreshStatus, 2000);
  };
  document.body.addEventListener('htmx:sendError', again);
  document.body.addEventListener('htmx:responseError', again);
}

function studyLabel(images: Image[]): string {
  const h = images[0]?.header;
  const date = h?.studyDate ? formatDicomDate(h.studyDate) : t('panel2.study.noDate');
  return `${date} — ${h?.studyDescription || t('panel2.study.noDescription')}`;
}

function timeText(seconds: number): string {
  const d = roundDuration(seconds);
  return t(`upload.time.${d.unit}`, { count: d.count });
}

export function createTusUploader(): Uploader {
  let running = false;
  let current: { onServerState(state: string): void } | null = null;
  watchServerStatus((state) => current?.onServerState(state));

  return {
    async start(sel: Selection, view: UploadView): Promise<boolean> {
      if (running) return false;
      view.status(t('upload.starting'));
      const manifest = {
        studies: sel.studies.map((s) => ({
          studyUid: s.studyUid,
          comment: s.comment,
          date: s.images[0]?.header.studyDate ?? '',
          description: s.images[0]?.header.studyDescription ?? '',
          // The name only names the file in reports: its last 200 characters are enough.
          files: s.images.map((i) => ({ sop: i.header.sopInstanceUid, sopClass: i.header.sopClassUid, size: i.file.size, name: i.path.slice(-200) })),
        })),
        email: sel.email,
        phone: sel.phone,
      };
      let r: BeginResponse;
      try {
        r = await postJson<BeginResponse>('/upload/api/uploads', manifest);
      } catch (e) {
        view.status(t('upload.startFailed', { message: errorText(e) }), 'error');
        return false;
      }
      view.status('');
      running = true;
      current = runTransfer(r, sel, view, () => {
        running = false;
        current = null;
      });
      return true;
    },
  };
}

function runTransfer(r: BeginResponse, sel: Selection, view: UploadView, ended: () => void): { onServerState(state: string): void } {
  const panel = byId('panel-upload')!;
  const transfer = byId('upload-transfer')!;
  const bar = byId<HTMLProgressElement>('upload-progress')!;
  const figures = byId('upload-figures')!;
  const studyList = byId('upload-studies')!;
  const note = byId('upload-note')!;
  const pauseBtn = byId<HTMLButtonElement>('upload-pause')!;
  const cancelBtn = byId<HTMLButtonElement>('upload-cancel')!;
  const keepOpen = byId('upload-keep-open');

  const toSend = new Map(r.send.map((s) => [s.sop, s.url]));
  const jobs: Job[] = [];
  const studies = sel.studies.map((s) => ({ uid: s.studyUid, label: studyLabel(s.images), total: s.images.length, done: 0 }));
  const studyOf = new Map(studies.map((s) => [s.uid, s]));
  let totalBytes = 0;
  let bytesBefore = 0;
  for (const s of sel.studies)
    for (const image of s.images) {
      totalBytes += image.file.size;
      const sop = image.header.sopInstanceUid;
      if (toSend.has(sop)) jobs.push({ sop, image, studyUid: s.studyUid, url: toSend.get(sop) ?? null, upload: null, state: 'queued', sent: 0, fresh: true, restarts: 0 });
      else {
        bytesBefore += image.file.size;
        studyOf.get(s.studyUid)!.done++;
      }
    }
  let state: 'sending' | 'paused' | 'sent' | 'cancelled' | 'stopped' = 'sending';
  const meter = createRateMeter();
  let jump = 0;
  let lastRender = 0;
  let renderTimer: number | undefined;
  let missingRounds = 0;
  const waits = new Set<number>();
  let lost = false;
  let done = false;

  const guard = (e: BeforeUnloadEvent) => {
    e.preventDefault();
    e.returnValue = '';
  };
  const setState = (s: typeof state) => {
    state = s;
    panel.dataset.transfer = s;
    const busy = s === 'sending' || s === 'paused';
    if (busy) window.addEventListener('beforeunload', guard);
    else window.removeEventListener('beforeunload', guard);
    if (keepOpen) keepOpen.hidden = !busy;
    pauseBtn.hidden = !busy;
    cancelBtn.hidden = !busy;
    pauseBtn.textContent = s === 'paused' ? t('upload.resume') : t('upload.pause');
  };

  const sentBytes = () => bytesBefore + jobs.reduce((n, j) => n + (j.state === 'done' || j.state === 'refused' ? j.image.file.size : Math.min(j.sent, j.image.file.size)), 0);

  const render = () => {
    lastRender = performance.now();
    const sent = sentBytes();
    const rateBytes = jobs.reduce((n, j) => n + j.sent, 0) - jump;
    meter.sample(performance.now(), rateBytes);
    const pm = perMille(sent, totalBytes);
    bar.value = pm;
    const percent = Math.floor(pm / 10);
    const parts = [t('upload.figures', { percent, sent: formatBytes(sent), total: formatBytes(totalBytes) })];
    if (state === 'sending') {
      const rate = meter.rate();
      if (rate !== null) parts.push(t('upload.speed', { rate: formatBytes(rate) }));
      const left = secondsLeft(totalBytes - sent, rate);
      parts.push(left === null ? t('upload.timeLeftUnknown') : t('upload.timeLeft', { time: timeText(left) }));
      panel.dataset.rate = String(Math.round(rate ?? 0));
    }
    figures.textContent = parts.join(' · ');
    panel.dataset.percent = String(percent);
    panel.dataset.sentFiles = String(jobs.filter((j) => j.state === 'done').length);
    studyList.replaceChildren(
      ...studies.map((s) => {
        const li = document.createElement('li');
        li.dataset.studyUid = s.uid;
        li.dataset.done = String(s.done);
        li.textContent = t('upload.clientStudy', { study: s.label, done: s.done, count: s.total });
        return li;
      }),
    );
  };
  const tick = (force = false) => {
    if (force || performance.now() - lastRender > 250) {
      window.clearTimeout(renderTimer);
      renderTimer = undefined;
      render();
    } else if (renderTimer === undefined) {
      renderTimer = window.setTimeout(() => {
        renderTimer = undefined;
        render();
      }, 250);
    }
  };

  const say = (text: string) => {
    note.textContent = text;
  };
  const connectionLost = () => {
    if (lost) return;
    lost = true;
    if (state === 'sending') say(t('upload.connectionLost'));
  };
  const connectionOk = () => {
    if (!lost) return;
    lost = false;
    if (state === 'sending') say('');
  };

  /**
   * Files sent at once: as many as the server allows, but on a slow line so few that one chunk still takes
   * under about 40 s (the appliance gives a request at most 120 s; parallel files share the line).
   */
  const parallel = () => {
    const rate = meter.rate();
    return rate === null ? r.parallel : Math.max(1, Math.min(r.parallel, Math.floor((rate * CHUNK_SECONDS) / r.chunkBytes)));
  };

  const schedule = () => {
    if (state !== 'sending') return;
    let active = jobs.filter((j) => j.state === 'active').length;
    const limit = parallel();
    for (const j of jobs) {
      if (active >= limit) break;
      if (j.state !== 'queued') continue;
      startJob(j);
      active++;
    }
  };

  const finishedJob = (j: Job, how: 'done' | 'refused') => {
    j.state = how;
    j.sent = j.image.file.size;
    studyOf.get(j.studyUid)!.done++;
    tick();
    schedule();
    void checkAllSent();
  };

  const restart = (j: Job) => {
    j.upload = null;
    j.url = null;
    j.sent = 0;
    j.fresh = true;
    j.state = 'queued';
  };

  const wait = (j: Job) => {
    j.state = 'waiting';
    connectionLost();
    const timer = window.setTimeout(() => {
      waits.delete(timer);
      if (j.state === 'waiting') {
        j.state = 'queued';
        schedule();
      }
    }, WAIT_MS);
    waits.add(timer);
  };

  const failed = (j: Job, err: unknown) => {
    if (state === 'cancelled' || state === 'stopped') return;
    const status = statusOf(err);
    const body = bodyOf(err);
    if (body.error && STOP_CODES.has(body.error)) return stop(body.message || t(`error.${body.error}`));
    if (retryable(err) && !(status === 409 && body.error === 'CONFLICT')) return wait(j);
    if (status === 409 && body.error === 'CONFLICT' && methodOf(err) === 'POST') {
      // The server has this file already (a retried request crossed a finished one).
      finishedJob(j, 'done');
      return;
    }
    if ((status === 404 || status === 410) && methodOf(err) === 'POST') return stop(body.message || t('error.NOT_FOUND'));
    if ((status === 404 || status === 410) && j.restarts < 3) {
      // The server no longer has this file's partial bytes: send it from the start.
      j.restarts++;
      jump -= j.sent;
      restart(j);
      schedule();
      return;
    }
    const message = body.message || (body.error ? t(`error.${body.error}`) : (err as Error)?.message || t('error.INTERNAL'));
    const p = document.createElement('p');
    p.className = 'message message-error upload-file-refused';
    p.textContent = t('upload.fileRefused', { name: j.image.path, message });
    note.after(p);
    finishedJob(j, 'refused');
  };

  function startJob(j: Job): void {
    j.state = 'active';
    j.fresh = true;
    if (!j.upload) {
      const upload: tus.Upload = new tus.Upload(j.image.file, {
        endpoint: r.endpoint,
        uploadUrl: j.url,
        chunkSize: r.chunkBytes,
        // The first chunk goes with the request creating the file: a small file takes one request.
        uploadDataDuringCreation: true,
        metadata: { upload: r.reference, sop: j.sop },
        headers: { 'X-CSRF-Token': csrfToken() },
        retryDelays: RETRY_DELAYS,
        storeFingerprintForResuming: false,
        removeFingerprintOnSuccess: false,
        onShouldRetry: (err) => {
          const again = retryable(err) && !(statusOf(err) === 409 && bodyOf(err).error === 'CONFLICT');
          if (again && statusOf(err) === 0) connectionLost();
          return again;
        },
        onUploadUrlAvailable: () => {
          j.url = upload.url ?? j.url;
        },
        onProgress: (sent) => {
          if (j.fresh) {
            // The first report after a (re)start is where the server stands: not sent now.
            jump += sent - j.sent;
            j.fresh = false;
          }
          j.sent = sent;
          connectionOk();
          tick();
        },
        onSuccess: () => {
          connectionOk();
          finishedJob(j, 'done');
        },
        onError: (err) => failed(j, err),
      });
      j.upload = upload;
    }
    j.upload.start();
  }

  async function checkAllSent(): Promise<void> {
    if (state !== 'sending' || jobs.some((j) => j.state !== 'done' && j.state !== 'refused')) return;
    // Ask the server whether it has everything (a file lost in a crash is asked for again).
    let missing: string[] = [];
    try {
      const res = await fetch(`/upload/api/uploads/${encodeURIComponent(r.reference)}/missing`, { credentials: 'same-origin', headers: { Accept: 'application/json' } });
      if (res.ok) missing = ((await res.json()) as { missing: string[] }).missing;
      else if (res.status >= 500) {
        window.setTimeout(() => void checkAllSent(), WAIT_MS);
        return;
      }
    } catch {
      window.setTimeout(() => void checkAllSent(), WAIT_MS);
      return;
    }
    if (state !== 'sending') return;
    const again = jobs.filter((j) => j.state === 'done' && missing.includes(j.sop));
    if (again.length && missingRounds++ < 3) {
      for (const j of again) {
        studyOf.get(j.studyUid)!.done--;
        jump -= j.sent;
        restart(j);
      }
      tick(true);
      schedule();
      return;
    }
    setState('sent');
    say(t('upload.sent'));
    tick(true);
    // The appliance may have finished already (its record said so before the browser asked).
    const now = byId('upload-server')?.dataset.state;
    if (now) onServerState(now);
    refreshStatus();
  }

  /** The appliance's record changed (or was seen again): once it is final, the transfer part is done. */
  function onServerState(s: string): void {
    if (done || !(s === 'complete' || s === 'cancelled' || s === 'expired') || !(state === 'sent' || state === 'cancelled')) return;
    done = true;
    transfer.hidden = true;
    byId('upload-state')?.focus();
    if (state === 'sent') finish(false);
  }

  const abortAll = async () => {
    for (const timer of waits) window.clearTimeout(timer);
    waits.clear();
    await Promise.all(
      jobs.map(async (j) => {
        if (j.state === 'active' || j.state === 'waiting') {
          j.state = 'queued';
          await j.upload?.abort().catch(() => undefined);
        }
      }),
    );
  };

  function stop(message: string): void {
    setState('stopped');
    void abortAll();
    say(t('upload.stopped', { message }));
    finish(true);
  }

  /** The transfer is over; `release`: the page may take a new selection (after a cancel or a stop). */
  const finish = (release: boolean) => {
    window.removeEventListener('online', online);
    ended();
    if (release) view.release?.();
  };

  const online = () => {
    for (const j of jobs) if (j.state === 'waiting') j.state = 'queued';
    schedule();
  };
  window.addEventListener('online', online);

  pauseBtn.onclick = async () => {
    if (state === 'sending') {
      setState('paused');
      await abortAll();
      meter.reset();
      say(t('upload.paused'));
      tick(true);
    } else if (state === 'paused') {
      setState('sending');
      say('');
      schedule();
      tick(true);
    }
  };

  cancelBtn.onclick = async () => {
    if (state !== 'sending' && state !== 'paused') return;
    if (!window.confirm(t('upload.cancelConfirm'))) return;
    const before = state;
    setState('cancelled');
    await abortAll();
    say(t('upload.cancelling'));
    try {
      await postJson(`/upload/api/uploads/${encodeURIComponent(r.reference)}/cancel`, {});
    } catch (e) {
      if (!(e instanceof HttpError && e.code === 'CONFLICT')) {
        setState(before === 'sending' ? 'paused' : before);
        say(t('upload.cancelFailed', { message: errorText(e) }));
        return;
      }
    }
    say(t('upload.cancelled'));
    transfer.hidden = true;
    refreshStatus();
    finish(true);
  };

  panel.hidden = false;
  transfer.hidden = false;
  panel.dataset.reference = r.reference;
  for (const p of panel.querySelectorAll('.upload-file-refused')) p.remove();
  say('');
  setState('sending');
  render();
  refreshStatus();
  schedule();
  void checkAllSent();

  return { onServerState };
}
