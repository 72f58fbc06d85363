import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/**
 * API tokens for tests: deterministic, so a test can speak as any identity. `tokenFile` writes
 * the master's token file (services/master/src/shell/auth.ts) listing the identities a test uses.
 */
export const testToken = {
  admin: "test-token-admin-0000",
  /** A metrics token (role metrics): reads GET /metrics only. */
  metrics: "test-token-metrics-0000",
  user: (userId: string): string => `test-token-user-${userId}`,
  node: (computerId: string): string => `test-token-node-${computerId}`,
};

/** The headers of a caller: its bearer token (and, for a partition, the partition it acts for). */
export const as = {
  admin: (): Record<string, string> => ({ authorization: `Bearer ${testToken.admin}` }),
  metrics: (): Record<string, string> => ({ authorization: `Bearer ${testToken.metrics}` }),
  user: (userId: string): Record<string, string> => ({ authorization: `Bearer ${testToken.user(userId)}` }),
  node: (computerId: string): Record<string, string> => ({ authorization: `Bearer ${testToken.node(computerId)}` }),
  partition: (computerId: string, partitionId: string): Record<string, string> => ({
    authorization: `Bearer ${testToken.node(computerId)}`,
    "x-slap-partition": `${computerId}/${partitionId}`,
  }),
};

/** Writes `<dir>/tokens.json` accepting the admin and metrics tokens and those of `users` and `computers`; returns its path. */
export function tokenFile(dir: string, identities: { users?: readonly string[]; computers?: readonly string[] } = {}): string {
  mkdirSync(dir, { recursive: true });
  const tokens = [
    { role: "admin", token: testToken.admin },
    { role: "metrics", token: testToken.metrics },
    ...(identities.users ?? []).map((user) => ({ role: "user", user, token: testToken.user(user) })),
    ...(identities.computers ?? []).map((computer) => ({ role: "node", computer, token: testToken.node(computer) })),
  ];
  const path = join(dir, "tokens.json");
  writeFileSync(path, JSON.stringify({ tokens }), { mode: 0o600 });
  return path;
}
