/**
 * Panel 2: the patients and, under each, the studies found in the added images (date, description,
 * modalities, series and image counts), each with a tick box (ticked by default) and a comment field; a
 * warning under a patient whose birth date differs from the one the upload code carries. Choices (ticks and
 * comments) survive re-rendering when more images are added. Built with DOM calls (text only, never HTML).
 */
import { formatDicomDate, formatPersonName, isoDate, t } from '../common/i18n.ts';
import type { PatientGroup } from '../files/file-set.ts';

export interface StudyChoice {
  selected: boolean;
  comment: string;
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string> = {}, ...children: (Node | string)[]): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

function dateNode(da: string, empty: string): Node {
  const iso = isoDate(da);
  if (!iso) return document.createTextNode(da || empty);
  return el('time', { datetime: iso }, formatDicomDate(da));
}

export function renderPatients(
  container: HTMLElement,
  patients: PatientGroup[],
  choices: Map<string, StudyChoice>,
  opts: { expectedBirthDate: string; onChange: () => void },
): void {
  const frag = document.createDocumentFragment();
  let n = 0;
  patients.forEach((p, pi) => {
    const headingId = `patient-${pi + 1}`;
    const section = el('section', { class: 'patient', 'aria-labelledby': headingId, 'data-patient-id': p.id });
    section.append(el('h3', { id: headingId }, `${t('panel2.patient')}: ${formatPersonName(p.name) || t('panel2.unknown')}`));
    section.append(
      el(
        'ul',
        { class: 'patient-facts' },
        el('li', {}, `${t('panel2.patientId')}: ${p.id || t('panel2.unknown')}`),
        el('li', {}, `${t('panel2.birthDate')}: `, dateNode(p.birthDate, t('panel2.unknown'))),
      ),
    );
    if (opts.expectedBirthDate && p.birthDate && p.birthDate !== opts.expectedBirthDate) {
      section.append(el('p', { class: 'message message-warn birth-mismatch', 'data-birth-mismatch': '' }, t('panel2.birthMismatch', { found: formatDicomDate(p.birthDate) })));
    }
    for (const s of p.studies) {
      n++;
      const choice = choices.get(s.uid) ?? { selected: true, comment: '' };
      choices.set(s.uid, choice);
      const boxId = `study-${n}`;
      const study = el('div', { class: `study${choice.selected ? '' : ' deselected'}`, 'data-study-uid': s.uid });
      const box = el('input', { type: 'checkbox', id: boxId, 'aria-describedby': `${boxId}-facts` });
      box.checked = choice.selected;
      box.addEventListener('change', () => {
        choice.selected = box.checked;
        study.classList.toggle('deselected', !box.checked);
        opts.onChange();
      });
      const title = el('span', { class: 'study-title' }, dateNode(s.date, t('panel2.study.noDate')), ` — ${s.description || t('panel2.study.noDescription')}`);
      study.append(el('div', { class: 'study-head' }, box, el('label', { for: boxId }, el('span', { class: 'visually-hidden' }, `${t('panel2.study.send')}: `), title)));
      const facts = [
        s.modalities.length ? `${t('panel2.study.modalities')}: ${s.modalities.join(', ')}` : '',
        t('panel2.study.series', { count: s.series.length }),
        t('panel2.study.images', { count: s.imageCount }),
      ].filter(Boolean);
      study.append(el('p', { class: 'study-facts', id: `${boxId}-facts` }, facts.join(' · ')));
      const commentId = `${boxId}-comment`;
      const comment = el('textarea', { id: commentId, maxlength: '2000', rows: '2' });
      comment.value = choice.comment;
      comment.addEventListener('input', () => {
        choice.comment = comment.value;
      });
      study.append(el('label', { class: 'comment-label', for: commentId }, t('panel2.study.comment')), comment);
      section.append(study);
    }
    frag.append(section);
  });
  container.replaceChildren(frag);
}
