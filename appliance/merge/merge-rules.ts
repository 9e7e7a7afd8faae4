/**
 * The header-only rewrite a patient merge applies to each instance of the study (dicom/rewrite.ts rules):
 *   - top level: Patient ID, Patient's Name, Birth Date and Sex set to the chosen patient (inserted if absent:
 *     type 2 attributes), Issuer of Patient ID set (removed when the chosen patient has none: the old issuer,
 *     e.g. the anonymisation's, does not belong to the new ID);
 *   - nested (e.g. a Referenced Patient item): a Patient ID, issuer or name equal to the study's old one becomes
 *     the new one; other nested values are left alone;
 *   - Other Patient IDs, the Other Patient IDs Sequence and Issuer of Patient ID Qualifiers Sequence removed
 *     everywhere, as the anonymisation does: they describe the identity the study is taken away from.
 * Everything else (private tags, the character set, pixel data) is copied byte for byte. The rules are
 * idempotent: applied to an already merged file they give the same file (a resumed merge rewrites the
 * instance it was interrupted on again).
 */
import { Tags } from '../dicom/dictionary.ts';
import type { EditContext, EditRule } from '../dicom/rewrite.ts';
import type { PatientIdentity } from './patient-identity.ts';

export function mergeRules(before: PatientIdentity, after: PatientIdentity): EditRule[] {
  const nested = (old: string, value: string | null) => (c: EditContext) => (old && c.text === old && c.text !== value ? value : undefined);
  return [
    { tag: Tags.PatientName, where: 'top', insert: true, value: after.name },
    { tag: Tags.PatientName, where: 'nested', value: nested(before.name, after.name) },
    { tag: Tags.PatientID, where: 'top', insert: true, value: after.patientId },
    { tag: Tags.PatientID, where: 'nested', value: nested(before.patientId, after.patientId) },
    after.issuer ? { tag: Tags.IssuerOfPatientID, where: 'top', insert: true, value: after.issuer } : { tag: Tags.IssuerOfPatientID, where: 'top', value: null },
    { tag: Tags.IssuerOfPatientID, where: 'nested', value: nested(before.issuer, after.issuer || null) },
    { tag: Tags.IssuerOfPatientIDQualifiersSequence, where: 'any', value: null },
    { tag: Tags.PatientBirthDate, where: 'top', insert: true, value: after.birthDate },
    { tag: Tags.PatientSex, where: 'top', insert: true, value: after.sex },
    { tag: Tags.OtherPatientIDs, where: 'any', value: null },
    { tag: Tags.OtherPatientIDsSequence, where: 'any', value: null },
  ];
}
