// problem+json field errors placed next to the form field they are about. The API names fields
// with JSON pointers into the body ("/optimizer/learningRate"); the form's common fields each
// own one pointer, and whatever no field owns is shown above the JSON editor.
import type { Problem } from "./api-types.ts";

export interface PlacedErrors {
  /** By form field pointer: the messages for that field and anything inside it. */
  byField: Record<string, string[]>;
  /** Messages no form field owns, with their pointer so the JSON editor's reader can find them. */
  other: string[];
}

/** Whether `pointer` is `field` or lies inside it ("/optimizer/learningRate" is in "/optimizer"). */
export function pointerWithin(pointer: string, field: string): boolean {
  return pointer === field || pointer.startsWith(`${field}/`);
}

type FieldError = NonNullable<Problem["errors"]>[number];

/**
 * The errors worth showing. A value that matches no variant of a union (the optimizer is one per
 * type) gets an error from every variant: "must match a schema in anyOf" on the union, "must be
 * equal to constant" for each variant whose `type` it is not, and the real reason. When a union
 * failed and its subtree holds other errors, those two kinds are noise; repeats are dropped too.
 */
export function usefulErrors(errors: readonly FieldError[]): FieldError[] {
  const unions = errors.filter((e) => /anyOf|oneOf/.test(e.message)).map((e) => e.field);
  const inFailedUnion = (e: FieldError) => unions.some((union) => pointerWithin(e.field, union));
  const isVariantNoise = (e: FieldError) => /anyOf|oneOf|equal to constant/.test(e.message);
  const kept = errors.filter((e) => {
    if (!inFailedUnion(e) || !isVariantNoise(e)) return true;
    const union = unions.find((u) => pointerWithin(e.field, u)) as string;
    return !errors.some((other) => pointerWithin(other.field, union) && !isVariantNoise(other));
  });
  const seen = new Set<string>();
  return kept.filter((e) => {
    const key = `${e.field} ${e.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** Assigns each error of a problem to the most specific form field that owns it. */
export function placeErrors(problem: Problem, fields: readonly string[]): PlacedErrors {
  const byField: Record<string, string[]> = {};
  const other: string[] = [];
  const ordered = [...fields].sort((a, b) => b.length - a.length);
  for (const error of usefulErrors(problem.errors ?? [])) {
    const owner = ordered.find((field) => pointerWithin(error.field, field));
    if (owner) byField[owner] = [...(byField[owner] ?? []), error.message];
    else other.push(`${error.field === "/" ? "spec" : error.field}: ${error.message}`);
  }
  if (!problem.errors?.length) other.push(problem.detail ?? problem.title);
  return { byField, other };
}

/** Reads the value at a JSON pointer ("/optimizer/learningRate"), or undefined. */
export function getAtPointer(document: unknown, pointer: string): unknown {
  let value = document;
  for (const part of pointerParts(pointer)) {
    if (value === null || typeof value !== "object") return undefined;
    value = (value as Record<string, unknown>)[part];
  }
  return value;
}

/** A copy of `document` with `value` set at `pointer`, creating objects on the way; undefined deletes. */
export function setAtPointer<T extends Record<string, unknown>>(document: T, pointer: string, value: unknown): T {
  const parts = pointerParts(pointer);
  const copy = structuredClone(document) as Record<string, unknown>;
  let target = copy;
  parts.forEach((part, i) => {
    if (i === parts.length - 1) {
      if (value === undefined) delete target[part];
      else target[part] = value;
      return;
    }
    const next = target[part];
    target[part] = next !== null && typeof next === "object" ? next : {};
    target = target[part] as Record<string, unknown>;
  });
  return copy as T;
}

function pointerParts(pointer: string): string[] {
  return pointer
    .split("/")
    .slice(1)
    .map((part) => part.replaceAll("~1", "/").replaceAll("~0", "~"));
}
