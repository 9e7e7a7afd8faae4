/**
 * CSV for spreadsheets (RFC 4180: comma-separated, CRLF line ends, a field quoted when it holds a comma, a quote,
 * a line break or leading/trailing spaces, quotes doubled), safe to open in Excel or LibreOffice: a cell that
 * starts with = + - @ (or a tab or carriage return) would be read as a formula ("CSV injection"), so it gets a
 * leading apostrophe, which spreadsheets show as text.
 */

/** One cell. null / undefined: empty. */
export function csvCell(v: unknown): string {
  let s = v === null || v === undefined ? '' : String(v);
  if (/^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\r\n]|^\s|\s$/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** One line, CRLF-terminated. */
export function csvLine(cells: readonly unknown[]): string {
  return `${cells.map(csvCell).join(',')}\r\n`;
}

/**
 * Parse CSV text (RFC 4180, as csvLine writes it): rows of fields. For tests and for reading an export back;
 * it does not undo the apostrophe of formula-looking cells.
 */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  for (; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') (field += '"'), i++;
        else quoted = false;
      } else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') (row.push(field), (field = ''));
    else if (c === '\r' && text[i + 1] === '\n') {
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
      i++;
    } else field += c;
  }
  if (field !== '' || row.length) (row.push(field), rows.push(row));
  return rows;
}
