/**
 * Test studies with chosen original identifiers: copies of a pydicom sample with new UIDs (DCMTK dcmodify),
 * a distinctive Patient ID, issuer, Accession Number and Other Patient IDs (attribute and sequence).
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { readHeader } from '../../../appliance/dicom/header.ts';
import { copyWithNewUids, PYDICOM_DIR } from '../../helpers/samples.ts';

export interface TestInstance {
  file: string;
  sop: string;
  study: string;
  patient: string;
  accession: string;
}

export interface PatientSpec {
  /** Original Patient ID. */
  patient: string;
  /** pydicom sample the instances are copies of. */
  sample: string;
  /** Accession Number of each study, and how many instances it has. */
  studies: { accession: string; instances: number }[];
}

let n = 0;

export async function makeStudies(dir: string, specs: PatientSpec[]): Promise<TestInstance[]> {
  const out: TestInstance[] = [];
  for (const spec of specs) {
    for (const st of spec.studies) {
      const d = path.join(dir, `set-${n++}`);
      const [first] = copyWithNewUids([path.join(PYDICOM_DIR, spec.sample)], d, { study: true, series: true });
      const more = st.instances > 1 ? copyWithNewUids(Array(st.instances - 1).fill(first), path.join(d, 'more')) : [];
      const files = [first, ...more];
      execFileSync('dcmodify', [
        '-nb',
        '-i', `(0010,0020)=${spec.patient}`,
        '-i', `(0010,0021)=ORIG-ISSUER-${spec.patient}`,
        '-i', `(0008,0050)=${st.accession}`,
        '-i', `(0010,1000)=OTHER-${spec.patient}-1\\OTHER-${spec.patient}-2`,
        '-i', `(0010,1002)[0].(0010,0020)=OTHER-${spec.patient}-SEQ`,
        ...files,
      ], { stdio: 'pipe' });
      for (const file of files) {
        const h = await readHeader(file, { full: true });
        out.push({ file, sop: h.sopInstanceUID, study: h.studyInstanceUID, patient: spec.patient, accession: st.accession });
      }
    }
  }
  return out;
}
