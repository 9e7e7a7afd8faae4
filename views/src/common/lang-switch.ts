/**
 * The language switch is a plain form (POST /lang). A page holding unsaved work (the portal's added images)
 * registers a guard that asks before the page is reloaded in the other language.
 */
let guard: (() => boolean) | null = null;

export function setLangSwitchGuard(fn: (() => boolean) | null): void {
  guard = fn;
}

export function setupLangSwitch(): void {
  for (const form of document.querySelectorAll<HTMLFormElement>('form[data-lang-switch]')) {
    form.addEventListener('submit', (e) => {
      if (guard && !guard()) e.preventDefault();
    });
  }
}
