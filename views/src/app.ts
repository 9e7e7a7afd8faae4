/**
 * The browser bundle's entry (views/static/build/app.js), loaded by every page after htmx: common set-up
 * (CSRF header on htmx requests, the language switch), then the module of the page named by
 * <body data-page="...">. Other parts add their pages to `pages` (e.g. the console).
 */
import { setupHtmx } from './common/htmx-setup.ts';
import { setupLangSwitch } from './common/lang-switch.ts';
import { startUploadPage } from './portal/upload-page.ts';
import { createTusUploader } from './upload/tus-uploader.ts';

const pages: Record<string, () => void> = {
  // START UPLOAD sends the chosen studies with tus (issue 5).
  upload: () => startUploadPage({ uploader: createTusUploader() }),
};

function boot(): void {
  setupHtmx();
  setupLangSwitch();
  pages[document.body.dataset.page ?? '']?.();
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', boot);
else boot();
