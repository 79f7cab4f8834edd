// The schema the migrations build must be the schema.prisma describes, model by model, so the
// Prisma client and the database can never disagree.
import { readFile } from "node:fs/promises";
import { type GetDMMFError, getDMMF } from "@prisma/get-dmmf";
import { beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../helpers/database.ts";

type DMMF = Exclude<ReturnType<typeof getDMMF>, GetDMMFError>;
type Field = DMMF["datamodel"]["models"][number]["fields"][number];

/** The Postgres type (information_schema udt_name) Prisma maps a field to. */
function expectedType(field: Field): string {
  const native = field.nativeType?.[0];
  const base =
    field.kind === "enum"
      ? field.type
      : native === "Uuid"
        ? "uuid"
        : native === "Timestamptz"
          ? "timestamptz"
          : native === "Json"
            ? "json"
            : ({ String: "text", Int: "int4", BigInt: "int8", Float: "float8", Boolean: "bool", DateTime: "timestamp", Json: "jsonb", Decimal: "numeric", Bytes: "bytea" } as Record<string, string>)[field.type];
  if (!base) throw new Error(`no mapping for ${field.name}: ${field.type}`);
  return field.isList ? `_${base}` : base;
}

describe("schema.prisma and the migrations", () => {
  let dmmf: DMMF;
  let db: TestDatabase;
  beforeAll(async () => {
    const parsed = getDMMF({ datamodel: await readFile(new URL("../../prisma/schema.prisma", import.meta.url), "utf8") });
    if (!("datamodel" in parsed)) throw parsed.error;
    dmmf = parsed;
    db = await createTestDatabase();
  });

  it("create the same tables", async () => {
    const tables = await db.query<{ table_name: string }>(
      `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_name <> '_prisma_migrations'`,
    );
    expect(tables.map((t) => t.table_name).sort()).toEqual(dmmf.datamodel.models.map((m) => m.dbName ?? m.name).sort());
  });

  it("give every model the same columns, types and nullability", async () => {
    for (const model of dmmf.datamodel.models) {
      const table = model.dbName ?? model.name;
      const columns = await db.query<{ column_name: string; udt_name: string; is_nullable: string }>(
        `SELECT column_name, udt_name, is_nullable FROM information_schema.columns WHERE table_schema = 'public' AND table_name = $1`,
        [table],
      );
      const actual = Object.fromEntries(columns.map((c) => [c.column_name, { type: c.udt_name, nullable: c.is_nullable === "YES" }]));
      const expected = Object.fromEntries(
        model.fields
          .filter((f) => f.kind !== "object")
          // Prisma creates list columns without NOT NULL.
          .map((f) => [f.dbName ?? f.name, { type: expectedType(f), nullable: f.isList || !f.isRequired }]),
      );
      expect({ table, columns: actual }).toEqual({ table, columns: expected });
    }
  });

  it("give every model the same primary key", async () => {
    for (const model of dmmf.datamodel.models) {
      const table = model.dbName ?? model.name;
      const keyColumns = await db.query<{ column_name: string }>(
        `SELECT a.attname AS column_name
         FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
         WHERE i.indrelid = format('%I', $1::text)::regclass AND i.indisprimary
         ORDER BY array_position(i.indkey, a.attnum)`,
        [table],
      );
      const expected = model.primaryKey?.fields ?? model.fields.filter((f) => f.isId).map((f) => f.name);
      expect({ table, key: keyColumns.map((c) => c.column_name) }).toEqual({ table, key: expected });
    }
  });

  it("define the same enums with the same values", async () => {
    for (const enumType of dmmf.datamodel.enums) {
      const values = await db.query<{ label: string }>(
        `SELECT e.enumlabel AS label FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid WHERE t.typname = $1 ORDER BY e.enumsortorder`,
        [enumType.dbName ?? enumType.name],
      );
      expect(values.map((v) => v.label)).toEqual(enumType.values.map((v) => v.dbName ?? v.name));
    }
  });
});
