/** Every `uplink` command. Add yours here (e.g. `...forwardCommands`, `...userCommands`). */
import type { Command } from '../registry.ts';
import { codeCommands } from './code.ts';

export const commands: Command[] = [...codeCommands];
