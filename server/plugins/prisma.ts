// Makes the Prisma client available to routes as `app.prisma`. The client is created and
// closed by whoever starts the server (server/main.ts or a test), not here.
import fp from "fastify-plugin";
import type { PrismaClient } from "../../prisma/client.ts";

declare module "fastify" {
  interface FastifyInstance {
    prisma: PrismaClient;
  }
}

export default fp<{ prisma: PrismaClient }>(
  async (app, { prisma }) => {
    app.decorate("prisma", prisma);
  },
  { name: "prisma" },
);
