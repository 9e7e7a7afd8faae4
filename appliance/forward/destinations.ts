/**
 * Destinations: the nodes of dicom.nodes with send: true. Which of them a policy forwards to automatically
 * (policies.<name>.forwardTo, and for the "upload" policy also dicom.pacs), and a C-ECHO check per node.
 */
import type { Config, NodeConfig } from '../../config/schema.ts';
import { echo, type EchoResult } from '../dimse/echo-scu.ts';
import type { Logger } from '../log.ts';

/** The policy whose instances also go to the hospital PACS (dicom.pacs). */
export const UPLOAD_POLICY = 'upload';

export function sendableNodes(config: Config): NodeConfig[] {
  return config.dicom.nodes.filter((n) => n.send);
}

/** The node named `name` if we may send to it, else undefined. */
export function sendableNode(config: Config, name: string): NodeConfig | undefined {
  return config.dicom.nodes.find((n) => n.name === name && n.send);
}

/** Why `name` cannot be sent to, in words (for failed jobs and refused requests). */
export function notSendableReason(config: Config, name: string): string {
  const n = config.dicom.nodes.find((x) => x.name === name);
  if (!n) return `the destination "${name}" is not configured (no node of that name in dicom.nodes)`;
  return `the destination "${name}" may not be sent to (its node in dicom.nodes does not have "send": true)`;
}

/** Node names instances stored under `policy` are forwarded to (unique, in order; only sendable ones). */
export function destinationsFor(config: Config, policy: string | undefined): string[] {
  if (!policy) return [];
  const p = config.policies[policy];
  const names = [...(p?.forwardTo ?? [])];
  if (policy === UPLOAD_POLICY && config.dicom.pacs) names.push(config.dicom.pacs);
  return [...new Set(names)].filter((n) => sendableNode(config, n));
}

/** C-ECHO a configured node by name, with our AE title. */
export async function echoNode(config: Config, name: string, opts: { logger?: Logger; signal?: AbortSignal } = {}): Promise<EchoResult> {
  const node = config.dicom.nodes.find((n) => n.name === name);
  if (!node) return { ok: false, ms: 0, detail: `there is no node "${name}" in dicom.nodes` };
  return echo({ aeTitle: node.aeTitle, host: node.host, port: node.port }, { callingAeTitle: config.dicom.aeTitle, logger: opts.logger, signal: opts.signal });
}
