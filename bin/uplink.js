#!/usr/bin/env node
// The `uplink` command-line tool. A tiny launcher: registers tsx (so the TypeScript sources run as they are,
// like `npm start`) and hands over to server/cli/main.ts.
import { register } from 'tsx/esm/api';

register();
const { main } = await import(new URL('../server/cli/main.ts', import.meta.url).href);
process.exitCode = await main(process.argv.slice(2));
