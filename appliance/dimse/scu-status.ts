/**
 * DIMSE response statuses (PS3.7 C, PS3.4 B.2.3 and C.4.1.1.4) in words, and what a C-STORE status means for
 * the instance: delivered ('done'), try again later ('retry') or refused for good ('failed').
 */

export type StoreDisposition = 'done' | 'retry' | 'failed';

const hex = (s: number) => `0x${s.toString(16).toUpperCase().padStart(4, '0')}`;

const exact: Record<number, string> = {
  0x0000: 'Success',
  0x0001: 'Warning: requested optional attributes are not supported',
  0x0107: 'Warning: attribute list error',
  0x0116: 'Warning: attribute value out of range',
  0xb000: 'Warning: coercion of data elements',
  0xb006: 'Warning: elements discarded',
  0xb007: 'Warning: data set does not match SOP class',
  0x0105: 'Failure: no such attribute',
  0x0106: 'Failure: invalid attribute value',
  0x0110: 'Failure: processing failure',
  0x0111: 'Duplicate SOP instance (already stored)',
  0x0112: 'Failure: no such SOP instance',
  0x0117: 'Failure: invalid SOP instance',
  0x0118: 'Failure: no such SOP class',
  0x0119: 'Failure: class-instance conflict',
  0x0120: 'Failure: missing attribute',
  0x0121: 'Failure: missing attribute value',
  0x0122: 'Refused: SOP class not supported',
  0x0124: 'Refused: not authorised',
  0x0210: 'Failure: duplicate invocation',
  0x0211: 'Failure: unrecognised operation',
  0x0212: 'Failure: mistyped argument',
  0x0213: 'Failure: resource limitation',
  0xa701: 'Refused: out of resources (unable to calculate number of matches)',
  0xa702: 'Refused: out of resources (unable to perform sub-operations)',
  0xa801: 'Refused: move destination unknown',
  0xfe00: 'Cancelled',
  0xff00: 'Pending',
  0xff01: 'Pending (some optional keys not supported)',
};

/** The status in words, with its code: "Refused: out of resources (0xA700)". */
export function statusMeaning(status: number): string {
  let text = exact[status];
  if (!text) {
    const hi = status & 0xff00;
    if (hi === 0xa700) text = 'Refused: out of resources';
    else if (hi === 0xa900) text = 'Error: data set does not match SOP class';
    else if ((status & 0xf000) === 0xc000) text = 'Error: cannot understand';
    else if ((status & 0xf000) === 0xb000) text = 'Warning';
    else if ((status & 0xf000) === 0xa000) text = 'Refused';
    else text = 'Unknown status';
  }
  return `${text} (${hex(status)})`;
}

/** What a C-STORE response status means for the instance. */
export function storeDisposition(status: number): StoreDisposition {
  if (status === 0x0000) return 'done';
  // Warnings: the peer stored the instance (possibly coerced); "already stored" counts as delivered.
  if (status === 0x0001 || status === 0x0107 || status === 0x0116 || (status & 0xf000) === 0xb000) return 'done';
  if (status === 0x0111) return 'done';
  // Out of resources, resource limitation, cancelled: the peer may take it later.
  if ((status & 0xff00) === 0xa700 || status === 0x0213 || status === 0xfe00) return 'retry';
  // A9xx, Cxxx and every other refusal: the peer will not take it as it is.
  return 'failed';
}

export function isPending(status: number): boolean {
  return status === 0xff00 || status === 0xff01;
}
