/**
 * htmx on every page: each htmx request carries the session's CSRF token. (htmx's own settings, eval off and
 * no injected styles, come from the `htmx-config` meta tag the server renders, read before htmx starts.)
 */
import { csrfToken } from './http.ts';

export function setupHtmx(): void {
  document.addEventListener('htmx:configRequest', (e) => {
    const detail = (e as CustomEvent<{ headers: Record<string, string> }>).detail;
    detail.headers['X-CSRF-Token'] = csrfToken();
  });
}
