// Test release of port ownership: a TCP service on a port of choice (`listen`: "own" is the
// partition's first port, or any port number, another partition's included), and a tcp promise
// on the partition's own first port (`check`).
export default async function deploy(slap) {
  const { address, ports } = slap.partition;
  const listen = slap.parameters.listen;
  if (listen !== undefined) {
    const port = listen === "own" ? ports.from : Number(listen);
    slap.service("server", { command: [process.execPath, `${slap.software}/server.mjs`], env: { HOST: address, PORT: String(port) } });
  }
  if (slap.parameters.check === "yes") slap.promise("tcp", { tcp: { host: address, port: ports.from } });
  slap.publish({ port: String(ports.from) });
}
