// The web foundations other parts build on, in headless Chromium under the real CSP: htmx loads with eval off,
// no injected styles and no history snapshots; htmx requests carry the session's CSRF token (the bundle adds
// it); an htmx error lands as a fragment in the page's message area, in the page's language.
import t from 'tap';
import { launchBrowser, openPage } from '../helpers/browser.ts';
import { startServer } from '../helpers/server.ts';
import { until } from './lib/portal-page.ts';

t.test('htmx under the CSP', async (t) => {
  const srv = await startServer(t);
  const browser = await launchBrowser(t);
  // A 4xx answer to an htmx request is reported on the console (by Chromium and by htmx): expected for the 404 below.
  const { page, context, problems } = await openPage(t, browser, { allowConsoleErrors: /status of 404|Error Code 404 from \/no-such-fragment/ });
  await page.goto(`${srv.url}/manual`);
  await until(page, `typeof htmx !== 'undefined'`);
  const cfg = (await page.evaluate(`({ allowEval: htmx.config.allowEval, indicator: htmx.config.includeIndicatorStyles, scripts: htmx.config.allowScriptTags,
    history: htmx.config.historyEnabled, cache: htmx.config.historyCacheSize, styles: document.querySelectorAll('style').length })`)) as Record<string, unknown>;
  t.same(cfg, { allowEval: false, indicator: false, scripts: false, history: false, cache: 0, styles: 0 }, 'htmx configured from the meta tag; no <style> injected');

  // A state change through htmx: POST /lang needs the CSRF token, which only the bundle's hook supplies.
  const sent: Record<string, string>[] = [];
  page.on('request', (r) => {
    if (r.method() === 'POST') sent.push(r.headers());
  });
  const answered = page.waitForResponse((r) => r.request().method() === 'POST' && r.url().endsWith('/lang'));
  await page.evaluate(`htmx.ajax('POST', '/lang', { values: { lang: 'nl', next: '/manual' }, target: '#page-messages', swap: 'none' })`);
  t.equal((await answered).status(), 303, 'accepted: redirected back to the page');
  t.equal(sent.length, 1);
  t.ok(sent[0]['x-csrf-token'] && sent[0]['x-csrf-token'].length > 20, 'the htmx request carried X-CSRF-Token');
  t.equal(sent[0]['hx-request'], 'true');
  const cookies = await context.cookies();
  t.equal(cookies.find((c) => c.name === 'uplink-lang')?.value, 'nl', 'accepted: the language cookie is set');

  // An htmx error: the fragment is swapped into #page-messages (HX-Retarget), in Dutch now.
  await page.goto(`${srv.url}/manual`);
  await until(page, `typeof htmx !== 'undefined'`);
  await page.evaluate(`htmx.ajax('GET', '/no-such-fragment', { target: '#main' })`);
  await until(page, `!!document.querySelector('#page-messages [data-error-code="NOT_FOUND"]')`);
  t.equal(await page.locator('#page-messages').innerText(), 'Deze pagina bestaat niet.');
  t.ok(await page.locator('h1').isVisible(), 'the page itself was not replaced');
  t.same(problems, []);
});
