// API tokens: random bearer secrets of which only a SHA-256 is stored. Roles nest:
// read (GET) < write (submit, command, cancel) < admin (tokens, deletes).
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import type { PrismaClient } from "../prisma/client.ts";

export const ROLES = ["read", "write", "admin"] as const;
export type Role = (typeof ROLES)[number];

export function roleAllows(held: Role, needed: Role): boolean {
  return ROLES.indexOf(held) >= ROLES.indexOf(needed);
}

export function hashToken(token: string): string {
  return createHash("sha256").update(token).digest("hex");
}

export function newToken(): string {
  return `gg_${randomBytes(32).toString("base64url")}`;
}

/** Constant-time equality of two secrets (through their digests, so lengths may differ). */
export function sameSecret(a: string, b: string): boolean {
  return timingSafeEqual(createHash("sha256").update(a).digest(), createHash("sha256").update(b).digest());
}

/** Who is calling: a stored token's id, or "environment" for GRADGUARD_ADMIN_TOKEN. */
export interface Caller {
  tokenId: string;
  role: Role;
}

/**
 * The caller a bearer token stands for, or null when it is unknown or revoked. The one token
 * check: the REST auth plugin and the socket.io handshake (server/live) both use it.
 */
export async function findCaller(prisma: PrismaClient, adminToken: string | undefined, token: string): Promise<Caller | null> {
  if (adminToken && sameSecret(token, adminToken)) return { tokenId: "environment", role: "admin" };
  const row = await prisma.apiToken.findUnique({ where: { hash: hashToken(token) } });
  if (!row || row.revokedAt !== null) return null;
  // Best effort and at most once a minute per token: not a write on every request.
  const now = new Date();
  if (!row.lastUsedAt || now.getTime() - row.lastUsedAt.getTime() > 60_000) {
    void prisma.apiToken.update({ where: { id: row.id }, data: { lastUsedAt: now } }).catch(() => {});
  }
  return { tokenId: row.id, role: row.role };
}

export async function createToken(prisma: PrismaClient, name: string, role: Role) {
  const token = newToken();
  const row = await prisma.apiToken.create({ data: { name, role, hash: hashToken(token), prefix: token.slice(0, 10) } });
  return { ...row, token };
}

/**
 * The first start with no admin token anywhere (and none from GRADGUARD_ADMIN_TOKEN) creates one
 * and returns it, to be shown once; otherwise null.
 */
export async function ensureAdminToken(prisma: PrismaClient, fromEnvironment: string | undefined): Promise<string | null> {
  if (fromEnvironment) return null;
  // Serialised across servers starting together: only one creates it.
  return prisma.$transaction(async (tx) => {
    await tx.$executeRaw`SELECT pg_advisory_xact_lock(7274657)`;
    const admins = await tx.apiToken.count({ where: { role: "admin", revokedAt: null } });
    if (admins > 0) return null;
    const token = newToken();
    await tx.apiToken.create({ data: { name: "first admin", role: "admin", hash: hashToken(token), prefix: token.slice(0, 10) } });
    return token;
  });
}
