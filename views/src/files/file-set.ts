/**
 * The set of files the uploader added, by any mix of the three ways (and ZIPs): each file's header result,
 * images counted once (by SOP Instance UID; other files by name + size + last-modified), grouped into
 * patients -> studies -> series for Panel 2, and a report of what will not be uploaded: non-DICOM files,
 * unreadable ones, DICOMDIR references that are missing or unreadable, nested ZIPs, refused ZIPs.
 *
 * The chosen File objects stay here, grouped by study (`filesForStudies`): the upload step takes them from
 * here. Pure (no DOM): tested in Node.
 */
import type { DicomSummary, DirRef, HeaderResult } from '../dicom/types.ts';

export type Source = 'files' | 'folder' | 'drop' | 'zip';

/** A file to look at, with where it came from: its path within the chosen folder / drop / ZIP, or its name. */
export interface Candidate {
  file: File;
  path: string;
  source: Source;
}

export interface Image {
  file: File;
  path: string;
  header: DicomSummary;
}

export interface SeriesGroup {
  uid: string;
  modality: string;
  number: string;
  description: string;
  images: Image[];
}

export interface StudyGroup {
  uid: string;
  date: string;
  time: string;
  description: string;
  modalities: string[];
  series: SeriesGroup[];
  imageCount: number;
  bytes: number;
}

export interface PatientGroup {
  key: string;
  name: string;
  id: string;
  birthDate: string;
  sex: string;
  studies: StudyGroup[];
}

export interface DicomdirProblem {
  /** The folder holding the DICOMDIR ("" for the top level). */
  folder: string;
  missing: string[];
  unreadable: string[];
}

export type ZipRefusal = 'entries' | 'size' | 'ratio' | 'broken';

export interface Report {
  images: number;
  duplicates: number;
  notDicom: number;
  unreadable: { path: string; reason: string }[];
  dicomdirs: DicomdirProblem[];
  nestedZips: string[];
  refusedZips: { path: string; reason: ZipRefusal }[];
}

export interface AddOutcome {
  added: number;
  duplicates: number;
}

export interface FileSet {
  /** Take in header results. ZIPs found among them are returned for opening (unless nested: reported). */
  add(items: { candidate: Candidate; result: HeaderResult }[]): AddOutcome & { zips: Candidate[] };
  refuseZip(path: string, reason: ZipRefusal): void;
  images(): Image[];
  size(): number;
  bytes(): number;
  patients(): PatientGroup[];
  report(): Report;
  /** The File objects of the given studies, grouped by study (for the upload). */
  filesForStudies(studyUids: Iterable<string>): Map<string, Image[]>;
  clear(): void;
}

/** Path matching as on CDs: case-insensitive, ISO 9660 ";1" versions and trailing dots ignored, "\" or "/". */
export function normalisePath(p: string): string {
  return p
    .replace(/\\/g, '/')
    .split('/')
    .filter((s) => s !== '' && s !== '.')
    .map((s) => s.replace(/;\d+$/, '').replace(/\.$/, '').toUpperCase())
    .join('/');
}

function dirname(p: string): string {
  const i = p.replace(/\\/g, '/').lastIndexOf('/');
  return i < 0 ? '' : p.slice(0, i);
}

function otherKey(c: Candidate): string {
  return `${c.file.name}\u0000${c.file.size}\u0000${c.file.lastModified}`;
}

export function createFileSet(): FileSet {
  let images = new Map<string, Image>();
  let others = new Map<string, { path: string; kind: 'not-dicom' | 'unreadable' | 'zip'; reason?: string }>();
  let dicomdirs = new Map<string, { path: string; refs: DirRef[] }>();
  /** Every path seen (normalised) -> readable DICOM or not, for DICOMDIR checks. */
  let seenPaths = new Map<string, boolean>();
  let duplicates = 0;
  let nestedZips: string[] = [];
  let refusedZips: { path: string; reason: ZipRefusal }[] = [];

  const set: FileSet = {
    add(items) {
      let added = 0;
      let dups = 0;
      const zips: Candidate[] = [];
      for (const { candidate, result } of items) {
        const np = normalisePath(candidate.path);
        if (result.kind === 'dicom') {
          if (!seenPaths.get(np)) seenPaths.set(np, true);
          const uid = result.header.sopInstanceUid;
          if (images.has(uid)) {
            dups++;
            continue;
          }
          images.set(uid, { file: candidate.file, path: candidate.path, header: result.header });
          added++;
          continue;
        }
        if (!seenPaths.has(np)) seenPaths.set(np, false);
        if (result.kind === 'dicomdir') {
          const key = otherKey(candidate) + candidate.path;
          if (!dicomdirs.has(key)) dicomdirs.set(key, { path: candidate.path, refs: result.refs });
          continue;
        }
        if (result.kind === 'zip') {
          if (candidate.source === 'zip') {
            if (!nestedZips.includes(candidate.path)) nestedZips.push(candidate.path);
          } else zips.push(candidate);
          continue;
        }
        const key = otherKey(candidate);
        if (!others.has(key)) others.set(key, { path: candidate.path, kind: result.kind, reason: result.kind === 'unreadable' ? result.reason : undefined });
      }
      duplicates += dups;
      return { added, duplicates: dups, zips };
    },

    refuseZip(path, reason) {
      refusedZips.push({ path, reason });
    },

    images: () => [...images.values()],
    size: () => images.size,
    bytes: () => {
      let n = 0;
      for (const i of images.values()) n += i.file.size;
      return n;
    },

    patients() {
      const patients = new Map<string, PatientGroup>();
      const studyOwner = new Map<string, PatientGroup>();
      const studies = new Map<string, StudyGroup>();
      for (const img of images.values()) {
        const h = img.header;
        let study = studies.get(h.studyInstanceUid);
        if (!study) {
          const pkey = `${h.patientId}\u0000${h.patientName}\u0000${h.patientBirthDate}`;
          let patient = patients.get(pkey);
          if (!patient) {
            patient = { key: pkey, name: h.patientName, id: h.patientId, birthDate: h.patientBirthDate, sex: h.patientSex, studies: [] };
            patients.set(pkey, patient);
          }
          study = { uid: h.studyInstanceUid, date: h.studyDate, time: h.studyTime, description: h.studyDescription, modalities: [], series: [], imageCount: 0, bytes: 0 };
          studies.set(h.studyInstanceUid, study);
          studyOwner.set(h.studyInstanceUid, patient);
          patient.studies.push(study);
        }
        let series = study.series.find((s) => s.uid === h.seriesInstanceUid);
        if (!series) {
          series = { uid: h.seriesInstanceUid, modality: h.modality, number: h.seriesNumber, description: h.seriesDescription, images: [] };
          study.series.push(series);
          if (h.modality && !study.modalities.includes(h.modality)) study.modalities.push(h.modality);
        }
        series.images.push(img);
        study.imageCount++;
        study.bytes += img.file.size;
        if (!study.date && h.studyDate) study.date = h.studyDate;
        if (!study.description && h.studyDescription) study.description = h.studyDescription;
      }
      const out = [...patients.values()];
      for (const p of out) p.studies.sort((a, b) => (b.date + b.time).localeCompare(a.date + a.time) || a.uid.localeCompare(b.uid));
      out.sort((a, b) => a.name.localeCompare(b.name) || a.id.localeCompare(b.id));
      return out;
    },

    report() {
      const problems: DicomdirProblem[] = [];
      for (const { path, refs } of dicomdirs.values()) {
        const folder = dirname(path);
        const missing: string[] = [];
        const unreadable: string[] = [];
        for (const ref of refs) {
          const rel = ref.fileId.join('/');
          const full = normalisePath(folder ? `${folder}/${rel}` : rel);
          const state = seenPaths.get(full);
          if (state === undefined) missing.push(ref.fileId.join('/'));
          else if (!state) unreadable.push(ref.fileId.join('/'));
        }
        if (missing.length || unreadable.length) problems.push({ folder, missing, unreadable });
      }
      let notDicom = 0;
      const unreadable: { path: string; reason: string }[] = [];
      for (const o of others.values()) {
        if (o.kind === 'unreadable') unreadable.push({ path: o.path, reason: o.reason ?? '' });
        else notDicom++;
      }
      return { images: images.size, duplicates, notDicom, unreadable, dicomdirs: problems, nestedZips: [...nestedZips], refusedZips: [...refusedZips] };
    },

    filesForStudies(uids) {
      const want = new Set(uids);
      const out = new Map<string, Image[]>();
      for (const img of images.values()) {
        const uid = img.header.studyInstanceUid;
        if (!want.has(uid)) continue;
        const list = out.get(uid) ?? [];
        list.push(img);
        out.set(uid, list);
      }
      return out;
    },

    clear() {
      images = new Map();
      others = new Map();
      dicomdirs = new Map();
      seenPaths = new Map();
      duplicates = 0;
      nestedZips = [];
      refusedZips = [];
    },
  };
  return set;
}
