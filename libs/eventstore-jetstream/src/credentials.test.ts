import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { NatsCredentialsError, natsCredentialsFromEnv } from "./credentials.js";

describe("NATS credentials from the environment", () => {
  it("reads NATS_USER and NATS_PASSWORD together, and neither as none", () => {
    assert.deepEqual(natsCredentialsFromEnv({ NATS_USER: "COMP-1", NATS_PASSWORD: "s3cret" }), { user: "COMP-1", pass: "s3cret" });
    assert.deepEqual(natsCredentialsFromEnv({}), {});
    assert.deepEqual(natsCredentialsFromEnv({ NATS_USER: "", NATS_PASSWORD: "" }), {});
  });

  it("refuses one without the other and a user that is not a token, never echoing the password", () => {
    assert.throws(() => natsCredentialsFromEnv({ NATS_USER: "COMP-1" }), NatsCredentialsError);
    assert.throws(() => natsCredentialsFromEnv({ NATS_PASSWORD: "s3cret" }), /NATS_USER and NATS_PASSWORD go together/);
    assert.throws(() => natsCredentialsFromEnv({ NATS_USER: "a b", NATS_PASSWORD: "s3cret" }), (error: Error) => /NATS_USER: must be/.test(error.message) && !error.message.includes("s3cret"));
  });
});
