// Uploaded CSV datasets: a header row, then one example per row. The user names the target
// column (and optionally the feature columns; default: all others). A classification target's
// values become class labels (one-hot targets); a regression target must be numeric. Every
// problem names the line and column, and nothing is half-parsed.

export interface CsvOptions {
  target: string;
  /** Feature columns; default every column but the target. */
  features?: string[];
  task: "classification" | "regression";
}

export interface ParsedCsv {
  featureColumns: string[];
  targetColumn: string;
  /** Class labels in one-hot order (classification only). */
  labels: string[] | null;
  rows: number;
  /** rows × features, row-major. */
  x: Float32Array;
  /** rows × (labels for classification, 1 for regression), row-major. */
  y: Float32Array;
}

export class CsvError extends Error {
  constructor(
    message: string,
    /** 1-based line of the file, when the problem is on one line. */
    readonly line?: number,
  ) {
    super(line === undefined ? message : `line ${line}: ${message}`);
    this.name = "CsvError";
  }
}

/** Most distinct labels a classification target may have. */
export const MAX_CLASSES = 1000;

export function parseCsv(bytes: Uint8Array, options: CsvOptions): ParsedCsv {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new CsvError("the file is not valid UTF-8 (save it as UTF-8 CSV)");
  }
  const records = splitRecords(text.replace(/^\uFEFF/, ""));
  const header = records.shift();
  if (!header || header.cells.every((cell) => cell.trim() === "")) throw new CsvError("the file is empty: it needs a header row and at least one data row");
  const columns = header.cells.map((cell) => cell.trim());
  columns.forEach((name, i) => {
    if (name === "") throw new CsvError(`column ${i + 1} has no name in the header`, header.line);
    if (columns.indexOf(name) !== i) throw new CsvError(`the header names column "${name}" twice`, header.line);
  });
  const targetIndex = columns.indexOf(options.target);
  if (targetIndex < 0) throw new CsvError(`the target column "${options.target}" is not in the header (${columns.join(", ")})`);
  const featureColumns = options.features ?? columns.filter((name) => name !== options.target);
  for (const name of featureColumns) {
    if (!columns.includes(name)) throw new CsvError(`the feature column "${name}" is not in the header (${columns.join(", ")})`);
    if (name === options.target) throw new CsvError(`"${name}" cannot be both the target and a feature`);
  }
  if (featureColumns.length === 0) throw new CsvError("there are no feature columns besides the target");
  const featureIndexes = featureColumns.map((name) => columns.indexOf(name));

  const data = records.filter((record) => !(record.cells.length === 1 && record.cells[0]?.trim() === ""));
  if (data.length === 0) throw new CsvError("the file has a header but no data rows");
  const x = new Float32Array(data.length * featureColumns.length);
  const targetValues: string[] = [];
  data.forEach((record, row) => {
    if (record.cells.length !== columns.length) {
      throw new CsvError(`has ${record.cells.length} cells, the header has ${columns.length}`, record.line);
    }
    featureIndexes.forEach((column, f) => {
      x[row * featureColumns.length + f] = numberIn(record, column, columns);
    });
    targetValues.push((record.cells[targetIndex] ?? "").trim());
  });

  if (options.task === "regression") {
    const y = new Float32Array(data.length);
    data.forEach((record, row) => {
      y[row] = numberIn(record, targetIndex, columns);
    });
    return { featureColumns, targetColumn: options.target, labels: null, rows: data.length, x, y };
  }
  const labels = [...new Set(targetValues)].sort();
  if (labels.length < 2) throw new CsvError(`the target column "${options.target}" has only one value; classification needs at least two`);
  if (labels.length > MAX_CLASSES) throw new CsvError(`the target column "${options.target}" has ${labels.length} distinct values; at most ${MAX_CLASSES} classes`);
  const index = new Map(labels.map((label, i) => [label, i]));
  const y = new Float32Array(data.length * labels.length);
  targetValues.forEach((value, row) => {
    y[row * labels.length + (index.get(value) as number)] = 1;
  });
  return { featureColumns, targetColumn: options.target, labels, rows: data.length, x, y };
}

function numberIn(record: CsvRecord, column: number, columns: string[]): number {
  const cell = (record.cells[column] ?? "").trim();
  const value = cell === "" ? Number.NaN : Number(cell);
  if (!Number.isFinite(value)) {
    throw new CsvError(`column "${columns[column]}": ${cell === "" ? "the cell is empty" : `${JSON.stringify(cell.slice(0, 40))} is not a finite number`}`, record.line);
  }
  return value;
}

interface CsvRecord {
  cells: string[];
  /** 1-based line where the record starts. */
  line: number;
}

/** RFC 4180 records: commas, CRLF or LF, double-quoted cells with "" for a quote. */
function splitRecords(text: string): CsvRecord[] {
  const records: CsvRecord[] = [];
  let cells: string[] = [];
  let cell = "";
  let quoted = false;
  let line = 1;
  let recordLine = 1;
  for (let i = 0; i < text.length; i++) {
    const char = text[i];
    if (quoted) {
      if (char === '"' && text[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (char === '"') {
        quoted = false;
      } else {
        if (char === "\n") line++;
        cell += char;
      }
    } else if (char === '"' && cell.trim() === "") {
      quoted = true;
      cell = "";
    } else if (char === ",") {
      cells.push(cell);
      cell = "";
    } else if (char === "\n" || char === "\r") {
      if (char === "\r" && text[i + 1] === "\n") i++;
      cells.push(cell);
      records.push({ cells, line: recordLine });
      cells = [];
      cell = "";
      line++;
      recordLine = line;
    } else {
      cell += char;
    }
  }
  if (quoted) throw new CsvError("a quoted cell is never closed", recordLine);
  if (cell !== "" || cells.length > 0) {
    cells.push(cell);
    records.push({ cells, line: recordLine });
  }
  return records;
}
