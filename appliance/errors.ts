/**
 * The one error table. Each error has a stable code, an HTTP status, a DIMSE status and whether its message
 * may be shown to the person at the other end. Edges translate (server/ to HTTP, appliance/dimse to DIMSE);
 * anything not in this table becomes 500 / 0xC000 with a generic message.
 */

export interface ErrorKind {
  http: number;
  dimse: number;
  /** May the message be shown to whoever sent the request (uploader, remote node)? */
  expose: boolean;
  /** Message used when none is given (and for unexposed errors). */
  text: string;
}

export const errorTable = {
  NOT_DICOM: { http: 415, dimse: 0xc000, expose: true, text: 'This file is not a DICOM file (no DICM marker after the 128-byte preamble).' },
  MALFORMED: { http: 422, dimse: 0xc000, expose: true, text: 'The DICOM data is malformed.' },
  TRUNCATED: { http: 422, dimse: 0xc000, expose: true, text: 'The DICOM data is cut off.' },
  INVALID_UID: { http: 422, dimse: 0xc000, expose: true, text: 'A required UID is missing or not a valid UID.' },
  UID_MISMATCH: { http: 422, dimse: 0xc210, expose: true, text: 'The dataset\'s SOP Instance UID differs from the one in the request.' },
  UNSUPPORTED_SYNTAX: { http: 415, dimse: 0xc000, expose: true, text: 'The transfer syntax is not supported.' },
  TOO_LARGE: { http: 413, dimse: 0xa700, expose: true, text: 'The data is larger than this appliance accepts.' },
  TOO_COMPLEX: { http: 422, dimse: 0xc000, expose: true, text: 'The DICOM data is nested too deeply or has too many elements.' },
  DISK_FULL: { http: 507, dimse: 0xa700, expose: false, text: 'The appliance is out of storage space.' },
  SCANNER_UNAVAILABLE: { http: 503, dimse: 0xa700, expose: false, text: 'The malware scanner is not available; the file is held and will be scanned when it is back.' },
  MALWARE: { http: 422, dimse: 0xc000, expose: true, text: 'The file was refused: the malware scanner found a threat in it.' },
  BAD_REQUEST: { http: 400, dimse: 0xc000, expose: true, text: 'The request is not valid.' },
  UNAUTHENTICATED: { http: 401, dimse: 0xc000, expose: true, text: 'Please log in.' },
  LOGIN_FAILED: { http: 401, dimse: 0xc000, expose: true, text: 'The user name or password is wrong.' },
  FORBIDDEN: { http: 403, dimse: 0xc000, expose: true, text: 'You are not allowed to do this.' },
  CSRF: { http: 403, dimse: 0xc000, expose: true, text: 'The form has expired. Reload the page and try again.' },
  NOT_FOUND: { http: 404, dimse: 0xc000, expose: true, text: 'Not found.' },
  CONFLICT: { http: 409, dimse: 0xc000, expose: true, text: 'This conflicts with the current state.' },
  CODE_UNKNOWN: { http: 403, dimse: 0xc000, expose: true, text: 'This upload code is not valid. Check it and type it again.' },
  CODE_MISTYPED: { http: 400, dimse: 0xc000, expose: true, text: 'This upload code has a typing error. Check each character and try again.' },
  CODE_EXPIRED: { http: 410, dimse: 0xc000, expose: true, text: 'This upload code has expired. Ask the hospital for a new one.' },
  CODE_REVOKED: { http: 410, dimse: 0xc000, expose: true, text: 'This upload code has been withdrawn by the hospital.' },
  SESSION_EXPIRED: { http: 401, dimse: 0xc000, expose: true, text: 'Your session has ended. Enter your upload code again.' },
  RATE_LIMITED: { http: 429, dimse: 0xa700, expose: true, text: 'Too many attempts. Wait a few minutes and try again.' },
  ALLOWANCE_EXCEEDED: { http: 413, dimse: 0xa700, expose: true, text: 'This upload is larger than the upload code allows.' },
  UNAVAILABLE: { http: 503, dimse: 0xa700, expose: true, text: 'The service is not available right now. Try again later.' },
  INTERNAL: { http: 500, dimse: 0xc000, expose: false, text: 'Something went wrong on our side. The error has been logged.' },
} satisfies Record<string, ErrorKind>;

export type ErrorCode = keyof typeof errorTable;

export class AppError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message?: string, options?: { cause?: unknown }) {
    super(message ?? errorTable[code].text, options);
    this.code = code;
    this.name = 'AppError';
  }
  get kind(): ErrorKind {
    return errorTable[this.code];
  }
}

/** Map any thrown value to an AppError: known errors keep their code, ENOSPC is DISK_FULL, the rest INTERNAL. */
export function toAppError(err: unknown): AppError {
  if (err instanceof AppError) return err;
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT') return new AppError('DISK_FULL', undefined, { cause: err });
  return new AppError('INTERNAL', undefined, { cause: err });
}

/** What may be shown to the other side: the message if the kind allows it, else the kind's generic text. */
export function publicMessage(err: AppError): string {
  return err.kind.expose ? err.message : err.kind.text;
}
