/** Shared steps of the portal's browser tests: enter a code, wait for additions, what DCMTK says the files hold. */
import { execFileSync } from 'node:child_process';
import type { Page } from 'playwright-core';

/** Type the code on the start page (lower case, spaces: the way people type) and press Enter. */
export async function enterCode(page: Page, base: string, code: string): Promise<void> {
  await page.goto(`${base}/`);
  await page.fill('#code', code.toLowerCase().replace(/-/g, ' '));
  await page.press('#code', 'Enter');
  await page.waitForURL(`${base}/upload`);
  await page.waitForSelector('#add-files:not([disabled])');
}

/** Wait until `n` additions have been read and shown (data-adds on #portal). */
export async function waitAdds(page: Page, n: number, timeout = 120_000): Promise<void> {
  await until(page, `(() => { const p = document.getElementById('portal'); return !!p && p.dataset.busy === 'false' && Number(p.dataset.adds || 0) >= ${n}; })()`, timeout);
}

/**
 * Poll a page expression (a string: the root tsconfig has no DOM types) until it is true. Not
 * page.waitForFunction: Playwright builds its predicate with eval, which our CSP (no 'unsafe-eval') refuses.
 */
export async function until(page: Page, expression: string, timeout = 30_000): Promise<void> {
  const deadline = Date.now() + timeout;
  for (;;) {
    if (await page.evaluate(expression)) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${expression}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface Expected {
  /** StudyInstanceUID -> what Panel 2 must show. */
  studies: Map<string, { date: string; patientName: string; images: number }>;
}

/** The studies, dates, patient names and image counts of real files, as DCMTK's dcmdump reads them. */
export function expectedFromDcmdump(files: string[]): Expected {
  const studies = new Map<string, { date: string; patientName: string; images: number }>();
  const seen = new Set<string>();
  for (let i = 0; i < files.length; i += 100) {
    const out = execFileSync('dcmdump', ['-q', '+p', '+F', '+P', '0008,0018', '+P', '0020,000d', '+P', '0008,0020', '+P', '0010,0010', ...files.slice(i, i + 100)], { encoding: 'latin1', maxBuffer: 64 * 1024 * 1024 });
    for (const block of out.split(/^# dcmdump \(\d+\/\d+\): /m).slice(1)) {
      const val = (tag: string) => new RegExp(`^\\(${tag}\\) \\w\\w \\[(.*?)\\]`, 'm').exec(block)?.[1]?.trim() ?? '';
      const sop = val('0008,0018');
      const study = val('0020,000d');
      if (!sop || !study || seen.has(sop)) continue;
      seen.add(sop);
      const s = studies.get(study) ?? { date: val('0008,0020'), patientName: val('0010,0010'), images: 0 };
      s.images++;
      studies.set(study, s);
    }
  }
  return { studies };
}

/** DICOM PN "Doe^Archibald" as the page shows it: "Doe, Archibald". */
export function displayName(pn: string): string {
  const [family = '', given = '', middle = '', prefix = '', suffix = ''] = pn.split('=')[0].split('^').map((s) => s.trim());
  const rest = [prefix, given, middle].filter(Boolean).join(' ');
  let out = family && rest ? `${family}, ${rest}` : family || rest;
  if (suffix) out += `, ${suffix}`;
  return out;
}

/** What Panel 2 shows, read from the page. */
export interface ShownPatient {
  heading: string;
  warning: string | null;
  studies: { uid: string; date: string; title: string; facts: string; checked: boolean }[];
}

export async function panel2(page: Page): Promise<ShownPatient[]> {
  return page.evaluate(`[...document.querySelectorAll('#patients section.patient')].map((s) => ({
    heading: s.querySelector('h3')?.textContent ?? '',
    warning: s.querySelector('[data-birth-mismatch]')?.textContent ?? null,
    studies: [...s.querySelectorAll('.study')].map((st) => ({
      uid: st.dataset.studyUid ?? '',
      date: st.querySelector('time')?.getAttribute('datetime') ?? '',
      title: st.querySelector('.study-title')?.textContent ?? '',
      facts: st.querySelector('.study-facts')?.textContent ?? '',
      checked: st.querySelector('input[type=checkbox]').checked,
    })),
  }))`);
}

/** The id of the focused element (page code as a string, see waitAdds). */
export async function focusedId(page: Page): Promise<string> {
  return page.evaluate('document.activeElement ? document.activeElement.id : ""');
}
