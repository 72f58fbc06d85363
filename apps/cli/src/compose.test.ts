import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, it } from "node:test";
import { parse } from "yaml";
import { checkCompose, entrypointOf, type ComposeContext } from "./compose-check.js";
import { commands } from "./main.js";

const REPO = fileURLToPath(new URL("../../../", import.meta.url));
const context: ComposeContext = {
  commands,
  readFile(buildContext, path) {
    try {
      return readFileSync(join(REPO, buildContext, path), "utf8");
    } catch {
      return undefined;
    }
  },
};

/** The parts of a compose service the tests look at or break. */
interface Service {
  image?: string;
  build: { context: string; dockerfile: string };
  command: string[];
  environment: Record<string, string>;
  ports?: string[];
  volumes: string[];
  depends_on: Record<string, { condition?: string }>;
  healthcheck?: { test: string[] };
  secrets?: string[];
  env_file?: string[];
}
interface Compose {
  services: Record<string, Service>;
  volumes: Record<string, unknown>;
  secrets: Record<string, unknown>;
}

/** docker-compose.yml as a plain object (YAML merge keys `<<:` resolved, as compose does). */
function compose(): Compose {
  return parse(readFileSync(join(REPO, "docker-compose.yml"), "utf8"), { merge: true }) as Compose;
}

function service(document: Compose, name: string): Service {
  const found = document.services[name];
  assert.ok(found !== undefined, `docker-compose.yml has a service ${name}`);
  return found;
}

/** docker-compose.yml with one change made by `edit`. */
function edited(edit: (document: Compose) => void): Compose {
  const document = compose();
  edit(document);
  return document;
}

describe("docker-compose.yml and the Dockerfile", () => {
  it("line up with the code: commands, environment, ports, volumes, networks, depends_on, health checks", () => {
    assert.deepEqual(checkCompose(compose(), context), []);
  });

  it("describe the cluster's topology: nats with JetStream on a volume, a master, two allocators, two nodes, health checks on nats and master", () => {
    const document = compose();
    const byCommand = (name: string): string[] => Object.entries(document.services).filter(([, s]) => s.command[0] === name).map(([n]) => n);
    assert.deepEqual(byCommand("master"), ["master"]);
    assert.deepEqual(byCommand("allocator"), ["allocator-1", "allocator-2"]);
    assert.deepEqual(byCommand("node"), ["node-1", "node-2"]);
    const nats = service(document, "nats");
    const master = service(document, "master");
    assert.match(nats.image ?? "", /^nats:2\.9/);
    assert.ok(nats.command.includes("-js"));
    assert.ok(nats.healthcheck !== undefined && master.healthcheck !== undefined);
    assert.equal(master.build.dockerfile, "Dockerfile");
    assert.deepEqual(entrypointOf(readFileSync(join(REPO, "Dockerfile"), "utf8")), ["node", "bin/slap.mjs"]);
    assert.match(readFileSync(join(REPO, "Dockerfile"), "utf8"), /^FROM node:20-bookworm-slim$/m);
  });

  const broken: Array<[string, (document: Compose) => void, RegExp]> = [
    ["a misspelled environment variable", (d) => (service(d, "node-1").environment.SLAP_COMPUTR = "COMP-1"), /node-1: environment SLAP_COMPUTR: slap node does not read it/],
    ["a variable another service reads", (d) => (service(d, "allocator-1").environment.SLAP_MASTER = "http://master:8080"), /allocator-1: environment SLAP_MASTER/],
    ["an unknown command", (d) => (service(d, "allocator-2").command = ["alocator"]), /allocator-2: command "alocator" is not a slap command/],
    ["a value the service refuses", (d) => (service(d, "node-2").environment.SLAP_PARTITIONS = "ten"), /node-2: slap node refuses its configuration: --partitions \(or SLAP_PARTITIONS\): must be a number/],
    ["the master published on every interface of the host", (d) => (service(d, "master").ports = ["8080:8080"]), /master: ports 8080:8080: publish on the host's loopback only/],
    ["a published port the master does not listen on", (d) => (service(d, "master").ports = ["8080:9090"]), /master: ports 8080:9090: the master listens on 8080/],
    ["a master on loopback", (d) => (service(d, "master").environment.HOST = "127.0.0.1"), /master: listens on 127\.0\.0\.1/],
    ["a master URL with the wrong port", (d) => (service(d, "node-1").environment.SLAP_MASTER = "http://master:8081"), /node-1: master http:\/\/master:8081: master listens on 8080/],
    ["a NATS URL naming no service", (d) => (service(d, "allocator-2").environment.NATS_URL = "nats://natz:4222"), /allocator-2: nats nats:\/\/natz:4222: natz is not a service/],
    ["a node given a NATS URL", (d) => (service(d, "node-2").environment.NATS_URL = "nats://nats:4222"), /node-2: environment NATS_URL: slap node does not read it/],
    ["a node given NATS credentials", (d) => (service(d, "node-1").env_file = ["config/allocator-1.env"]), /node-1: has an env_file: a node needs no NATS credentials/],
    ["an undeclared volume", (d) => delete d.volumes["node-1-srv"], /node-1: volume node-1-srv: not declared/],
    ["a node root off its volume", (d) => (service(d, "node-2").environment.SLAP_ROOT = "/srv/elsewhere"), /node-2: its root \/srv\/elsewhere is not on a volume/],
    ["a JetStream store off its volume", (d) => (service(d, "nats").volumes = []), /nats: the JetStream store \/data is not on a volume/],
    ["a partition address that is not the node's", (d) => (service(d, "node-1").environment.SLAP_ADDRESS = "172.28.0.12"), /node-1: SLAP_ADDRESS 172\.28\.0\.12 is not its address/],
    ["a depends_on target that does not exist", (d) => (service(d, "node-1").depends_on.mastr = { condition: "service_healthy" }), /node-1: depends_on mastr: no such service/],
    ["waiting for health on a service without a healthcheck", (d) => delete service(d, "master").healthcheck, /node-1: depends_on master \(service_healthy\): master has no healthcheck/],
    ["a healthcheck on the wrong port", (d) => (service(d, "master").healthcheck = { test: ["CMD", "node", "-e", "fetch('http://127.0.0.1:9999/healthz')"] }), /master: the healthcheck does not ask :8080\/healthz/],
    ["two nodes with one computer id", (d) => (service(d, "node-2").environment.SLAP_COMPUTER = "COMP-1"), /node-2: computer id "COMP-1" is also node-1's/],
    ["a node token file that is not one of its secrets", (d) => (service(d, "node-2").secrets = ["node-1-token"]), /node-2: SLAP_TOKEN_FILE \/run\/secrets\/node-2-token is not one of its secrets/],
    ["a secret that is not declared", (d) => delete d.secrets["node-1-token"], /node-1: secret node-1-token: not declared under secrets/],
    ["a token written in the compose file", (d) => (service(d, "node-1").environment.SLAP_TOKEN = "slap_0123456789abcdef"), /node-1: SLAP_TOKEN holds a token in the compose file/],
    ["a master without its token file", (d) => delete service(d, "master").environment.SLAP_TOKENS, /master: no SLAP_TOKENS/],
    ["nats-server without its users", (d) => (service(d, "nats").command = ["-js", "-sd", "/data", "-m", "8222"]), /nats: nats-server runs without a configuration \(-c\)/],
    ["a nats configuration that is not a secret", (d) => (service(d, "nats").secrets = []), /nats: its configuration \/run\/secrets\/nats-conf is not one of its secrets/],
    ["an allocator without its NATS credentials", (d) => delete service(d, "allocator-1").env_file, /allocator-1: no env_file with its NATS credentials/],
    ["a build without its Dockerfile", (d) => (service(d, "master").build.dockerfile = "Dockerfile.missing"), /master: build: no Dockerfile\.missing in \./],
  ];
  for (const [what, edit, expected] of broken) {
    it(`refuse ${what}`, () => {
      const problems = checkCompose(edited(edit), context);
      assert.ok(problems.some((p) => expected.test(p)), `expected ${String(expected)} in:\n${problems.join("\n")}`);
    });
  }
});
