/**
 * The configuration reference (every key: what, default, example) as Markdown, from config/schema.ts.
 *   npm run config:doc                 print it
 *   npm run config:doc -- --write      write it into README.md between the config-reference markers
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { defaults, keyDocs } from './schema.ts';

const START = '<!-- config-reference:start -->';
const END = '<!-- config-reference:end -->';

function valueAt(key: string): unknown {
  if (key.includes('[]') || key.includes('<name>')) return undefined;
  return key.split('.').reduce<any>((o, k) => (o == null ? undefined : o[k]), defaults);
}

export function configReference(): string {
  const rows = keyDocs.map((k) => {
    const d = valueAt(k.path);
    const shown = d === undefined || (typeof d === 'object' && d !== null && JSON.stringify(d).length > 60) ? '(see text)' : `\`${JSON.stringify(d)}\``;
    return `| \`${k.path}\` | ${k.doc} | ${shown} | \`${k.example}\` |`;
  });
  return ['| key | what | default | example |', '|---|---|---|---|', ...rows].join('\n');
}

/** README text with the reference section replaced by the current one. */
export function withReference(readme: string): string {
  const a = readme.indexOf(START);
  const b = readme.indexOf(END);
  if (a < 0 || b < a) throw new Error(`README.md lacks the ${START} / ${END} markers`);
  return `${readme.slice(0, a + START.length)}\n${configReference()}\n${readme.slice(b)}`;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  if (process.argv.includes('--write')) {
    const file = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'README.md');
    writeFileSync(file, withReference(readFileSync(file, 'utf8')));
    console.log(`updated ${file}`);
  } else console.log(configReference());
}
