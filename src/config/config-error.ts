/**
 * Config problems: found by the schema and the relation checks as key paths, then placed in
 * the file by `load.ts` and thrown together as one ConfigError (every problem, not the first).
 */

export type KeyPath = readonly (string | number)[];

/** A problem found in the document, before it is placed in the file. */
export interface ConfigProblem {
  /** Where, as keys and list indexes from the document root. */
  readonly path: KeyPath;
  readonly message: string;
  /** Point at the key itself (an unknown key) instead of its value. */
  readonly atKey?: boolean;
}

/** A problem placed in the file. `line` and `col` are 1-based; 0 when it concerns the whole file. */
export interface ConfigIssue {
  readonly file: string;
  readonly line: number;
  readonly col: number;
  /** `routes[0].retry.attempts`; '' for the document itself or a YAML syntax error. */
  readonly path: string;
  readonly message: string;
}

/** `['routes', 0, 'retry']` -> `routes[0].retry`. */
export function formatKeyPath(path: KeyPath): string {
  let text = '';
  for (const segment of path) {
    if (typeof segment === 'number') text += `[${segment}]`;
    else text += text === '' ? segment : `.${segment}`;
  }
  return text;
}

/** `FILE:LINE:COL: key.path: message`; the position and the path are left out when there are none. */
export function formatIssue(issue: ConfigIssue): string {
  const where = issue.line > 0 ? `${issue.file}:${issue.line}:${issue.col}` : issue.file;
  return issue.path === ''
    ? `${where}: ${issue.message}`
    : `${where}: ${issue.path}: ${issue.message}`;
}

const READ_ERRORS: Readonly<Record<string, string>> = {
  ENOENT: 'no such file',
  EACCES: 'permission denied',
  EISDIR: 'is a directory',
};

/** Why a file could not be read, in a few words (the config file, a PEM file). */
export function readFailureReason(error: unknown): string {
  return READ_ERRORS[(error as NodeJS.ErrnoException).code ?? ''] ?? (error as Error).message;
}

/** Thrown for a config that cannot be used; carries every problem found, in file order. */
export class ConfigError extends Error {
  readonly errors: readonly ConfigIssue[];

  constructor(errors: readonly ConfigIssue[]) {
    super(errors.map(formatIssue).join('\n'));
    this.name = 'ConfigError';
    this.errors = errors;
  }

  /** One line per problem: `FILE:LINE:COL: key.path: message`. */
  format(): string[] {
    return this.errors.map(formatIssue);
  }
}

/** The shape of a JSON Schema validator error (typebox's, ajv's). */
export interface SchemaError {
  readonly keyword: string;
  /** JSON pointer into the schema, to the schema object whose keyword failed. */
  readonly schemaPath: string;
  /** JSON pointer into the document. */
  readonly instancePath: string;
  readonly params: Readonly<Record<string, unknown>>;
  readonly message: string;
}

type SchemaNode = Readonly<Record<string, unknown>>;

/**
 * Validator errors as problems a person can act on: the branches of a failed `anyOf` folded
 * into its `errorMessage`, one problem per missing key (placed at its map) and per unknown key
 * (at the key). Several errors on one value are left for the caller to reduce to the first.
 */
export function toProblems(
  errors: readonly SchemaError[],
  document: unknown,
  schema: object,
): ConfigProblem[] {
  const unions = errors.filter((error) => error.keyword === 'anyOf');
  const inUnion = (error: SchemaError) =>
    unions.some((union) => error.schemaPath.startsWith(`${union.schemaPath}/anyOf/`));
  return errors
    .filter((error) => !inUnion(error))
    .flatMap((error) => problemsFor(error, toKeyPath(error.instancePath, document), schema));
}

function problemsFor(error: SchemaError, path: KeyPath, schema: object): ConfigProblem[] {
  const node = schemaAt(schema, error.schemaPath);
  const { params } = error;
  switch (error.keyword) {
    case 'required':
      return strings(params.requiredProperties).map((key) => ({
        path: [...path, key],
        message: 'is required',
      }));
    case 'additionalProperties': {
      const known = Object.keys((node?.properties as object | undefined) ?? {});
      return strings(params.additionalProperties).map((key) => ({
        path: [...path, key],
        atKey: true,
        message: unknownKeyMessage(key, known),
      }));
    }
    case 'boolean': // the per-key twin of `additionalProperties`, reported above
      return [];
    case '~refine':
      return [{ path, message: String(params.message) }];
    default:
      return [{ path, message: valueMessage(error, node) }];
  }
}

function valueMessage(error: SchemaError, node: SchemaNode | undefined): string {
  const { params } = error;
  const limit = params.limit as number;
  switch (error.keyword) {
    case 'minProperties': {
      const keys = Object.keys((node?.properties as object | undefined) ?? {});
      return `must set at least one of ${keys.join(', ')}`;
    }
    case 'not': {
      const keys = strings((node?.not as SchemaNode | undefined)?.required);
      return `cannot set both ${keys.join(' and ')}`;
    }
  }
  if (typeof node?.errorMessage === 'string') return node.errorMessage;
  switch (error.keyword) {
    case 'type':
      return `must be ${TYPE_NAMES[String(params.type)] ?? `of type ${String(params.type)}`}`;
    case 'minimum':
      return `must be at least ${limit}`;
    case 'maximum':
      return `must be at most ${limit}`;
    case 'exclusiveMinimum':
      return `must be greater than ${limit}`;
    case 'exclusiveMaximum':
      return `must be less than ${limit}`;
    case 'minItems':
      return `must have at least ${limit} item${limit === 1 ? '' : 's'}`;
    case 'minLength':
      return limit === 1 ? 'must not be empty' : `must be at least ${limit} characters`;
    case 'enum':
      return `must be one of ${(params.allowedValues as unknown[]).join(', ')}`;
    case 'const':
      return `must be ${JSON.stringify(params.allowedValue)}`;
    default:
      return error.message;
  }
}

const TYPE_NAMES: Readonly<Record<string, string>> = {
  integer: 'a whole number',
  number: 'a number',
  string: 'a string',
  boolean: 'true or false',
  object: 'a map of keys',
  array: 'a list',
};

function unknownKeyMessage(key: string, known: readonly string[]): string {
  let best: string | undefined;
  let bestDistance = 3;
  for (const candidate of known) {
    const distance = editDistance(key.toLowerCase(), candidate.toLowerCase());
    if (distance < bestDistance && distance < key.length / 2) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best === undefined ? 'unknown key' : `unknown key (did you mean ${best}?)`;
}

function editDistance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitute = (row[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      next.push(Math.min(substitute, (row[j] ?? 0) + 1, (next[j - 1] ?? 0) + 1));
    }
    row = next;
  }
  return row[b.length] ?? 0;
}

/** `/routes/0/retry` -> `['routes', 0, 'retry']`, indexes as numbers where the value is a list. */
function toKeyPath(pointer: string, document: unknown): KeyPath {
  const path: (string | number)[] = [];
  let value = document;
  for (const segment of pointerSegments(pointer)) {
    const key = Array.isArray(value) ? Number(segment) : segment;
    path.push(key);
    value = (value as Record<string | number, unknown> | undefined)?.[key];
  }
  return path;
}

function schemaAt(schema: object, pointer: string): SchemaNode | undefined {
  let node: unknown = schema;
  for (const segment of pointerSegments(pointer.replace(/^#/, ''))) {
    node = (node as Record<string, unknown> | undefined)?.[segment];
  }
  return typeof node === 'object' && node !== null ? (node as SchemaNode) : undefined;
}

function pointerSegments(pointer: string): string[] {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((segment) => segment.replaceAll('~1', '/').replaceAll('~0', '~'));
}

function strings(value: unknown): string[] {
  return Array.isArray(value) ? value.map(String) : [];
}
