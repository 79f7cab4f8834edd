// New job: a preset picker, a form for the common fields and a JSON editor for the whole spec,
// kept in step with each other. The API's problem+json errors are shown at the field they name.
import { useEffect, useState } from "preact/hooks";
import { type ApiError, api, useApi } from "../api.ts";
import type { Job, Preset, Problem } from "../lib/api-types.ts";
import { getAtPointer, type PlacedErrors, placeErrors, setAtPointer } from "../lib/problems.ts";
import { navigate } from "../router.tsx";
import { canWrite, useSession } from "../session.ts";

type Spec = Record<string, unknown>;

interface Field {
  pointer: string;
  label: string;
  kind: "text" | "number" | "select";
  options?: string[];
  hint?: string;
}

const FIELDS: Field[] = [
  { pointer: "/name", label: "Name", kind: "text" },
  { pointer: "/steps", label: "Steps", kind: "number", hint: "training steps (or give epochs in the JSON)" },
  { pointer: "/batchSize", label: "Batch size", kind: "number" },
  { pointer: "/optimizer/type", label: "Optimizer", kind: "select", options: ["sgd", "momentum", "adam", "rmsprop", "adagrad"] },
  { pointer: "/optimizer/learningRate", label: "Learning rate", kind: "number" },
  { pointer: "/watchdog/policy", label: "Watchdog policy", kind: "select", options: ["gradguard", "zclip", "autoclip", "static", "off"] },
  { pointer: "/seed", label: "Seed", kind: "number" },
];

const STARTER: Spec = {
  name: "my job",
  model: { layers: [{ type: "dense", units: 32, activation: "relu", inputShape: [2] }, { type: "dense", units: 2 }] },
  data: { kind: "spirals", size: 2048, seed: 1 },
  loss: "softmaxCrossEntropy",
  optimizer: { type: "sgd", learningRate: 0.1 },
  batchSize: 64,
  steps: 500,
  watchdog: { policy: "gradguard" },
};

export function NewJobPage() {
  const session = useSession();
  const presets = useApi<{ items: Preset[] }>("/presets");
  const [presetId, setPresetId] = useState("");
  const [spec, setSpec] = useState<Spec>(STARTER);
  const [text, setText] = useState(() => JSON.stringify(STARTER, null, 2));
  const [jsonError, setJsonError] = useState<string>();
  const [errors, setErrors] = useState<PlacedErrors>({ byField: {}, other: [] });
  const [busy, setBusy] = useState(false);

  const replaceSpec = (next: Spec) => {
    setSpec(next);
    setText(JSON.stringify(next, null, 2));
    setJsonError(undefined);
  };

  useEffect(() => {
    // The explosion demo is what people come to see first: it is the default pick.
    const first = presets.data?.items.find((p) => p.id === "explosion-guarded") ?? presets.data?.items[0];
    if (first && presetId === "") {
      setPresetId(first.id);
      replaceSpec(first.spec);
    }
  }, [presets.data, presetId]);

  const pickPreset = (id: string) => {
    setPresetId(id);
    const preset = presets.data?.items.find((p) => p.id === id);
    if (preset) replaceSpec(preset.spec);
    setErrors({ byField: {}, other: [] });
  };

  const editField = (field: Field, raw: string) => {
    const value = raw === "" ? undefined : field.kind === "number" ? Number(raw) : raw;
    replaceSpec(setAtPointer(spec, field.pointer, value));
  };

  const editText = (value: string) => {
    setText(value);
    try {
      const parsed: unknown = JSON.parse(value);
      if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) throw new Error("the spec must be a JSON object");
      setSpec(parsed as Spec);
      setJsonError(undefined);
    } catch (error) {
      setJsonError((error as Error).message);
    }
  };

  const submit = async (event: Event) => {
    event.preventDefault();
    if (jsonError) return;
    setBusy(true);
    setErrors({ byField: {}, other: [] });
    try {
      const job = await api<Job>("/jobs", { method: "POST", body: spec });
      navigate(`/jobs/${job.id}`);
    } catch (error) {
      setErrors(placeErrors((error as ApiError).problem as Problem, FIELDS.map((f) => f.pointer)));
      setBusy(false);
    }
  };

  if (!canWrite(session)) return <p class="empty-state">Your token is read-only: it can watch jobs but not submit them.</p>;
  const preset = presets.data?.items.find((p) => p.id === presetId);

  return (
    <section>
      <div class="page-head">
        <h1>New job</h1>
      </div>
      <form class="new-job" onSubmit={submit} noValidate>
        <div class="card">
          <label for="preset">Preset</label>
          <select id="preset" value={presetId} onChange={(e) => pickPreset(e.currentTarget.value)}>
            {presets.loading && <option value="">loading presets…</option>}
            {presets.data?.items.map((p) => (
              <option key={p.id} value={p.id}>
                {p.title}
              </option>
            ))}
          </select>
          {presets.error && <p class="field-error">Presets unavailable: {presets.error.message}</p>}
          {preset && <p class="muted">{preset.description}</p>}
          <div class="fields">
            {FIELDS.map((field) => {
              const id = `field-${field.pointer.slice(1).replaceAll("/", "-")}`;
              const value = getAtPointer(spec, field.pointer);
              const messages = errors.byField[field.pointer];
              const describedBy = messages ? `${id}-error` : undefined;
              return (
                <div key={field.pointer} class={`field${messages ? " invalid" : ""}`}>
                  <label for={id}>{field.label}</label>
                  {field.kind === "select" ? (
                    <select id={id} value={String(value ?? "")} aria-invalid={messages ? true : undefined} aria-describedby={describedBy} onChange={(e) => editField(field, e.currentTarget.value)}>
                      {field.options?.map((option) => (
                        <option key={option} value={option}>
                          {option}
                        </option>
                      ))}
                    </select>
                  ) : (
                    <input
                      id={id}
                      {...(field.kind === "number" ? { type: "number" as const, step: "any" } : { type: "text" as const })}
                      value={value === undefined || value === null ? "" : String(value)}
                      aria-invalid={messages ? true : undefined}
                      aria-describedby={describedBy}
                      onChange={(e) => editField(field, e.currentTarget.value)}
                    />
                  )}
                  {field.hint && !messages && <small class="muted">{field.hint}</small>}
                  {messages && (
                    <small id={describedBy} class="field-error">
                      {messages.join("; ")}
                    </small>
                  )}
                </div>
              );
            })}
          </div>
        </div>
        <div class="card">
          <label for="spec-json">Full spec (JSON)</label>
          {errors.other.length > 0 && (
            <ul class="field-error" role="alert">
              {errors.other.map((message) => (
                <li key={message}>{message}</li>
              ))}
            </ul>
          )}
          <textarea id="spec-json" class="json" spellcheck={false} rows={22} value={text} onInput={(e) => editText(e.currentTarget.value)} aria-invalid={jsonError ? true : undefined} />
          {jsonError && <p class="field-error">JSON: {jsonError}</p>}
        </div>
        <div class="form-actions">
          <button type="submit" class="primary" disabled={busy || jsonError !== undefined}>
            {busy ? "Submitting…" : "Submit job"}
          </button>
        </div>
      </form>
    </section>
  );
}
