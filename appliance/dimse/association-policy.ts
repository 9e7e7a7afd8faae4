/**
 * Who may associate with us and for what. A call is accepted only when the called AE title is ours, the
 * calling AE title and the peer's address match a configured node, and then only presentation contexts for
 * the services in that node's `allow` list. Pure functions: the SCP applies the decision.
 */
import type { Config, NodeConfig, Service } from '../../config/schema.ts';
import { storableSyntaxes, EXPLICIT_LE, IMPLICIT_LE, EXPLICIT_BE } from '../dicom/transfer-syntax.ts';

export const VERIFICATION = '1.2.840.10008.1.1';
export const PATIENT_ROOT_FIND = '1.2.840.10008.5.1.4.1.2.1.1';
export const STUDY_ROOT_FIND = '1.2.840.10008.5.1.4.1.2.2.1';

/** Storage SOP classes outside the 1.2.840.10008.5.1.4.1.1 arc. */
const OTHER_STORAGE = new Set([
  '1.2.840.10008.5.1.4.34.7', // RT Beams Delivery Instruction Storage
  '1.2.840.10008.5.1.4.34.10', // RT Brachy Application Setup Delivery Instruction Storage
  '1.2.840.10008.5.1.4.38.1', // Hanging Protocol Storage
  '1.2.840.10008.5.1.4.39.1', // Color Palette Storage
  '1.2.840.10008.5.1.4.43.1', // Generic Implant Template Storage
  '1.2.840.10008.5.1.4.44.1', // Implant Assembly Template Storage
  '1.2.840.10008.5.1.4.45.1', // Implant Template Group Storage
]);

/**
 * A storage SOP class, by UID: the standard storage arc (1.2.840.10008.5.1.4.1.1.*), the few standard storage
 * classes elsewhere, or a private (non-1.2.840.10008) SOP class, which vendors use for private storage.
 */
export function isStorageSopClass(uid: string): boolean {
  if (uid.startsWith('1.2.840.10008.5.1.4.1.1.')) return true;
  if (OTHER_STORAGE.has(uid)) return true;
  return !uid.startsWith('1.2.840.10008.') && /^[0-9.]{1,64}$/.test(uid);
}

export function serviceFor(abstractSyntax: string): Service | null {
  if (abstractSyntax === VERIFICATION) return 'echo';
  if (abstractSyntax === PATIENT_ROOT_FIND || abstractSyntax === STUDY_ROOT_FIND) return 'find';
  if (isStorageSopClass(abstractSyntax)) return 'store';
  return null;
}

export type RejectKind = 'called-ae' | 'calling-ae' | 'limit' | 'no-context';

export interface ContextDecision {
  id: number;
  abstractSyntax: string;
  /** Accepted transfer syntax, or the reason for rejecting the context. */
  accept?: string;
  reject?: 'abstract-syntax' | 'transfer-syntax' | 'user';
}

export type AssociationDecision =
  | { ok: true; node: NodeConfig; contexts: ContextDecision[] }
  | { ok: false; kind: RejectKind; reason: string };

/** Normalise an AE title as it travels (space padded): trailing and leading spaces are not significant. */
export const normaliseAe = (ae: string): string => ae.trim();

/** Strip an IPv4-mapped IPv6 prefix so ::ffff:127.0.0.1 matches 127.0.0.1. */
export function normaliseIp(ip: string | undefined): string {
  if (!ip) return '';
  return ip.startsWith('::ffff:') ? ip.slice(7) : ip;
}

function hostMatches(node: NodeConfig, ip: string): boolean {
  if (node.host === ip) return true;
  if (node.host === 'localhost') return ip === '127.0.0.1' || ip === '::1';
  return false;
}

export function findCallingNode(config: Config, callingAe: string, ip: string): NodeConfig | undefined {
  return config.dicom.nodes.find((n) => normaliseAe(n.aeTitle) === normaliseAe(callingAe) && hostMatches(n, normaliseIp(ip)));
}

/**
 * Choose the transfer syntax for a context. Storage: the first proposed syntax we keep as it is (the sender's
 * preference, normally its file's own syntax); Deflated is kept as received and inflated, with a cap, only to
 * be read. Verification and queries: plain syntaxes only.
 */
export function chooseSyntax(service: Service, proposed: string[]): string | undefined {
  if (service === 'store') return proposed.find((ts) => storableSyntaxes.includes(ts));
  for (const ts of [EXPLICIT_LE, IMPLICIT_LE, EXPLICIT_BE]) if (proposed.includes(ts)) return ts;
  return undefined;
}

export function decideAssociation(
  config: Config,
  req: { calledAe: string; callingAe: string; ip: string; contexts: { id: number; abstractSyntax: string; transferSyntaxes: string[] }[] },
): AssociationDecision {
  if (normaliseAe(req.calledAe) !== normaliseAe(config.dicom.aeTitle))
    return { ok: false, kind: 'called-ae', reason: `called AE title "${normaliseAe(req.calledAe)}" is not ours ("${config.dicom.aeTitle}")` };
  const node = findCallingNode(config, req.callingAe, req.ip);
  if (!node)
    return {
      ok: false,
      kind: 'calling-ae',
      reason: `no configured node has AE title "${normaliseAe(req.callingAe)}" and address ${normaliseIp(req.ip)}`,
    };
  const contexts: ContextDecision[] = req.contexts.map((c) => {
    const service = serviceFor(c.abstractSyntax);
    if (!service) return { id: c.id, abstractSyntax: c.abstractSyntax, reject: 'abstract-syntax' };
    if (!node.allow.includes(service)) return { id: c.id, abstractSyntax: c.abstractSyntax, reject: 'user' };
    const ts = chooseSyntax(service, c.transferSyntaxes);
    return ts ? { id: c.id, abstractSyntax: c.abstractSyntax, accept: ts } : { id: c.id, abstractSyntax: c.abstractSyntax, reject: 'transfer-syntax' };
  });
  if (!contexts.some((c) => c.accept)) {
    const services = [...new Set(req.contexts.map((c) => serviceFor(c.abstractSyntax) ?? 'unsupported'))].join(', ');
    return {
      ok: false,
      kind: 'no-context',
      reason: `node "${node.name}" proposed nothing it may use (proposed: ${services}; allowed: ${node.allow.join(', ') || 'nothing'})`,
    };
  }
  return { ok: true, node, contexts };
}
