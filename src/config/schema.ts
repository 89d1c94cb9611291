/**
 * The schema of the YAML document (SPEC §2): the one source of truth, shipped as
 * config/reprise.schema.json for editors (scripts/write-schema.ts; the drift test compares).
 * Every key is optional but `version`: the embedded defaults fill in the rest. Values that one
 * field decides alone (ranges of durations, host patterns, regexes, CIDRs) are checked here;
 * relations between fields are checked by compile.ts. The only typebox user.
 */

import { isIP } from 'node:net';
import Type, { type Static, type TSchema } from 'typebox';
import { Compile } from 'typebox/compile';
import type { TLocalizedValidationError } from 'typebox/error';
import { Settings } from 'typebox/system';
import { unbracket } from '../routing/authority.ts';
import { parseHostPattern } from '../routing/host-pattern.ts';
import { RETRY_ON_FAILURES, STATUS_CLASSES } from '../vocabulary.ts';
import { type ConfigProblem, toProblems } from './config-error.ts';
import {
  DURATION_PATTERN,
  formatSize,
  parseAddress,
  parseCidr,
  parseDuration,
  parseOrigin,
  parseSize,
  SIZE_PATTERN,
} from './units.ts';

const HOUR_MS = 3_600_000;
const BREAKER_OFF_HINT = 'to turn the breaker off, write circuitBreaker.enabled: false instead';
const MiB = 1024 ** 2;
const opt = Type.Optional;

/** A map that rejects unknown keys. */
function map<P extends Parameters<typeof Type.Object>[0]>(properties: P, description?: string) {
  return Type.Object(properties, { additionalProperties: false, description });
}

/** A further check on a string; other types are left to the type check, which reports them. */
function refineText<T extends TSchema>(schema: T, problem: (text: string) => string | undefined) {
  return Type.Refine(
    schema,
    (value: unknown) => typeof value !== 'string' || problem(value) === undefined,
    (value: unknown) => problem(String(value)) ?? '',
  );
}

/** A duration up to 24h; 0 only where `zeroAllowed` (it then means "none" or "off"). */
function duration(description: string, zeroAllowed = false) {
  const text = Type.String({
    pattern: DURATION_PATTERN,
    description: `${description} (a duration: 250ms, 2s, 1m, 1h)`,
    errorMessage: 'must be a duration such as 250ms or 2s',
  });
  return refineText(text, (value) => {
    const ms = parseDuration(value);
    if (ms === undefined) return undefined;
    if (ms === 0 && !zeroAllowed) return 'must be greater than 0';
    return ms > 24 * HOUR_MS ? 'must be at most 24h' : undefined;
  });
}

function size(description: string, minBytes: number, maxBytes: number) {
  const sizeSchema = Type.Union(
    [Type.Integer({ minimum: 0 }), Type.String({ pattern: SIZE_PATTERN })],
    {
      description: `${description} (a size: 512KiB, 1MiB, 1GiB, or bytes)`,
      errorMessage: 'must be a size such as 64KiB or 1MiB (B, KiB, MiB, GiB)',
    },
  );
  return Type.Refine(
    sizeSchema,
    (value: unknown) => sizeProblem(value, minBytes, maxBytes) === undefined,
    (value: unknown) => sizeProblem(value, minBytes, maxBytes) ?? '',
  );
}

function sizeProblem(value: unknown, minBytes: number, maxBytes: number): string | undefined {
  if (typeof value !== 'string' && typeof value !== 'number') return undefined;
  const bytes = parseSize(value);
  if (bytes === undefined) return undefined;
  if (bytes < minBytes) return `must be at least ${formatSize(minBytes)}`;
  return bytes > maxBytes ? `must be at most ${formatSize(maxBytes)}` : undefined;
}

const asMessage = <T>(parsed: T | string) => (typeof parsed === 'string' ? parsed : undefined);

const Address = refineText(
  Type.String({
    pattern: '^(\\[[0-9A-Fa-f:.]+\\]|[^:\\[\\]\\s/]+):[0-9]{1,5}$',
    description: 'host:port; [::1]:port for IPv6; port 0 = any free port',
    errorMessage: 'must be host:port, such as 127.0.0.1:3128 or [::1]:3128',
  }),
  (v) => asMessage(parseAddress(v)),
);
const Origin = refineText(
  Type.String({
    pattern: '^https?://',
    description: 'http://host[:port] or https://host[:port] (TLS, verified), no path',
    errorMessage: 'must be http:// or https://host[:port] with no path',
  }),
  (v) => asMessage(parseOrigin(v)),
);
const HostPattern = refineText(
  Type.String({
    pattern: '^[^\\s/?#@]+$',
    description: 'a host (api.example.com) or "*.suffix", each with optional :port',
    errorMessage: 'must be a host such as api.example.com or *.example.com, with optional :port',
  }),
  (v) => asMessage(parseHostPattern(v)),
);
const Cidr = refineText(
  Type.String({
    pattern: '^[0-9A-Fa-f:.]+(/[0-9]{1,3})?$',
    description: 'an IP address or CIDR (10.0.0.0/8, ::1/128)',
    errorMessage: 'must be an IP address or CIDR, such as 10.0.0.0/8 or ::1/128',
  }),
  (v) => asMessage(parseCidr(v)),
);
const PathRegex = refineText(
  Type.String({ description: 'a regular expression matched against the path' }),
  (v) => {
    try {
      new RegExp(v);
      return undefined;
    } catch (error) {
      const reason = (error as Error).message.replace(
        /^Invalid regular expression: \/.*\/\w*: /,
        '',
      );
      return `is not a valid regular expression: ${reason}`;
    }
  },
);
const Method = Type.String({
  pattern: '^[A-Za-z]+$',
  errorMessage: 'must be an HTTP method such as GET',
});
const Attempts = Type.Integer({
  minimum: 1,
  maximum: 100,
  description: 'tries in all, the first included; 1 = never retry',
});
const RetryOn = Type.Union(
  [
    Type.Enum([...RETRY_ON_FAILURES, ...STATUS_CLASSES]),
    Type.String({ pattern: '^[1-5][0-9][0-9]$' }),
    Type.Integer({ minimum: 100, maximum: 599 }),
  ],
  {
    errorMessage:
      'must be connect-failure, reset, timeout, body-cut, a status such as 503, or a class such as 5xx',
  },
);

const Backoff = map(
  {
    base: opt(duration('delay before the first retry', true)),
    max: opt(duration('upper bound of every delay', true)),
    jitter: opt(Type.Enum(['full', 'equal', 'decorrelated', 'none'])),
  },
  'delay before retry n: d = min(max, base * 2^(n-1)), then jitter',
);

/** `auto` (what this upstream usually takes), `off`, or a duration. */
const HedgeAfter = refineText(
  Type.String({
    description:
      'start a hedge after this: auto (what this upstream usually takes), off, or a duration such as 50ms',
  }),
  (value) => {
    if (value === 'auto' || value === 'off') return undefined;
    const ms = parseDuration(value);
    if (ms === undefined || ms === 0) return 'must be auto, off, or a duration such as 50ms';
    return ms > 24 * HOUR_MS ? 'must be at most 24h' : undefined;
  },
);

const Retry = map({
  attempts: opt(Attempts),
  perTryTimeout: opt(duration('until response headers, per try')),
  connectTimeout: opt(duration('to open the connection, per try')),
  on: opt(Type.Array(RetryOn, { description: 'what is retried' })),
  methods: opt(Type.Array(Method, { description: 'methods that may be retried' })),
  idempotencyHeader: opt(
    Type.String({
      pattern: "^[!#$%&'*+.^_`|~0-9A-Za-z-]*$",
      description: 'present => any method is retryable; "" = off',
      errorMessage: 'must be a header name such as Idempotency-Key, or "" for off',
    }),
  ),
  backoff: opt(Backoff),
  retryAfter: opt(map({ max: opt(duration('longest Retry-After honoured on 429/503', true)) })),
  buffer: opt(size('request body kept for replay; larger => not retried', 0, 1024 * MiB)),
  responseBuffer: opt(
    size('response held until its body is whole, so a cut body is retried; 0 = off', 0, 16 * MiB),
  ),
  bodyTimeout: opt(duration('longest pause in a held response body; past it the try is body-cut')),
  streamIdleTimeout: opt(
    duration('longest pause in a response body streaming to the client; past it, cut'),
  ),
  hedge: opt(
    map(
      {
        after: opt(HedgeAfter),
        max: opt(
          Type.Integer({
            minimum: 1,
            maximum: 10,
            description: 'tries in flight at once, at most',
          }),
        ),
      },
      'a second try of a safe request (GET, HEAD, OPTIONS) while the first still waits',
    ),
  ),
  observeOnly: opt(Type.Boolean({ description: 'count the retries it would make, make none' })),
});

const RouteSettings = {
  timeout: opt(duration('whole request: every try and every wait')),
  retry: opt(Retry),
};

const Route = map({
  name: refineText(Type.String({ minLength: 1, description: 'the `route` metric label' }), (v) =>
    v === 'default' ? 'default is reserved for defaults.route' : undefined,
  ),
  match: Type.Object(
    {
      host: opt(HostPattern),
      path: opt(Type.String({ pattern: '^/', errorMessage: 'must start with /' })),
      pathRegex: opt(PathRegex),
      methods: opt(Type.Array(Method, { minItems: 1 })),
    },
    { additionalProperties: false, minProperties: 1, not: { required: ['path', 'pathRegex'] } },
  ),
  ...RouteSettings,
  fallback: opt(map({ upstream: Origin, retry: opt(Retry) }, 'a second origin')),
});

const PemFile = (description: string) =>
  Type.String({
    minLength: 1,
    description: `${description} (a PEM file; relative to the config file)`,
  });

const UpstreamTls = map(
  {
    port: opt(
      Type.Integer({
        minimum: 1,
        maximum: 65535,
        description:
          'the port TLS is spoken on for http:// calls; default: the port called, 80 -> 443',
      }),
    ),
    servername: opt(
      Type.String({
        pattern: '^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9.])?$',
        description: 'SNI and the name the certificate must carry; default: the host called',
        errorMessage: 'must be a DNS name such as api.example.com',
      }),
    ),
    ca: opt(PemFile('roots trusted instead of the public ones')),
    cert: opt(PemFile('client certificate for mutual TLS, with key')),
    key: opt(PemFile('private key of cert')),
  },
  'TLS origination: the app calls http://, reprise speaks verified TLS to this upstream',
);

const UpstreamSettings = {
  budget: opt(
    map({
      ratio: opt(Type.Number({ minimum: 0, maximum: 1, description: 'retries per first try' })),
      minPerSecond: opt(Type.Number({ minimum: 0, maximum: 1_000_000 })),
      window: opt(duration('sliding window')),
    }),
  ),
  circuitBreaker: opt(
    map({
      enabled: opt(
        Type.Boolean({
          description: 'false: the circuit never opens (the only way to turn it off)',
        }),
      ),
      // the old ways to turn it off (a huge minRequests, a zero ratio) are refused: say the new one
      failureRatio: opt(
        Type.Number({
          exclusiveMinimum: 0,
          maximum: 1,
          description: 'failed share that trips',
          errorMessage: `must be a number above 0 and at most 1 (${BREAKER_OFF_HINT})`,
        }),
      ),
      minRequests: opt(
        Type.Integer({
          minimum: 1,
          maximum: 10_000,
          description: 'the ratio is taken over this many of the most recent tries',
          errorMessage: `must be a whole number from 1 to 10000 (${BREAKER_OFF_HINT})`,
        }),
      ),
      consecutiveFailures: opt(Type.Integer({ minimum: 0, description: '0 = off' })),
      window: opt(duration('tries older than this are forgotten')),
      failingFor: opt(duration('the trip rule must hold this long before it opens', true)),
      openFor: opt(duration('first open period; doubles on each failed probe')),
      openForRequests: opt(
        Type.Integer({
          minimum: 0,
          maximum: 1_000_000,
          description: 'refused requests that end an open period early; 0 = off',
        }),
      ),
      maxOpenFor: opt(duration('longest open period')),
      halfOpenRequests: opt(Type.Integer({ minimum: 1, maximum: 1000 })),
    }),
  ),
  maxConcurrent: opt(Type.Integer({ minimum: 1, maximum: 1_000_000 })),
};

/** A DNS name pattern: a CA's name constraints cannot be written for what is not one. */
const InterceptHost = refineText(HostPattern, (v) => {
  const pattern = parseHostPattern(v);
  if (typeof pattern === 'string') return undefined;
  const host = pattern.wildcard ? pattern.host.slice(1) : pattern.host;
  return isIP(unbracket(host)) === 0
    ? undefined
    : 'must be a DNS name such as api.example.com or *.example.com, not an IP address';
});
const filePath = (description: string) => Type.String({ minLength: 1, description });

const Intercept = map(
  {
    hosts: Type.Array(InterceptHost, {
      minItems: 1,
      description: 'tunnels to these hosts are opened and retried inside (same patterns as routes)',
    }),
    ca: opt(
      map(
        { cert: filePath('PEM CA certificate'), key: filePath('PEM private key of the CA') },
        'PEM files of the CA that signs the leaves; omitted: one is made at start, in memory',
      ),
    ),
    writeCa: opt(filePath('the CA certificate is written here (never the key)')),
    writeBundle: opt(
      filePath('the public roots and the CA certificate are written here, for SSL_CERT_FILE'),
    ),
  },
  'interception of CONNECT tunnels to opted-in hosts',
);

export const DocumentSchema = Type.Object(
  {
    version: Type.Literal(1, { errorMessage: 'must be 1' }),
    listen: opt(Address),
    admin: opt(Address),
    defaults: opt(map({ route: opt(map(RouteSettings)), upstream: opt(map(UpstreamSettings)) })),
    routes: opt(Type.Array(Route, { description: 'first match wins, in file order' })),
    upstreams: opt(
      Type.Array(map({ match: HostPattern, ...UpstreamSettings, tls: opt(UpstreamTls) })),
    ),
    listeners: opt(Type.Array(map({ listen: Address, upstream: Origin }))),
    connect: opt(
      map({
        allowedPorts: opt(Type.Array(Type.Integer({ minimum: 1, maximum: 65535 }))),
        idleTimeout: opt(duration('a tunnel with no bytes either way is closed')),
        retry: opt(
          map({
            attempts: opt(Attempts),
            connectTimeout: opt(duration('per try')),
            backoff: opt(Backoff),
          }),
        ),
        intercept: opt(Intercept),
      }),
    ),
    limits: opt(
      map({
        maxBufferedBytes: opt(size('all replay buffers together', 0, 64 * 1024 * MiB)),
        drainTimeout: opt(duration('in-flight requests may finish within this on stop', true)),
        maxClientConnections: opt(Type.Integer({ minimum: 1, maximum: 10_000_000 })),
        headersTimeout: opt(duration('a client must send its request head within this')),
        idleTimeout: opt(duration('an idle client connection is closed')),
        maxHeaderBytes: opt(size('request head', 1024, MiB)),
        maxUrlBytes: opt(size('request target', 256, MiB)),
      }),
    ),
    access: opt(
      map({
        allowedClients: opt(Type.Array(Cidr, { minItems: 1 })),
        deniedUpstreams: opt(Type.Array(Cidr)),
      }),
    ),
  },
  {
    $schema: 'http://json-schema.org/draft-07/schema#',
    title: 'reprise config',
    additionalProperties: false,
  },
);

/** The document as written (after YAML parsing), once it passed the schema. */
export type RawDocument = Static<typeof DocumentSchema>;

/**
 * Every schema problem in `value`, at most 500. The compiled validator is not kept: a config
 * is validated at start and on reload only, and compiling takes a few milliseconds.
 */
export function validateDocument(value: unknown): ConfigProblem[] {
  const validator = Compile(DocumentSchema);
  if (validator.Check(value)) return [];
  const maxErrors = Settings.Get().maxErrors;
  Settings.Set({ maxErrors: 500 }); // typebox stops at 8 by default; we report every one
  let errors: TLocalizedValidationError[];
  try {
    errors = validator.Errors(value);
  } finally {
    Settings.Set({ maxErrors });
  }
  return toProblems(errors, value, DocumentSchema);
}

/** The JSON Schema text written to config/reprise.schema.json. */
export function schemaJson(): string {
  // typebox keeps its internals (`~kind`, `~refine`) non-enumerable, so they are not written
  return `${JSON.stringify(DocumentSchema, null, 2)}\n`;
}
