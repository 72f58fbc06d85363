// kvdb: a tiny key-value store over HTTP. Usage: node server.mjs <config.json>
// config: { host, port, password, dataFile, maxKeys?, tenants?: [{ prefix, password }] }
//   GET /healthz             → 200 {"status":"ok"} (no auth)
//   GET|PUT|DELETE /kv/:key  → needs `authorization: Bearer <password>` (401 otherwise); a tenant
//                              password only reaches keys starting with its prefix (403 otherwise)
// Every change is written to dataFile atomically (tmp file + fsync + rename) before it is acknowledged.
import { createHash, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdir, open, rename } from "node:fs/promises";
import { createServer } from "node:http";
import { dirname } from "node:path";

const configPath = process.argv[2];
if (!configPath) {
  console.error("usage: node server.mjs <config.json>");
  process.exit(2);
}
const config = JSON.parse(readFileSync(configPath, "utf8"));
for (const field of ["host", "port", "password", "dataFile"]) {
  if (config[field] === undefined || config[field] === "") {
    console.error(`kvdb: config field "${field}" is missing`);
    process.exit(2);
  }
}
const maxKeys = Number(config.maxKeys ?? 10000);
const MAX_BODY = 1024 * 1024;

/** @type {Map<string, string>} */
const data = new Map();
try {
  const stored = JSON.parse(readFileSync(config.dataFile, "utf8"));
  for (const [key, value] of Object.entries(stored)) data.set(key, String(value));
} catch (error) {
  if (error.code !== "ENOENT") throw error;
}
await mkdir(dirname(config.dataFile), { recursive: true });

// Saves are serialised: each one writes the whole map as it is when the save starts.
let saving = Promise.resolve();
function save() {
  const run = async () => {
    const tmp = `${config.dataFile}.tmp-${process.pid}`;
    const file = await open(tmp, "w", 0o600);
    try {
      await file.writeFile(JSON.stringify(Object.fromEntries(data)));
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(tmp, config.dataFile);
  };
  saving = saving.then(run, run);
  return saving;
}

const digest = (s) => createHash("sha256").update(s).digest();
const credentials = [
  { prefix: "", hash: digest(config.password) },
  ...(config.tenants ?? []).map((t) => ({ prefix: t.prefix, hash: digest(t.password) })),
];

/** The key prefix the request may reach, or null when it is not authenticated. */
function authenticate(req) {
  const header = req.headers.authorization ?? "";
  const match = /^Bearer (.+)$/.exec(header);
  if (!match) return null;
  const hash = digest(match[1]);
  let prefix = null;
  for (const c of credentials) if (timingSafeEqual(c.hash, hash) && prefix === null) prefix = c.prefix;
  return prefix;
}

function send(res, status, body, type = "text/plain; charset=utf-8") {
  res.writeHead(status, { "content-type": type, "cache-control": "no-store" });
  res.end(body);
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on("data", (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY) {
        reject(Object.assign(new Error("body too large"), { status: 413 }));
        req.destroy();
      } else chunks.push(chunk);
    });
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

async function handle(req, res) {
  const url = new URL(req.url ?? "/", "http://kvdb");
  if (url.pathname === "/healthz") {
    return send(res, 200, JSON.stringify({ status: "ok", keys: data.size }), "application/json");
  }
  if (!url.pathname.startsWith("/kv/")) return send(res, 404, "not found\n");
  const prefix = authenticate(req);
  if (prefix === null) {
    res.setHeader("www-authenticate", 'Bearer realm="kvdb"');
    return send(res, 401, "unauthorized\n");
  }
  let key;
  try {
    key = decodeURIComponent(url.pathname.slice("/kv/".length));
  } catch {
    return send(res, 400, "bad key\n");
  }
  if (key === "") return send(res, 400, "empty key\n");
  if (!key.startsWith(prefix)) return send(res, 403, `forbidden: keys must start with ${prefix}\n`);

  switch (req.method) {
    case "GET":
    case "HEAD": {
      const value = data.get(key);
      return value === undefined ? send(res, 404, "no such key\n") : send(res, 200, value);
    }
    case "PUT": {
      const value = await readBody(req);
      if (!data.has(key) && data.size >= maxKeys) return send(res, 507, `full: max-keys is ${maxKeys}\n`);
      data.set(key, value);
      await save();
      return send(res, 200, "ok\n");
    }
    case "DELETE": {
      if (!data.delete(key)) return send(res, 404, "no such key\n");
      await save();
      return send(res, 200, "ok\n");
    }
    default:
      res.setHeader("allow", "GET, HEAD, PUT, DELETE");
      return send(res, 405, "method not allowed\n");
  }
}

const server = createServer((req, res) => {
  handle(req, res).catch((error) => {
    if (!res.headersSent) send(res, error.status ?? 500, `${error.message}\n`);
    else res.destroy();
    if (!error.status) console.error("kvdb:", error);
  });
});
server.listen(Number(config.port), config.host, () => {
  console.log(`kvdb listening on ${config.host}:${config.port} (${data.size} keys)`);
});
server.on("error", (error) => {
  console.error("kvdb:", error.message);
  process.exit(1);
});

function stop(signal) {
  console.log(`kvdb: ${signal}, stopping`);
  server.close();
  server.closeAllConnections?.();
  saving.finally(() => process.exit(0));
}
process.on("SIGTERM", () => stop("SIGTERM"));
process.on("SIGINT", () => stop("SIGINT"));
