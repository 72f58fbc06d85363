// A tiny HTTP server: answers its greeting (and the backend URL it was given) on every path.
import { createServer } from "node:http";

const { HOST = "127.0.0.1", PORT = "0", GREETING = "hello", BACKEND = "" } = process.env;
const server = createServer((_request, response) => {
  response.setHeader("content-type", "application/json");
  response.end(JSON.stringify({ greeting: GREETING, backend: BACKEND, pid: process.pid }));
});
server.listen(Number(PORT), HOST, () => console.log(`listening on ${HOST}:${PORT}`));
process.on("SIGTERM", () => server.close(() => process.exit(0)));
