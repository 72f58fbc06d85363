// Test release profile: one HTTP service, a generated password, optionally a requested backend.
export default async function deploy(slap) {
  const { address, ports } = slap.partition;
  const port = ports.from;
  let backend = "";
  if (slap.parameters.backend !== undefined) {
    const connection = await slap.request(slap.instance.releaseUrl, slap.parameters.backend, { parameters: { greeting: "backend" } });
    backend = connection.url ?? "";
  }
  const password = await slap.secret("password");
  await slap.write("etc/web.conf", `greeting=${slap.parameters.greeting}\nport=${port}\n`);
  await slap.render("web.conf.in", "etc/web-rendered.conf", { greeting: slap.parameters.greeting, port });
  slap.run("prepare", { command: [process.execPath, "-e", "require('fs').mkdirSync('srv', { recursive: true })"] });
  if (slap.parameters.crash === "yes") {
    // A service that dies at once: banged and restarted with back-off, again and again.
    slap.service("web", { command: [process.execPath, "-e", "console.error('dying on purpose'); process.exit(4)"] });
  } else {
    slap.service("web", {
      command: [process.execPath, `${slap.software}/server.mjs`],
      env: { HOST: address, PORT: String(port), GREETING: slap.parameters.greeting, BACKEND: backend },
    });
    slap.promise("http", { http: `http://${address}:${port}/` });
  }
  slap.publish({ url: `http://${address}:${port}/`, password });
}
