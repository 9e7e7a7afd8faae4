/**
 * The browser bundle's entry (views/static/build/app.js), loaded by every page after htmx: common set-up
 * (CSRF header on htmx requests, the language switch), then the module of the page named by
 * <body data-page="...">. Other parts add their pages to `pages` (e.g. the console).
 */
import { setupHtmx } from './common/htmx-setup.ts';
import { setupLangSwitch } from './common/lang-switch.ts';
import { startUploadPage } from './portal/upload-page.ts';

const pages: Record<string, () => void> = {
  upload: () => startUploadPage(),
};

function boot(): void {
  setupHtmx();
  setupLangSwitch();
  pages[document.body.dataset.page ?? '']?.();
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', boot);
else boot();
