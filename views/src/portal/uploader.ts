/**
 * What START UPLOAD does with the selection. The page hands an Uploader the chosen studies (with their File
 * objects, grouped by study) and the contact; the Uploader reports through `view`.
 *
 * For now (issue 4) the only Uploader records the selection's summary (study UIDs, counts, sizes, comments,
 * contact) with POST /upload/selection: no image leaves the browser. The resumable upload (issue 5) adds a
 * tus Uploader implementing the same interface, plus pause/cancel (views/src/upload/tus-uploader.ts), which the
 * page uses (views/src/app.ts).
 */
import { HttpError, postJson } from '../common/http.ts';
import { t } from '../common/i18n.ts';
import type { Image } from '../files/file-set.ts';

export interface SelectedStudy {
  studyUid: string;
  comment: string;
  images: Image[];
  bytes: number;
}

export interface Selection {
  studies: SelectedStudy[];
  email: string;
  phone: string;
}

export interface UploadView {
  status(text: string, kind?: 'info' | 'ok' | 'error'): void;
  /** The upload ended without success (cancelled, stopped): the page unlocks the selection for a new start. */
  release?(): void;
}

export interface Uploader {
  /** Resolves true when the selection was accepted (the page then locks the selection). */
  start(selection: Selection, view: UploadView): Promise<boolean>;
}

export function errorText(e: unknown): string {
  if (e instanceof HttpError) {
    if (e.code === 'NETWORK') return t('error.NETWORK');
    return e.message || t(`error.${e.code}`);
  }
  return t('error.INTERNAL');
}

export function createSelectionUploader(url = '/upload/selection'): Uploader {
  return {
    async start(sel, view) {
      view.status(t('upload.sending'));
      const body = {
        studies: sel.studies.map((s) => ({ studyUid: s.studyUid, files: s.images.length, bytes: s.bytes, comment: s.comment })),
        email: sel.email,
        phone: sel.phone,
      };
      try {
        const r = await postJson<{ reference: string; studies: number; files: number }>(url, body);
        view.status(t('upload.recorded', { count: r.studies, images: r.files, reference: r.reference }), 'ok');
        return true;
      } catch (e) {
        view.status(t('upload.failed', { message: errorText(e) }), 'error');
        return false;
      }
    },
  };
}
