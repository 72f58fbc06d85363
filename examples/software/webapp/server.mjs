// webapp: a web page that proves it is connected to its kvdb. Usage: node server.mjs <config.json>
// config: { host, port, title, kvdbUrl, kvdbPassword, counterKey }
//   GET /         → reads the visit counter from the kvdb, writes counter+1 (PUT), reads it back
//                   (GET) and shows "connected to kvdb at <url>: visits = N" (503 if the kvdb fails)
//   GET /healthz  → 200 when the kvdb answers an authenticated request, 503 otherwise
import { readFileSync } from "node:fs";
import { createServer } from "node:http";

const configPath = process.argv[2];
if (!configPath) {
  console.error("usage: node server.mjs <config.json>");
  process.exit(2);
}
const config = JSON.parse(readFileSync(configPath, "utf8"));
const kvdbBase = String(config.kvdbUrl).replace(/\/+$/, "");
const keyUrl = `${kvdbBase}/kv/${encodeURIComponent(config.counterKey)}`;
const auth = { authorization: `Bearer ${config.kvdbPassword}` };

const escape = (s) =>
  String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

async function kv(method, body) {
  const res = await fetch(keyUrl, { method, headers: auth, body, signal: AbortSignal.timeout(5000) });
  const text = await res.text();
  if (res.status === 404 && method === "GET") return undefined;
  if (!res.ok) throw new Error(`kvdb ${method} answered ${res.status}: ${text.trim()}`);
  return text;
}

// Visits of this process are counted one at a time (read, increment, write, read back).
let queue = Promise.resolve();
function countVisit() {
  const run = async () => {
    const current = Number((await kv("GET")) ?? "0") || 0;
    await kv("PUT", String(current + 1));
    return Number(await kv("GET"));
  };
  const result = queue.then(run, run);
  queue = result.catch(() => undefined);
  return result;
}

function page(status, body) {
  return [
    status,
    `<!doctype html>\n<html><head><meta charset="utf-8"><title>${escape(config.title)}</title></head>` +
      `<body><h1>${escape(config.title)}</h1>\n<p id="status">${body}</p>\n</body></html>\n`,
  ];
}

async function handle(req, res) {
  const { pathname } = new URL(req.url ?? "/", "http://webapp");
  if (req.method !== "GET" && req.method !== "HEAD") {
    res.writeHead(405, { allow: "GET, HEAD" });
    return res.end();
  }
  if (pathname === "/healthz") {
    try {
      await kv("GET");
      res.writeHead(200, { "content-type": "application/json" });
      return res.end(JSON.stringify({ status: "ok", kvdb: kvdbBase }));
    } catch (error) {
      res.writeHead(503, { "content-type": "application/json" });
      return res.end(JSON.stringify({ status: "error", kvdb: kvdbBase, error: error.message }));
    }
  }
  if (pathname !== "/") {
    res.writeHead(404, { "content-type": "text/plain" });
    return res.end("not found\n");
  }
  let status, html;
  try {
    const visits = await countVisit();
    [status, html] = page(200, `connected to kvdb at ${escape(kvdbBase)}: visits = ${visits}`);
  } catch (error) {
    [status, html] = page(503, `kvdb at ${escape(kvdbBase)} unavailable: ${escape(error.message)}`);
  }
  res.writeHead(status, { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" });
  res.end(html);
}

const server = createServer((req, res) => {
  handle(req, res).catch((error) => {
    console.error("webapp:", error);
    if (!res.headersSent) res.writeHead(500);
    res.end();
  });
});
server.listen(Number(config.port), config.host, () => {
  console.log(`webapp listening on ${config.host}:${config.port}, kvdb at ${kvdbBase}`);
});
server.on("error", (error) => {
  console.error("webapp:", error.message);
  process.exit(1);
});
for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => {
    server.close();
    server.closeAllConnections?.();
    process.exit(0);
  });
}
