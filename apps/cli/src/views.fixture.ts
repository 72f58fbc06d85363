import type { ComputerView, InstanceList, InstanceView } from "./client.js";

/** An instance as the master's read model shows it, with the fields a test cares about changed. */
export function instanceView(overrides: Partial<InstanceView> & Pick<InstanceView, "instanceId" | "reference">): InstanceView {
  return {
    treeId: overrides.instanceId,
    releaseUrl: "examples/software/kvdb",
    softwareType: "default",
    parameters: {},
    sla: {},
    shared: false,
    requestedState: "started",
    requester: { kind: "user", userId: "admin" },
    requestedAt: "2025-01-01T00:00:00.000Z",
    updatedAt: "2025-01-01T00:00:01.000Z",
    serial: 1,
    placement: null,
    host: null,
    connection: null,
    status: null,
    health: null,
    lastBang: null,
    destroyed: false,
    ...overrides,
  };
}

/** A webapp (root, ready) that requested a kvdb (placed, pending) and a shared frontend. */
export function sampleList(): InstanceList {
  const web = instanceView({
    instanceId: "WEB",
    reference: "my webapp",
    releaseUrl: "examples/software/webapp",
    placement: { computerId: "COMP-1", partitionId: "slappart0" },
    connection: { url: "http://10.0.0.1:8000", password: "hunter2" },
  });
  const kv = instanceView({
    instanceId: "KV",
    treeId: "WEB",
    reference: "kvdb",
    requester: { kind: "instance", instanceId: "WEB", treeId: "WEB" },
    placement: { computerId: "COMP-1", partitionId: "slappart1" },
  });
  const front = instanceView({
    instanceId: "FRONT",
    treeId: "WEB",
    reference: "frontend",
    shared: true,
    requester: { kind: "instance", instanceId: "WEB", treeId: "WEB" },
    host: { instanceId: "HOST", treeId: "HOST" },
  });
  const other = instanceView({ instanceId: "SOLO", reference: "solo", requestedState: "destroyed" });
  return {
    instances: [kv, other, front, web],
    trees: [
      { treeId: "WEB", rootInstanceId: "WEB", instanceIds: ["WEB", "KV", "FRONT"] },
      { treeId: "SOLO", rootInstanceId: "SOLO", instanceIds: ["SOLO"] },
    ],
  };
}

export function sampleComputer(): ComputerView {
  return {
    computerId: "COMP-1",
    name: "rack 1",
    networkId: null,
    partitions: {
      slappart10: { partitionId: "slappart10", address: "10.0.0.11", ports: { from: 11000, to: 11099 }, instanceId: null, treeId: null, supersededClaim: null },
      slappart1: { partitionId: "slappart1", address: "10.0.0.2", ports: { from: 10100, to: 10199 }, instanceId: "KV", treeId: "WEB", supersededClaim: null },
      slappart0: { partitionId: "slappart0", address: "10.0.0.1", ports: { from: 10000, to: 10099 }, instanceId: "WEB", treeId: "WEB", supersededClaim: null },
    },
    software: {
      "examples/software/kvdb": { releaseUrl: "examples/software/kvdb", supplied: true, status: "available", log: null, updatedAt: "2025-01-01T00:00:00Z" },
      "examples/software/old": { releaseUrl: "examples/software/old", supplied: false, status: "destroyed", log: null, updatedAt: "2025-01-01T00:00:00Z" },
    },
  };
}
