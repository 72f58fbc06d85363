import type { Logger } from "pino";

/** A service as its process runs it: started once, stopped once. */
export interface Startable {
  start(): Promise<void>;
  stop(): Promise<void>;
}

export interface StartOptions {
  logger: Logger;
  /** Closes what the caller opened for the service (its store), after the service stopped. */
  close?: () => Promise<void>;
  /** Stop on SIGINT/SIGTERM (default true). */
  handleSignals?: boolean;
  /** With `handleSignals`: hold the process open until stopped, for a service that holds no handle while it waits. */
  keepAlive?: boolean;
}

/**
 * Starts `service` and answers its stop: idempotent, the service stopped and then `close`d,
 * the signal handlers removed. A start that fails stops and closes what was started, then throws.
 */
export async function startService(service: Startable, options: StartOptions): Promise<() => Promise<void>> {
  let stopping: Promise<void> | undefined;
  let keepAlive: NodeJS.Timeout | undefined;
  const onSignal = (signal: NodeJS.Signals): void => {
    options.logger.info({ signal }, "stopping");
    void stop();
  };
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
      clearInterval(keepAlive);
      try {
        await service.stop();
      } finally {
        await options.close?.();
      }
    })();
    return stopping;
  };
  if (options.handleSignals !== false) {
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
    if (options.keepAlive === true) keepAlive = setInterval(() => undefined, 2 ** 30);
  }
  try {
    await service.start();
  } catch (error) {
    await stop().catch(() => undefined);
    throw error;
  }
  return stop;
}
