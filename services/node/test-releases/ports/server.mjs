// A TCP server that accepts and closes every connection, on HOST:PORT.
import { createServer } from "node:net";

const { HOST = "127.0.0.1", PORT = "0" } = process.env;
const server = createServer((socket) => socket.end());
server.listen(Number(PORT), HOST, () => console.log(`listening on ${HOST}:${PORT}`));
process.on("SIGTERM", () => server.close(() => process.exit(0)));
