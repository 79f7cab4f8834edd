// Unions of object schemas told apart by one field (a layer's `type`, a dataset's `kind`, an
// initializer's `className`), written so that a wrong field gets an error that names it.
//
// Why not Type.Union: a plain anyOf makes every validator (TypeBox's Value.Errors, and the
// server's Ajv with allErrors) report every branch that failed, so `{ "type": "dense",
// "units": -4 }` gets "units must be >= 1" buried under a dozen "type must be equal to
// constant" and "must have required property filters". Ajv's `discriminator` keyword would fix
// that, but only when the Ajv instance enables it, and TypeBox ignores it. Here each variant is
// checked only when the tag selects it, with `if`/`else`, which both validators understand.
import Type, { type Static, type TObject, type TSchema, type TUnion, type TUnsafe } from "typebox";

/** The loose, defaults-only twin of each tagged union (see taggedUnion). */
const DEFAULTS_ONLY = new WeakMap<object, TSchema>();

/**
 * `schema` applies only to values that pass `test`. Written `{ if: { not: test }, else: schema }`
 * rather than `{ if: test, then: schema }` on purpose: TypeBox 1.4's Value.Errors drops the
 * errors found under `then` (it reports only 'must match "then" schema') but keeps those found
 * under `else`, so this form names the failing field in both TypeBox and Ajv.
 */
export function when(test: object, schema: object): object {
  return { if: { not: test }, else: schema };
}

/**
 * A union of object schemas, each with a literal `tag` property, that validates like a
 * discriminated union: an unknown tag gets one error on the tag, a known tag is checked
 * against its variant only.
 *
 * The anyOf beside the validating keywords always passes; it exists for Value.Default (what
 * `withDefaults` in spec.ts uses), which fills defaults in only through unions and objects. It
 * holds, per variant, a loose object with that variant's defaults, plus a catch-all for values
 * no tag selects. Arrays of another tagged union (a residual block's layers) get defaults too.
 */
export function taggedUnion<const Variants extends TObject[]>(
  tag: string,
  variants: [...Variants],
  options: { description?: string } = {},
): TUnsafe<Static<TUnion<Variants>>> {
  const tags = variants.map((variant) => (variant.properties[tag] as { const?: unknown } | undefined)?.const);
  if (tags.some((value) => typeof value !== "string")) throw new Error(`taggedUnion: every variant needs a literal "${tag}"`);
  const defaultsOnly = Type.Union([...variants.map((variant) => looseVariant(tag, variant)), { properties: { [tag]: { not: { enum: tags } } } } as TSchema]);
  const schema = Type.Union([...(defaultsOnly.anyOf as TSchema[])], {
    ...options,
    type: "object",
    required: [tag],
    properties: { [tag]: { enum: tags } },
    allOf: variants.map((variant, i) => when({ required: [tag], properties: { [tag]: { const: tags[i] } } }, variant)),
  });
  DEFAULTS_ONLY.set(schema, defaultsOnly);
  // The runtime schema is a TypeBox union (so Value.Default walks it); its static type is the
  // union of the variants, which is what the validating keywords accept.
  return schema as unknown as TUnsafe<Static<TUnion<Variants>>>;
}

/** The variant's tag, its defaults (any value accepted), and the defaults of nested tagged unions. */
function looseVariant(tag: string, variant: TObject): TSchema {
  const properties: Record<string, TSchema> = { [tag]: variant.properties[tag] as TSchema };
  for (const [key, property] of Object.entries(variant.properties)) {
    if (key === tag) continue;
    const schema = property as TSchema & { default?: unknown; items?: object };
    if (schema.default !== undefined) {
      properties[key] = Type.Optional(Type.Unknown({ default: schema.default }));
    } else if (schema.items && DEFAULTS_ONLY.has(schema.items)) {
      properties[key] = Type.Optional(Type.Array(DEFAULTS_ONLY.get(schema.items) as TSchema));
    }
  }
  return Type.Object(properties);
}
