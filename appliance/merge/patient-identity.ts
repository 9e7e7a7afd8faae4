/**
 * A patient's identity as a merge writes it (Patient ID, Issuer of Patient ID, Patient's Name, Birth Date, Sex):
 * checking what an admin chose (found in the PACS or the index, sent back by the browser), and whether a
 * study's character set can hold it (a header-only rewrite cannot change the character set of the file: the
 * other text in it is encoded in it).
 */
import { decodeValue, encodeText, parseCharsetTerms } from '../dicom/charset.ts';

export interface PatientIdentity {
  patientId: string;
  issuer: string;
  /** DICOM PN: "Family^Given^Middle^Prefix^Suffix", optionally "=Ideographic=Phonetic". */
  name: string;
  /** YYYYMMDD or ''. */
  birthDate: string;
  /** M, F, O or ''. */
  sex: string;
}

export type IdentityField = keyof PatientIdentity;
export const IDENTITY_FIELDS: readonly IdentityField[] = ['name', 'patientId', 'issuer', 'birthDate', 'sex'];

/** A single LO value: no backslash or control characters, at most 64 characters. */
const LO = /^[^\\\x00-\x1f\x7f]{0,64}$/u;

export function validDicomDate(s: string): boolean {
  const m = /^(\d{4})(\d{2})(\d{2})$/.exec(s);
  if (!m) return false;
  const d = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])));
  return d.getUTCFullYear() === Number(m[1]) && d.getUTCMonth() === Number(m[2]) - 1 && d.getUTCDate() === Number(m[3]);
}

/** Trim and check an identity from outside; returns the fields that are not acceptable (none: ok). */
export function checkIdentity(raw: Partial<Record<IdentityField, unknown>>): { identity: PatientIdentity; problems: IdentityField[] } {
  const s = (v: unknown) => (typeof v === 'string' ? v.trim() : '');
  const identity: PatientIdentity = {
    patientId: s(raw.patientId),
    issuer: s(raw.issuer),
    name: s(raw.name).replace(/\^+$/, ''),
    birthDate: s(raw.birthDate).replace(/-/g, ''),
    sex: s(raw.sex).toUpperCase(),
  };
  const problems: IdentityField[] = [];
  if (!identity.patientId || !LO.test(identity.patientId)) problems.push('patientId');
  if (!LO.test(identity.issuer)) problems.push('issuer');
  // PN: up to three component groups of at most 64 characters each, no backslash or control characters.
  const groups = identity.name.split('=');
  if (!identity.name || groups.length > 3 || groups.some((g) => !LO.test(g)) || groups[0].split('^').length > 5) problems.push('name');
  if (identity.birthDate && !validDicomDate(identity.birthDate)) problems.push('birthDate');
  if (!['', 'M', 'F', 'O'].includes(identity.sex)) problems.push('sex');
  return { identity, problems };
}

export function sameIdentity(a: PatientIdentity, b: PatientIdentity): boolean {
  return IDENTITY_FIELDS.every((f) => a[f] === b[f]);
}

/** The fields that differ. */
export function changedFields(before: PatientIdentity, after: PatientIdentity): IdentityField[] {
  return IDENTITY_FIELDS.filter((f) => before[f] !== after[f]);
}

/** Text fields of `identity` that a file in `specificCharacterSet` cannot hold as they are (they would turn into "?"). */
export function unencodableFields(identity: PatientIdentity, specificCharacterSet: string): IdentityField[] {
  const terms = parseCharsetTerms(specificCharacterSet);
  const fits = (text: string) => !text || decodeValue(encodeText(text, terms), terms) === text;
  return (['name', 'patientId', 'issuer'] as const).filter((f) => !fits(identity[f]));
}
