/**
 * The console's browser behaviour (views/static/build/console.js, loaded by console/layout.njk after htmx and
 * app.js). Everything works without it (plain links and forms); it adds keyboard and focus comfort:
 *   - after the study panel loads, focus moves to its heading (or, after an action in the panel, to the message
 *     saying what happened), and the row it belongs to is marked;
 *   - "Close" empties the panel and returns focus to the row's link;
 *   - content swapped in with [data-autofocus] (e.g. "Revoke this code?") gets the focus;
 *   - [data-print] prints the page (the upload-code handout; print CSS shows only the handout).
 * No inline script or handler anywhere (CSP): listeners are attached here.
 */

interface SwapDetail {
  elt: Element;
  target?: Element;
  requestConfig?: { elt?: Element };
}

/** The study whose panel is open (its row's link gets the focus back on Close, also after the list reloaded). */
let openStudy: string | null = null;

function focus(el: Element | null): boolean {
  if (!(el instanceof HTMLElement)) return false;
  if (!el.hasAttribute('tabindex') && !/^(A|BUTTON|INPUT|SELECT|TEXTAREA)$/.test(el.tagName)) el.setAttribute('tabindex', '-1');
  el.focus();
  return document.activeElement === el;
}

function markRow(uid: string | null): void {
  for (const row of document.querySelectorAll('tr[data-study].current')) row.classList.remove('current');
  if (!uid) return;
  for (const row of document.querySelectorAll<HTMLElement>('tr[data-study]')) if (row.dataset.study === uid) row.classList.add('current');
}

function afterSwap(detail: SwapDetail): void {
  const target = detail.target ?? detail.elt;
  const from = detail.requestConfig?.elt ?? null;
  if (target.id === 'study-list' || target.closest('#study-list')) markRow(openStudy);
  const auto = target.querySelector('[data-autofocus]');
  if (auto && focus(auto)) return;
  if (target.id === 'study-panel') {
    const article = target.querySelector<HTMLElement>('article.study-panel');
    openStudy = article?.dataset.study ?? null;
    markRow(openStudy);
    if (from?.classList.contains('open-study')) {
      focus(target.querySelector('#panel-heading'));
      return;
    }
    if (!focus(target.querySelector('#panel-notice'))) focus(target.querySelector('#panel-heading'));
  }
}

function start(): void {
  document.body.addEventListener('htmx:afterSwap', (e) => afterSwap((e as CustomEvent<SwapDetail>).detail));
  // The originals section replaces itself (outerHTML): once settled, focus what it now shows.
  document.body.addEventListener('htmx:afterSettle', (e) => {
    const from = (e as CustomEvent<SwapDetail>).detail.requestConfig?.elt;
    if (from?.closest('[data-section="originals"]')) focus(document.querySelector('#original-identifiers') ?? document.querySelector('#panel-originals h3'));
  });
  document.addEventListener('click', (e) => {
    const el = (e.target as Element | null)?.closest?.('[data-print], [data-close-panel]');
    if (!el) return;
    if (el.hasAttribute('data-print')) {
      e.preventDefault();
      window.print();
      return;
    }
    const slot = document.getElementById('study-panel');
    if (slot) slot.replaceChildren();
    const link = [...document.querySelectorAll<HTMLElement>('tr[data-study]')].find((r) => r.dataset.study === openStudy)?.querySelector('a.open-study');
    openStudy = null;
    markRow(null);
    if (!focus(link ?? null)) focus(document.getElementById('study-count'));
  });
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
else start();
export {};
