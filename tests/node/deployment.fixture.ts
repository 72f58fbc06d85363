import assert from "node:assert/strict";
import { Allocator } from "@slap/allocator";
import { JetStreamEventStore } from "@slap/eventstore-jetstream";
import { runMaster, type RunningMaster } from "@slap/master";
import { as, startNatsServer, tempDir, testToken, tokenFile, type NatsServer } from "@slap/testkit";
import type { Logger } from "pino";
import { Node, type NodeOptions } from "@slap/node";
import { removePartitionUsers } from "@slap/node";

/** A real deployment for the node's tests: nats-server, a master and an allocator, each on its own store, and one node (over HTTP only). */
export interface Deployment {
  server: NatsServer;
  master: RunningMaster;
  node: Node;
  /** The node's folder. */
  root: string;
  /** Stops everything, deletes the folders and the node's partition users. */
  stop(): Promise<void>;
}

/**
 * Starts a deployment whose master accepts alice's token and the node's, with `releases` supplied
 * to the node's computer (as admin). `node` holds the node's own options (partitions, ports…).
 */
export async function startDeployment(options: {
  computer: string;
  node: Omit<NodeOptions, "masterUrl" | "token" | "computerId" | "root" | "logger">;
  releases: readonly string[];
  logger: Logger;
}): Promise<Deployment> {
  const { computer, logger } = options;
  const server = await startNatsServer();
  const root = await tempDir("slap-node-deployment-");
  const tokens = await tempDir("slap-node-deployment-tokens-");
  const stores = await Promise.all([1, 2].map(() => JetStreamEventStore.connect({ servers: server.url, logger })));
  const master = await runMaster(
    { port: 0, host: "127.0.0.1", tokens: tokenFile(tokens.path, { users: ["alice"], computers: [computer] }) },
    { store: stores[0]!, logger },
  );
  const allocator = new Allocator({ store: stores[1]!, logger });
  await allocator.start();
  const node = new Node({ ...options.node, masterUrl: master.url, token: testToken.node(computer), computerId: computer, root: root.path, logger });
  await node.start();
  for (const releaseUrl of options.releases) {
    const response = await fetch(`${master.url}/v1/computers/${computer}/supply`, { method: "POST", headers: { ...as.admin(), "content-type": "application/json" }, body: JSON.stringify({ releaseUrl }) });
    assert.equal(response.status, 200, `supply ${releaseUrl}`);
  }
  return {
    server,
    master,
    node,
    root: root.path,
    async stop() {
      await node.stop();
      await allocator.stop();
      await master.stop();
      for (const store of stores) await store.close();
      await server.dispose();
      await root.dispose();
      await tokens.dispose();
      await removePartitionUsers(computer, options.node.partitions);
    },
  };
}
