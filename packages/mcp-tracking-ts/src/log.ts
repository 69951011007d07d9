/**
 * The SDK's own log: stderr only (a stdio MCP server owns stdout for JSON-RPC), warnings at most once a
 * minute per reason, debug lines only when asked (`debug: true`, or `AGNOST_DEBUG=1` in the environment).
 */

export interface Logger {
  debug(message: string): void;
  warn(message: string): void;
}

/** Milliseconds between two warnings of the same reason. */
export const WARN_INTERVAL_MS = 60_000;

const PREFIX = "[agnost] ";

export function stderrLogger(debug: boolean): Logger {
  return {
    debug(message: string): void {
      if (debug) writeStderr(`${PREFIX}${message}\n`);
    },
    warn(message: string): void {
      writeStderr(`${PREFIX}${message}\n`);
    },
  };
}

function writeStderr(line: string): void {
  try {
    process.stderr.write(line);
  } catch {
    // A closed stderr must not break the server.
  }
}

/** Wraps a logger so that each warning `reason` is written at most once per `WARN_INTERVAL_MS`. */
export class RateLimitedLogger {
  private readonly last = new Map<string, number>();

  constructor(readonly inner: Logger) {}

  debug(message: string): void {
    this.safely(() => this.inner.debug(message));
  }

  warn(reason: string, message: string): void {
    const now = Date.now();
    const last = this.last.get(reason);
    if (last !== undefined && now - last < WARN_INTERVAL_MS) return;
    this.last.set(reason, now);
    this.safely(() => this.inner.warn(message));
  }

  private safely(write: () => void): void {
    try {
      write();
    } catch {
      // A throwing user logger must not break the server.
    }
  }
}
