// GET /api/v1/presets: ready-made job specs, submit-ready (POST /api/v1/jobs with `spec`).
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import Type from "typebox";
import { PRESETS } from "../presets.ts";

const PresetSchema = Type.Object({
  id: Type.String(),
  title: Type.String(),
  description: Type.String(),
  spec: Type.Record(Type.String(), Type.Unknown(), { description: "A job spec: POST it to /api/v1/jobs" }),
});

const presetRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get("/presets", { schema: { response: { 200: Type.Object({ items: Type.Array(PresetSchema) }) } } }, async () => ({ items: PRESETS }));
};

export default presetRoutes;
