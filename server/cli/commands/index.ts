/** Every `uplink` command. Add yours here (e.g. `...forwardCommands`, `...userCommands`). */
import type { Command } from '../registry.ts';
import { forwardCommands } from '../forward-commands.ts';
import { codeCommands } from './code.ts';
import { userCommands } from './user.ts';

export const commands: Command[] = [...codeCommands, ...forwardCommands, ...userCommands];
