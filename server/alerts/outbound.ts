// Outgoing webhook requests and their SSRF guard. A webhook URL is user input that makes the
// server send requests: without a guard it reaches the cloud metadata service, the database or
// anything else on the server's network. Every address a host name resolves to is checked, at
// registration and again on each delivery, and the request connects only to an address that
// was checked (the guard is the socket's own DNS lookup), so a DNS answer that changes between
// check and connect cannot slip through.
import { type LookupAddress, lookup as dnsLookup } from "node:dns";
import http from "node:http";
import https from "node:https";
import { BlockList, isIP, type LookupFunction } from "node:net";

const BLOCKED = new BlockList();
for (const [network, prefix] of [
  ["0.0.0.0", 8], // unspecified, "this network"
  ["10.0.0.0", 8],
  ["100.64.0.0", 10], // carrier-grade NAT
  ["127.0.0.0", 8],
  ["169.254.0.0", 16], // link-local, cloud metadata
  ["172.16.0.0", 12],
  ["192.168.0.0", 16],
  ["224.0.0.0", 4], // multicast
  ["240.0.0.0", 4], // reserved, broadcast
] as const) {
  BLOCKED.addSubnet(network, prefix, "ipv4");
}
for (const [network, prefix] of [
  ["::", 128], // unspecified
  ["::1", 128], // loopback
  ["fe80::", 10], // link-local
  ["fc00::", 7], // unique local
  ["ff00::", 8], // multicast
] as const) {
  BLOCKED.addSubnet(network, prefix, "ipv6");
}

/** True for loopback, link-local, private, unique-local, unspecified and multicast addresses (IPv4-mapped too). */
export function isPrivateAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 0) return true;
  return BLOCKED.check(address, family === 4 ? "ipv4" : "ipv6");
}

/** Why this URL may not receive webhooks, or null when it may. Resolves its host (every address). */
export async function refuseWebhookUrl(text: string, allowPrivate: boolean): Promise<string | null> {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return "is not a URL";
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return "must be an http or https URL";
  if (url.username || url.password) return "must not carry a user name or password";
  if (allowPrivate) return null;
  try {
    const addresses = await resolveAll(hostOf(url));
    const bad = addresses.find((a) => isPrivateAddress(a.address));
    if (bad) return `resolves to ${bad.address}, a loopback, link-local or private address (allowed only with GRADGUARD_WEBHOOK_ALLOW_PRIVATE=true)`;
  } catch (error) {
    return `has a host that does not resolve (${(error as NodeJS.ErrnoException).code ?? String(error)})`;
  }
  return null;
}

/** The URL's host name without IPv6 brackets. */
function hostOf(url: URL): string {
  return url.hostname.replace(/^\[(.*)\]$/, "$1");
}

function resolveAll(host: string): Promise<LookupAddress[]> {
  return new Promise((resolve, reject) =>
    dnsLookup(host, { all: true }, (error, addresses) => (error ? reject(error) : resolve(addresses))),
  );
}

/** A socket lookup that refuses the whole host when any of its addresses is private. */
const guardedLookup: LookupFunction = (host, options, callback) => {
  resolveAll(host).then(
    (addresses) => {
      const bad = addresses.find((a) => isPrivateAddress(a.address));
      if (bad) {
        callback(Object.assign(new Error(`${host} resolves to ${bad.address}, a private address`), { code: "EPRIVATEADDRESS" }), "", 4);
        return;
      }
      const usable = addresses.filter((a) => !options.family || a.family === options.family);
      if (options.all) (callback as unknown as (e: null, all: LookupAddress[]) => void)(null, usable);
      else if (usable[0]) callback(null, usable[0].address, usable[0].family);
      else callback(Object.assign(new Error(`${host} has no address`), { code: "ENOTFOUND" }), "", 4);
    },
    (error: NodeJS.ErrnoException) => callback(error, "", 4),
  );
};

export interface PostResult {
  /** The receiver's status; absent when it gave none. */
  statusCode?: number;
  error?: string;
  durationMs: number;
}

/** POSTs `body`; never throws. Redirects are not followed (one could point inside the network). */
export function postWebhook(target: { url: string; body: string; headers: Record<string, string>; timeoutMs: number; allowPrivate: boolean }): Promise<PostResult> {
  const started = performance.now();
  const elapsed = () => performance.now() - started;
  return new Promise((resolve) => {
    let url: URL;
    try {
      url = new URL(target.url);
    } catch {
      resolve({ error: "the URL is invalid", durationMs: elapsed() });
      return;
    }
    // A literal IP never goes through the lookup: check it here.
    if (!target.allowPrivate && isIP(hostOf(url)) !== 0 && isPrivateAddress(hostOf(url))) {
      resolve({ error: `${hostOf(url)} is a private address`, durationMs: elapsed() });
      return;
    }
    const client = url.protocol === "https:" ? https : http;
    const request = client.request(
      url,
      {
        method: "POST",
        headers: { "content-type": "application/json", "content-length": Buffer.byteLength(target.body), "user-agent": "gradguard-webhooks", ...target.headers },
        timeout: target.timeoutMs,
        agent: false,
        ...(target.allowPrivate ? {} : { lookup: guardedLookup }),
      },
      (response) => {
        // The body is not needed, only drained (at most a little of it is read).
        response.resume();
        response.on("end", () => resolve({ statusCode: response.statusCode ?? 0, durationMs: elapsed() }));
        response.on("error", (error) => resolve({ statusCode: response.statusCode ?? 0, error: error.message, durationMs: elapsed() }));
      },
    );
    // `timeout` only watches idle sockets; this bounds the whole attempt.
    const deadline = setTimeout(() => request.destroy(new Error(`no answer within ${target.timeoutMs} ms`)), target.timeoutMs);
    request.on("timeout", () => request.destroy(new Error(`no answer within ${target.timeoutMs} ms`)));
    request.on("error", (error: NodeJS.ErrnoException) => resolve({ error: error.code ? `${error.code}: ${error.message}` : error.message, durationMs: elapsed() }));
    request.on("close", () => clearTimeout(deadline));
    request.end(target.body);
  });
}
