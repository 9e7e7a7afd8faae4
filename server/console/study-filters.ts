/**
 * The study list's filters, sort and page as GET query parameters (the same on the page and on its htmx
 * fragment, so a filtered list can be reloaded or bookmarked):
 *   name, pid, from, to (YYYY-MM-DD), modality, label, status ('-': none), origin (upload|node|import),
 *   fwd (forwarding state, when forwarding is available), sort (date|patient|received), dir (asc|desc), page
 * Unknown or malformed values are dropped (and named in `invalid`, so the page can say so); text is capped.
 * These parameters may hold patient data: they are never logged (the request log has the path only).
 */
import type { OriginFilter, SortDir, SortKey, StudyFilter } from '../../appliance/studies/study-query.ts';

export const FORWARD_STATES = ['queued', 'sending', 'done', 'retrying', 'failed'] as const;
export type ForwardState = (typeof FORWARD_STATES)[number];

export interface StudyParams {
  /** What the form shows (the values as given, cleaned). */
  form: {
    name: string;
    pid: string;
    from: string;
    to: string;
    modality: string;
    label: string;
    status: string;
    origin: string;
    fwd: string;
  };
  filter: StudyFilter;
  forwardState: ForwardState | null;
  sort: SortKey;
  dir: SortDir;
  page: number;
  /** Parameters that were given but not understood. */
  invalid: string[];
}

const SORTS: readonly SortKey[] = ['date', 'patient', 'received'];
const ORIGINS: readonly OriginFilter[] = ['upload', 'node', 'import'];

function text(v: string | null, max = 64): string {
  return (v ?? '').replace(/[\x00-\x1f\x7f]/g, ' ').trim().slice(0, max);
}

/** "2024-03-31" -> "20240331" (a real calendar date), else null. */
export function dateParam(v: string): string | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(v);
  if (!m) return null;
  const d = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])));
  if (d.getUTCFullYear() !== Number(m[1]) || d.getUTCMonth() !== Number(m[2]) - 1 || d.getUTCDate() !== Number(m[3])) return null;
  return `${m[1]}${m[2]}${m[3]}`;
}

export function parseStudyParams(q: URLSearchParams, opts: { forwarding: boolean }): StudyParams {
  const invalid: string[] = [];
  const form = {
    name: text(q.get('name')),
    pid: text(q.get('pid')),
    from: text(q.get('from'), 10),
    to: text(q.get('to'), 10),
    modality: text(q.get('modality'), 16),
    label: text(q.get('label')),
    status: text(q.get('status')),
    origin: text(q.get('origin'), 10),
    fwd: text(q.get('fwd'), 10),
  };
  const filter: StudyFilter = {};
  if (form.name) filter.patientName = form.name;
  if (form.pid) filter.patientId = form.pid;
  if (form.from) {
    const d = dateParam(form.from);
    if (d) filter.dateFrom = d;
    else (invalid.push('from'), (form.from = ''));
  }
  if (form.to) {
    const d = dateParam(form.to);
    if (d) filter.dateTo = d;
    else (invalid.push('to'), (form.to = ''));
  }
  if (form.modality) {
    if (/^[A-Z0-9 _]{1,16}$/.test(form.modality)) filter.modality = form.modality;
    else (invalid.push('modality'), (form.modality = ''));
  }
  if (form.label) filter.label = form.label;
  if (form.status) filter.status = form.status;
  if (form.origin) {
    if ((ORIGINS as readonly string[]).includes(form.origin)) filter.origin = form.origin as OriginFilter;
    else (invalid.push('origin'), (form.origin = ''));
  }
  let forwardState: ForwardState | null = null;
  if (form.fwd) {
    if (opts.forwarding && (FORWARD_STATES as readonly string[]).includes(form.fwd)) forwardState = form.fwd as ForwardState;
    else (invalid.push('fwd'), (form.fwd = ''));
  }
  const sortRaw = q.get('sort');
  const sort: SortKey = (SORTS as readonly string[]).includes(sortRaw ?? '') ? (sortRaw as SortKey) : 'received';
  if (sortRaw && sort !== sortRaw) invalid.push('sort');
  const dirRaw = q.get('dir');
  const dir: SortDir = dirRaw === 'asc' || dirRaw === 'desc' ? dirRaw : sort === 'patient' ? 'asc' : 'desc';
  const pageRaw = q.get('page');
  const page = pageRaw && /^\d{1,6}$/.test(pageRaw) && Number(pageRaw) >= 1 ? Number(pageRaw) : 1;
  if (pageRaw && String(page) !== pageRaw) invalid.push('page');
  return { form, filter, forwardState, sort, dir, page, invalid };
}

/** The query string for these parameters with some replaced (e.g. another sort or page); '' values dropped. */
export function studyQueryString(p: Pick<StudyParams, 'form' | 'sort' | 'dir' | 'page'>, over: Record<string, string | number | null> = {}): string {
  const all: Record<string, string | number | null> = { ...p.form, sort: p.sort, dir: p.dir, page: p.page, ...over };
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(all)) {
    if (v === null || v === '' || (k === 'page' && Number(v) === 1)) continue;
    q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}
