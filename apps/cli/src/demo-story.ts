import { instanceIdFor, type Actor, type DomainEvent } from "@slap/events";
import { monotonicFactory } from "ulid";

/**
 * The demo story `slap demo` writes into an empty log: a computer registers 10 partitions,
 * installs two releases, a user requests a webapp, which requests its kvdb; both are placed
 * and publish connection parameters. One correlation id (the user's request) runs through the
 * whole story and every event names its cause. Until the master and node services exist,
 * this is what shows the event model end to end.
 */
export function demoStory(now: Date): DomainEvent[][] {
  const newId = monotonicFactory();
  const time = now.toISOString();
  const computerId = "COMP-demo";
  const node: Actor = { kind: "node", computerId };
  const user: Actor = { kind: "user", userId: "demo" };
  const kvdb = "examples/software/kvdb";
  const webapp = "examples/software/webapp";
  const webId = instanceIdFor({ kind: "user", userId: "demo" }, "my webapp");
  const kvId = instanceIdFor({ kind: "tree", treeId: webId }, "kvdb");
  const story: DomainEvent[][] = [];
  let correlationId = newId();
  let cause = correlationId;
  const meta = (actor: Actor, id = newId()) => {
    const m = { schemaVersion: 1 as const, id, time, correlationId, causationId: cause, actor };
    cause = id;
    return m;
  };

  story.push([
    {
      ...meta(node, correlationId),
      type: "ComputerRegistered",
      aggregate: { kind: "computer", computerId },
      data: {
        name: "demo computer",
        networkId: "loopback",
        partitions: Array.from({ length: 10 }, (_, i) => ({
          partitionId: `slappart${i}`,
          address: "127.0.0.1",
          ports: { from: 20_000 + i * 100, to: 20_099 + i * 100 },
        })),
      },
    },
  ]);
  for (const releaseUrl of [kvdb, webapp]) {
    story.push([{ ...meta(user), type: "SoftwareSupplied", aggregate: { kind: "computer", computerId }, data: { releaseUrl } }]);
    story.push([{ ...meta(node), type: "SoftwareReleaseStatusReported", aggregate: { kind: "computer", computerId }, data: { releaseUrl, status: "available" } }]);
  }

  correlationId = newId();
  cause = correlationId;
  const partition = (i: number) => ({ computerId, partitionId: `slappart${i}` });
  const allocator: Actor = { kind: "service", name: "allocator" };
  const web = { kind: "instance" as const, treeId: webId, instanceId: webId };
  const kv = { kind: "instance" as const, treeId: webId, instanceId: kvId };
  story.push([
    {
      ...meta(user, correlationId),
      type: "InstanceRequested",
      aggregate: web,
      data: { reference: "my webapp", releaseUrl: webapp, softwareType: "default", parameters: { title: "Hello" }, sla: {}, shared: false, requestedState: "started", requester: { kind: "user", userId: "demo" } },
    },
  ]);
  story.push([{ ...meta(allocator), type: "PartitionAllocated", aggregate: { kind: "partition", ...partition(0) }, data: { instanceId: webId, treeId: webId, releaseUrl: webapp } }]);
  story.push([
    {
      ...meta({ kind: "partition", ...partition(0) }),
      type: "InstanceRequested",
      aggregate: kv,
      data: { reference: "kvdb", releaseUrl: kvdb, softwareType: "default", parameters: {}, sla: {}, shared: false, requestedState: "started", requester: { kind: "instance", instanceId: webId, treeId: webId } },
    },
  ]);
  story.push([{ ...meta({ kind: "partition", ...partition(0) }), type: "InstanceStatusReported", aggregate: web, data: { status: "waiting", waitingFor: ["kvdb"], ...partition(0) } }]);
  story.push([{ ...meta(allocator), type: "PartitionAllocated", aggregate: { kind: "partition", ...partition(1) }, data: { instanceId: kvId, treeId: webId, releaseUrl: kvdb } }]);
  story.push([{ ...meta({ kind: "partition", ...partition(1) }), type: "ConnectionParametersPublished", aggregate: kv, data: { parameters: { url: "http://127.0.0.1:20100", password: "demo-password" }, publisher: partition(1) } }]);
  story.push([{ ...meta({ kind: "partition", ...partition(1) }), type: "InstanceStatusReported", aggregate: kv, data: { status: "started", ...partition(1) } }]);
  story.push([{ ...meta({ kind: "partition", ...partition(0) }), type: "ConnectionParametersPublished", aggregate: web, data: { parameters: { url: "http://127.0.0.1:20000" }, publisher: partition(0) } }]);
  story.push([{ ...meta({ kind: "partition", ...partition(0) }), type: "InstanceStatusReported", aggregate: web, data: { status: "started", ...partition(0) } }]);
  return story;
}
