/**
 * C-FIND SCU: query a remote node (the hospital PACS) at PATIENT, STUDY, SERIES or IMAGE level and get the
 * matches as plain objects, with a result cap (C-CANCEL once it is reached) and a timeout per response.
 * Used by the console's patient merge to find the right patient in the PACS.
 *
 * The association is ours (scu-association.ts, same reasons as for C-STORE: rejections and timeouts come back
 * in words); the identifiers are encoded and decoded with dcmjs-dimse's Dataset, which knows the dictionary,
 * person names and character sets, and loses nothing that matters here (no private attributes are queried).
 */
import dimse from 'dcmjs-dimse';
import dcmjs from 'dcmjs';
import type { Logger } from '../log.ts';
import { EXPLICIT_LE, IMPLICIT_LE } from '../dicom/transfer-syntax.ts';
import { ScuAssociation, ScuError, type ScuNode, type ScuTimeouts } from './scu-association.ts';
import { cCancelRQ, cFindRQ, CommandField, readResponse } from './command-set.ts';
import { describeContextResult } from './scu-pdu.ts';
import { isPending, statusMeaning } from './scu-status.ts';

const { Dataset } = dimse;
const { DicomMetaDictionary } = dcmjs.data;
dimse.log.setLevel('silent');

export type QueryLevel = 'PATIENT' | 'STUDY' | 'SERIES' | 'IMAGE';

export const PATIENT_ROOT_FIND = '1.2.840.10008.5.1.4.1.2.1.1';
export const STUDY_ROOT_FIND = '1.2.840.10008.5.1.4.1.2.2.1';

/** Attributes asked for (returned if the peer knows them) at each level. */
const RETURN_KEYS: Record<QueryLevel, string[]> = {
  PATIENT: ['PatientName', 'PatientID', 'IssuerOfPatientID', 'PatientBirthDate', 'PatientSex', 'NumberOfPatientRelatedStudies'],
  STUDY: [
    'PatientName',
    'PatientID',
    'IssuerOfPatientID',
    'PatientBirthDate',
    'PatientSex',
    'StudyInstanceUID',
    'StudyDate',
    'StudyTime',
    'AccessionNumber',
    'StudyID',
    'StudyDescription',
    'ReferringPhysicianName',
    'ModalitiesInStudy',
    'NumberOfStudyRelatedSeries',
    'NumberOfStudyRelatedInstances',
  ],
  SERIES: ['StudyInstanceUID', 'SeriesInstanceUID', 'Modality', 'SeriesNumber', 'SeriesDescription', 'SeriesDate', 'NumberOfSeriesRelatedInstances'],
  IMAGE: ['StudyInstanceUID', 'SeriesInstanceUID', 'SOPInstanceUID', 'SOPClassUID', 'InstanceNumber'],
};

/** One match. Text attributes as strings (person names as Alphabetic=Ideographic=Phonetic), all also in `attributes`. */
export interface FindMatch {
  patientName?: string;
  patientID?: string;
  issuerOfPatientID?: string;
  patientBirthDate?: string;
  patientSex?: string;
  numberOfPatientRelatedStudies?: string;
  studyInstanceUID?: string;
  studyDate?: string;
  studyTime?: string;
  accessionNumber?: string;
  studyID?: string;
  studyDescription?: string;
  referringPhysicianName?: string;
  modalitiesInStudy?: string[];
  numberOfStudyRelatedSeries?: string;
  numberOfStudyRelatedInstances?: string;
  seriesInstanceUID?: string;
  modality?: string;
  seriesNumber?: string;
  seriesDescription?: string;
  seriesDate?: string;
  numberOfSeriesRelatedInstances?: string;
  sopInstanceUID?: string;
  sopClassUID?: string;
  instanceNumber?: string;
  /** Every attribute of the response identifier by DICOM keyword, values as text (multiple values joined with "\"). */
  attributes: Record<string, string>;
}

export interface FindOptions {
  callingAeTitle: string;
  /** Most matches returned; when reached the query is cancelled (C-CANCEL) and `truncated` is set. Default 100. */
  limit?: number;
  /** Information model; default Patient Root for PATIENT, Study Root otherwise. */
  model?: 'patient' | 'study';
  timeouts?: Partial<ScuTimeouts>;
  signal?: AbortSignal;
  logger?: Logger;
}

export interface FindResult {
  ok: boolean;
  matches: FindMatch[];
  /** More matches existed than `limit`. */
  truncated: boolean;
  /** What happened, in words. */
  detail: string;
  /** Final status. */
  status?: number;
  ms: number;
}

const camel = (keyword: string) => {
  const special: Record<string, string> = { PatientID: 'patientID', IssuerOfPatientID: 'issuerOfPatientID', StudyID: 'studyID', SOPInstanceUID: 'sopInstanceUID', SOPClassUID: 'sopClassUID' };
  return special[keyword] ?? keyword[0].toLowerCase() + keyword.slice(1);
};

function text(v: unknown): string {
  if (v === null || v === undefined) return '';
  if (Array.isArray(v)) return v.map(text).join('\\');
  if (typeof v === 'object') {
    const pn = v as { Alphabetic?: string; Ideographic?: string; Phonetic?: string };
    if ('Alphabetic' in pn || 'Ideographic' in pn || 'Phonetic' in pn) {
      // The groups as they came: "Alphabetic=Ideographic=Phonetic", absent trailing groups left out.
      const groups = [pn.Alphabetic, pn.Ideographic, pn.Phonetic];
      while (groups.length && groups[groups.length - 1] === undefined) groups.pop();
      return groups.map((g) => g ?? '').join('=');
    }
    return '';
  }
  return String(v).trim();
}

function toMatch(elements: Record<string, unknown>): FindMatch {
  const m: FindMatch = { attributes: {} };
  for (const [k, v] of Object.entries(elements)) {
    if (k.startsWith('_') || k === 'SpecificCharacterSet' || k === 'QueryRetrieveLevel') continue;
    const t = text(v);
    m.attributes[k] = t;
    if (k === 'ModalitiesInStudy') m.modalitiesInStudy = t ? t.split('\\').filter(Boolean) : [];
    else if (Object.values(RETURN_KEYS).some((keys) => keys.includes(k))) (m as unknown as Record<string, string>)[camel(k)] = t;
  }
  return m;
}

/**
 * Query `node`. `query` maps DICOM keywords (PatientID, PatientName, StudyDate, AccessionNumber, ...) to
 * match values (wildcards, ranges and UID lists as the peer supports them); the level's usual attributes are
 * asked for as return keys. Never throws for network or peer problems: `ok` is false with the reason.
 */
export async function find(node: ScuNode, query: Record<string, string>, level: QueryLevel, opts: FindOptions): Promise<FindResult> {
  const t0 = performance.now();
  const ms = () => Math.round(performance.now() - t0);
  const who = `${node.aeTitle}@${node.host}:${node.port}`;
  const limit = opts.limit ?? 100;
  const sopClass = (opts.model ?? (level === 'PATIENT' ? 'patient' : 'study')) === 'patient' ? PATIENT_ROOT_FIND : STUDY_ROOT_FIND;
  if (sopClass === STUDY_ROOT_FIND && level === 'PATIENT') return { ok: false, matches: [], truncated: false, ms: 0, detail: 'the Study Root model has no PATIENT level' };

  const elements: Record<string, unknown> = { QueryRetrieveLevel: level };
  for (const k of RETURN_KEYS[level]) elements[k] = '';
  for (const [k, v] of Object.entries(query)) {
    if (!DicomMetaDictionary.nameMap[k]) return { ok: false, matches: [], truncated: false, ms: 0, detail: `unknown attribute keyword "${k}" in the query` };
    elements[k] = v;
  }
  // dcmjs writes text as UTF-8, so say so; it also asks the peer to answer in UTF-8 (Orthanc otherwise
  // answers in its default encoding, Latin-1, and loses what that cannot hold).
  elements.SpecificCharacterSet = 'ISO_IR 192';

  const matches: FindMatch[] = [];
  let truncated = false;
  let a: ScuAssociation | undefined;
  try {
    a = await ScuAssociation.open(node, {
      callingAeTitle: opts.callingAeTitle,
      contexts: [{ id: 1, abstractSyntax: sopClass, transferSyntaxes: [EXPLICIT_LE, IMPLICIT_LE] }],
      timeouts: opts.timeouts,
      signal: opts.signal,
      logger: opts.logger,
    });
    const ctx = a.contexts.get(1)!;
    if (ctx.result !== 0) {
      await a.release();
      return { ok: false, matches, truncated, ms: ms(), detail: `${who} does not offer C-FIND (${sopClass}): ${describeContextResult(ctx.result)}` };
    }
    const ts = ctx.transferSyntax;
    const identifier = new Dataset(elements, ts).getDenaturalizedDataset();
    await a.sendMessage(1, cFindRQ(1, sopClass), [{ data: identifier, last: true }]);
    let cancelled = false;
    for (;;) {
      const m = await a.nextMessage();
      const rsp = readResponse(m.command);
      if (rsp.commandField !== CommandField.CFindRSP || rsp.messageIdBeingRespondedTo !== 1) throw new ScuError('retry', `unexpected message (command 0x${rsp.commandField.toString(16)}) instead of a C-FIND response`);
      if (rsp.status === undefined) throw new ScuError('retry', 'a C-FIND response has no status');
      if (isPending(rsp.status)) {
        if (matches.length < limit) {
          if (m.dataset) matches.push(toMatch(new Dataset(m.dataset, ts).getElements()));
        } else {
          truncated = true;
          if (!cancelled) {
            cancelled = true;
            await a.sendMessage(1, cCancelRQ(1));
          }
        }
        continue;
      }
      await a.release();
      const ok = rsp.status === 0 || (rsp.status === 0xfe00 && cancelled);
      const meaning = statusMeaning(rsp.status);
      const detail = ok
        ? `${matches.length} match${matches.length === 1 ? '' : 'es'} from ${who}${truncated ? ` (stopped at the limit of ${limit})` : ''}`
        : `C-FIND on ${who} failed: ${meaning}${rsp.errorComment ? `: ${rsp.errorComment}` : ''}`;
      opts.logger?.debug({ peer: node.aeTitle, level, matches: matches.length, status: rsp.status }, 'c-find done');
      return { ok, matches, truncated, detail, status: rsp.status, ms: ms() };
    }
  } catch (e) {
    a?.abort();
    const why = e instanceof ScuError ? e.message : `unexpected error: ${(e as Error).message}`;
    // After a cancel, matches up to the limit are still good even if the peer did not wind down properly.
    if (truncated) return { ok: true, matches, truncated, ms: ms(), detail: `${matches.length} matches from ${who} (stopped at the limit of ${limit}; ${why})` };
    return { ok: false, matches, truncated, ms: ms(), detail: why.startsWith(node.aeTitle) ? why : `C-FIND on ${who} failed: ${why}` };
  }
}
