/**
 * The transform step of the ingest path: applies an intake policy to a validated, scanned file by rewriting
 * header bytes only (dicom/rewrite.ts); pixel data, private tags and the character set stay byte for byte.
 *
 *  - anonymise (partial, by design; not the PS3.15 Basic Profile): Patient ID -> a pseudonym, Accession
 *    Number -> a pseudonym, wherever they occur (nested sequences too); Other Patient IDs, the Other Patient
 *    IDs Sequence, Issuer of Patient ID Qualifiers and Issuer of Accession Number sequences removed; Issuer of
 *    Patient ID = config anonymise.issuer; De-identification Method (0012,0063) says what was done; Patient
 *    Identity Removed is left alone (never set to YES). Patient name, birth date and sex stay. Pseudonyms are
 *    consistent per batch and per study (anonymise-store.ts); the originals go into the index only, in the
 *    commit transaction of the instance.
 *  - label / upload information: the UPLINK private block (group 0011), see PrivateElements.
 *  - preamble: a PE ("MZ") or ELF preamble (a CVE-2019-11687 polyglot) is zeroed, logged and audited, whatever
 *    the policy; every rewritten file gets a zero preamble and a rebuilt file meta group.
 */
import type { Config, PolicyConfig } from '../../config/schema.ts';
import type { AuditLog } from '../audit/audit-log.ts';
import { encodeText, parseCharsetTerms } from '../dicom/charset.ts';
import { Tags } from '../dicom/dictionary.ts';
import { readHeader, type DicomHeader } from '../dicom/header.ts';
import { rewrite, type EditContext, type EditRule, type PrivateBlock } from '../dicom/rewrite.ts';
import type { Logger } from '../log.ts';
import type { FileStore } from '../store/file-store.ts';
import type { CommitHook } from '../store/study-index.ts';
import type { AnonymiseStore, OriginalsSeen, PatientKey, UploadRecord } from './anonymise-store.ts';
import type { Origin, Transformed, Transformer, UploadInfo } from './ingest.ts';

/** Our private block: creator "UPLINK" in group 0011, in the first free block (0011,0010-00FF). */
export const UPLINK_PRIVATE_CREATOR = 'UPLINK';
export const UPLINK_PRIVATE_GROUP = 0x0011;
/** Low byte of each element in the block: (0011,xx01) ... with xx the block the creator reserved. */
export const PrivateElements = {
  /** LO, 1-n: the labels the policy stamps ('Uploaded'). */
  labels: { element: 0x01, vr: 'LO' },
  /** LO: the upload id (or "assoc:<id>" for a DICOM association). */
  uploadId: { element: 0x02, vr: 'LO' },
  /** CS: how it came: CODE (patient / physician with an upload code), USER (logged-in user), NODE (DICOM node). */
  by: { element: 0x03, vr: 'CS' },
  /** LO: who (user or node name; a code's holder if known). */
  name: { element: 0x04, vr: 'LO' },
  /** LT: the uploader's comment for this study. */
  comment: { element: 0x05, vr: 'LT' },
  /** LO: the uploader's contact (e-mail or mobile number). */
  contact: { element: 0x06, vr: 'LO' },
  /** DT: when it was uploaded (UTC). */
  time: { element: 0x07, vr: 'DT' },
  /** LO: the institution id. */
  institution: { element: 0x08, vr: 'LO' },
} as const;

export const DEIDENTIFICATION_METHOD = ['Uplink pseudonymised Patient ID and Accession Number', 'Uplink removed Other Patient IDs'];

export interface TransformerDeps {
  config: Config;
  log: Logger;
  store: FileStore;
  audit: AuditLog;
  anon: AnonymiseStore;
  now?: () => Date;
}

/** A single LO/SH-like value: no backslash or control characters, at most `max` characters. */
function oneValue(s: string, max: number): string {
  return [...s.replace(/[\\\x00-\x1f\x7f]/g, ' ').trim()].slice(0, max).join('');
}

/** LT text in the file's character set: lines kept (CR LF), at most 10240 characters. */
function longText(s: string, terms: string[]): Buffer {
  const lines = [...s.replace(/\r\n?/g, '\n')].slice(0, 10240).join('').split('\n');
  const crlf = Buffer.from('\r\n');
  return Buffer.concat(lines.flatMap((l, i) => (i ? [crlf, encodeText(l.replace(/[\x00-\x1f\x7f]/g, ' '), terms)] : [encodeText(l.replace(/[\x00-\x1f\x7f]/g, ' '), terms)])));
}

/** DICOM DT in UTC: YYYYMMDDHHMMSS+0000. */
export function dicomDateTime(d: Date): string {
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getUTCFullYear(), 4)}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}+0000`;
}

/** The upload information of an origin: what the uploader gave, or what the origin itself says (C-STORE). */
export function uploadInfoOf(origin: Origin, now: Date): UploadInfo {
  const given = origin.info?.upload;
  if (given) return { ...given, at: given.at ?? now.toISOString() };
  const by = origin.actor.kind === 'user' ? 'user' : origin.actor.kind === 'code' ? 'code' : 'node';
  // An actor that is a code is never written anywhere: its name may be the code itself.
  return { id: origin.batch, by, name: by === 'code' ? '' : origin.actor.name, at: now.toISOString() };
}

const isInside = (path: readonly { tag: number }[], seq: number) => path.some((s) => s.tag === seq);

export function createTransformer(deps: TransformerDeps): Transformer {
  const { config, log, store, audit, anon } = deps;
  const now = deps.now ?? (() => new Date());

  function anonymiseRules(header: DicomHeader, origin: Origin, seen: OriginalsSeen): EditRule[] {
    const studyUid = header.studyInstanceUID;
    const top: PatientKey = { id: header.patientID, issuer: header.issuerOfPatientID, name: header.patientName, birthDate: header.patientBirthDate };
    const patients = new Map<string, string>();
    const patient = (key: PatientKey): string => {
      const k = JSON.stringify([key.id, key.issuer]);
      let p = patients.get(k);
      if (p === undefined) {
        p = anon.patientPseudonym(origin.batch, studyUid, key);
        patients.set(k, p);
        seen.patients.push({ id: key.id, issuer: key.issuer, pseudonym: p });
      }
      return p;
    };
    const accessions = new Map<string, string>();
    const accession = (original: string): string => {
      let a = accessions.get(original);
      if (a === undefined) {
        a = anon.accessionPseudonym(studyUid, original);
        accessions.set(original, a);
        seen.accessions.push({ original, pseudonym: a });
      }
      return a;
    };
    const issuer = oneValue(config.anonymise.issuer, 64);
    return [
      { tag: Tags.PatientID, where: 'top', insert: true, value: () => patient(top) },
      { tag: Tags.PatientID, where: 'nested', value: (c: EditContext) => (c.text ? patient(c.text === top.id ? top : { id: c.text, issuer: '' }) : undefined) },
      { tag: Tags.IssuerOfPatientID, where: 'top', insert: true, value: issuer },
      { tag: Tags.IssuerOfPatientID, where: 'nested', value: (c: EditContext) => (c.text ? issuer : undefined) },
      { tag: Tags.IssuerOfPatientIDQualifiersSequence, where: 'any', value: null },
      { tag: Tags.OtherPatientIDs, where: 'any', value: null },
      { tag: Tags.OtherPatientIDsSequence, where: 'any', value: null },
      { tag: Tags.AccessionNumber, where: 'top', insert: true, value: (c: EditContext) => accession(c.text) },
      { tag: Tags.AccessionNumber, where: 'nested', value: (c: EditContext) => (c.text ? accession(c.text) : undefined) },
      { tag: Tags.IssuerOfAccessionNumberSequence, where: 'any', value: null },
      {
        tag: Tags.DeidentificationMethod,
        where: 'top',
        insert: true,
        value: (c: EditContext) => {
          const old = c.text ? c.text.split('\\').map((v) => v.trim()).filter((v) => v && !DEIDENTIFICATION_METHOD.includes(v)) : [];
          return [...old, ...DEIDENTIFICATION_METHOD];
        },
      },
    ];
  }

  function privateBlock(header: DicomHeader, policy: PolicyConfig, upload: UploadInfo): { block: PrivateBlock; record: UploadRecord } {
    const terms = parseCharsetTerms(header.specificCharacterSet);
    const comment = upload.comment?.[header.studyInstanceUID] ?? '';
    const at = new Date(upload.at ?? now().toISOString());
    const record: UploadRecord = {
      uploadId: upload.id,
      by: upload.by,
      name: upload.name ?? '',
      institution: upload.institution ?? '',
      comment,
      contact: upload.contact ?? '',
      at: Number.isNaN(at.getTime()) ? now().toISOString() : at.toISOString(),
    };
    const E = PrivateElements;
    const el = (d: { element: number; vr: string }, value: string | string[] | Buffer) => ({ element: d.element, vr: d.vr, value });
    const block: PrivateBlock = {
      group: UPLINK_PRIVATE_GROUP,
      creator: UPLINK_PRIVATE_CREATOR,
      elements: [
        el(E.labels, policy.label ? [oneValue(policy.label, 64)] : []),
        el(E.uploadId, oneValue(record.uploadId, 64)),
        el(E.by, record.by.toUpperCase()),
        el(E.name, oneValue(record.name, 64)),
        el(E.comment, comment ? longText(comment, terms) : ''),
        el(E.contact, oneValue(record.contact, 64)),
        el(E.time, dicomDateTime(new Date(record.at))),
        el(E.institution, oneValue(record.institution, 64)),
      ],
    };
    return { block, record };
  }

  return {
    async apply(file: string, header: DicomHeader, policy: PolicyConfig, origin: Origin): Promise<Transformed | null> {
      const sanitise = header.preamble === 'pe' || header.preamble === 'elf';
      const stamp = policy.anonymise || policy.label !== null || origin.info?.upload !== undefined;
      if (!stamp && !sanitise) return null;

      const seen: OriginalsSeen = { patients: [], accessions: [], otherPatientIds: [] };
      const rules = policy.anonymise ? anonymiseRules(header, origin, seen) : [];
      const pb = stamp ? privateBlock(header, policy, uploadInfoOf(origin, now())) : undefined;
      const observe = policy.anonymise
        ? {
            tags: [Tags.OtherPatientIDs, Tags.PatientID],
            seen(c: EditContext) {
              if (c.tag === Tags.OtherPatientIDs) seen.otherPatientIds.push(...c.text.split('\\').map((v) => v.trim()).filter(Boolean));
              else if (c.text && isInside(c.path, Tags.OtherPatientIDsSequence)) seen.otherPatientIds.push(c.text);
            },
          }
        : undefined;

      const out = store.stagingPath('.dcm');
      const result = await rewrite(file, out, rules, { privateBlock: pb?.block, observe });
      let newHeader: DicomHeader;
      try {
        newHeader = await readHeader(out);
      } catch (e) {
        await store.remove(out);
        throw e;
      }
      if (sanitise) {
        log.warn({ sop: header.sopInstanceUID, study: header.studyInstanceUID, preamble: header.preamble, batch: origin.batch }, 'executable file preamble (PE/ELF polyglot, CVE-2019-11687) zeroed');
        audit.record({
          actorKind: origin.actor.kind,
          actor: origin.actor.name,
          action: 'preamble-sanitised',
          studyUid: header.studyInstanceUID,
          ip: origin.remoteIP,
          detail: { sopInstanceUID: header.sopInstanceUID, preamble: header.preamble, batch: origin.batch },
        });
      }
      log.debug(
        { sop: header.sopInstanceUID, batch: origin.batch, anonymised: policy.anonymise, replaced: result.replaced, removed: result.removed, inserted: result.inserted, deflated: result.deflated },
        'instance rewritten',
      );
      seen.otherPatientIds = [...new Set(seen.otherPatientIds)];
      const hook: CommitHook = (_db, ids) => {
        if (policy.anonymise) anon.recordOriginals(ids.studyId, origin.batch, seen);
        if (pb) anon.recordUpload(ids.studyId, origin.batch, pb.record);
      };
      return { path: out, header: newHeader, sha256: result.sha256, size: result.size, hook };
    },
  };
}
