import { describe, expect, it } from "vitest";
import { CsvError, parseCsv } from "../../trainer/data/csv.ts";

const bytes = (text: string) => new TextEncoder().encode(text);

function problem(text: string | Uint8Array, options = { target: "y", task: "classification" as const }): string {
  try {
    parseCsv(typeof text === "string" ? bytes(text) : text, options);
  } catch (error) {
    if (error instanceof CsvError) return error.message;
    throw error;
  }
  throw new Error("expected a CsvError");
}

describe("parseCsv", () => {
  it("turns a classification target into sorted one-hot labels and features into numbers", () => {
    const parsed = parseCsv(bytes("a,b,y\r\n1,2,cat\n3,4.5,dog\n-1,0,cat\n"), { target: "y", task: "classification" });
    expect(parsed).toMatchObject({ featureColumns: ["a", "b"], targetColumn: "y", labels: ["cat", "dog"], rows: 3 });
    expect(Array.from(parsed.x)).toEqual([1, 2, 3, 4.5, -1, 0]);
    expect(Array.from(parsed.y)).toEqual([1, 0, 0, 1, 1, 0]);
  });

  it("reads a numeric regression target, chosen features, quotes and a BOM", () => {
    const parsed = parseCsv(bytes('\uFEFFname,x,"y",z\n"Smith, J",1,10,7\n"say ""hi""",2,20,8\n'), { target: "y", features: ["x"], task: "regression" });
    expect(parsed).toMatchObject({ featureColumns: ["x"], labels: null, rows: 2 });
    expect(Array.from(parsed.x)).toEqual([1, 2]);
    expect(Array.from(parsed.y)).toEqual([10, 20]);
  });

  it.each([
    ["a ragged row, naming its line", "a,y\n1,x\n2\n", /line 3: has 1 cells, the header has 2/],
    ["a non-numeric cell, naming line and column", "a,y\n1,x\nabc,y\n", /line 3: column "a": "abc" is not a finite number/],
    ["an empty cell", "a,y\n,x\n1,y\n", /line 2: column "a": the cell is empty/],
    ["Infinity", "a,y\nInfinity,x\n1,y\n", /line 2: .*not a finite number/],
    ["an unknown target", "a,b\n1,2\n", /target column "y" is not in the header/],
    ["a duplicate column name", "a,a,y\n1,2,x\n", /names column "a" twice/],
    ["a header only", "a,y\n", /no data rows/],
    ["an empty file", "", /empty/],
    ["a single class", "a,y\n1,x\n2,x\n", /only one value/],
    ["an unclosed quote", 'a,y\n"1,x\n', /never closed/],
  ])("refuses %s", (_what, text, message) => {
    expect(problem(text)).toMatch(message);
  });

  it("refuses bytes that are not UTF-8", () => {
    expect(problem(new Uint8Array([0x61, 0x2c, 0x79, 0x0a, 0xff, 0xfe, 0x2c, 0x31]))).toMatch(/not valid UTF-8/);
  });

  it("refuses unknown or target feature columns", () => {
    expect(() => parseCsv(bytes("a,y\n1,x\n2,z\n"), { target: "y", features: ["b"], task: "classification" })).toThrow(/feature column "b" is not in the header/);
    expect(() => parseCsv(bytes("a,y\n1,x\n2,z\n"), { target: "y", features: ["y"], task: "classification" })).toThrow(/both the target and a feature/);
  });
});
