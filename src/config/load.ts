/**
 * Reading a config: YAML with positions, the schema, the relations, then compile. Every
 * problem is found before anything is built and thrown as one ConfigError whose lines read
 * `FILE:LINE:COL: key.path: message`. The only user of the `yaml` package.
 */
import { readFileSync } from 'node:fs';
import { type Document, isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument } from 'yaml';
import { checkRelations, compileConfig } from './compile.ts';
import {
  ConfigError,
  type ConfigIssue,
  type ConfigProblem,
  formatIssue,
  formatKeyPath,
  readFailureReason,
} from './config-error.ts';
import { readInterceptFiles } from './intercept-files.ts';
import { type RawDocument, validateDocument } from './schema.ts';
import { readTlsFiles } from './tls-files.ts';
import type { Config } from './types.ts';

/** Reads and compiles `path`. Throws ConfigError (every problem) when it cannot be used. */
export function loadConfigFile(path: string): Config {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const reason = readFailureReason(error);
    throw new ConfigError([
      { file: path, line: 0, col: 0, path: '', message: `cannot read: ${reason}` },
    ]);
  }
  return loadConfigText(text, path);
}

/** Compiles YAML `text`; `fileName` names it in messages and becomes `Config.source`. */
export function loadConfigText(text: string, fileName: string): Config {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false });
  const issueAt = (offset: number, path: string, message: string): ConfigIssue => {
    const { line, col } = lineCounter.linePos(offset);
    return { file: fileName, line: Math.max(line, 1), col, path, message };
  };
  if (doc.errors.length > 0) {
    const issues = doc.errors.map((error) => issueAt(error.pos[0], '', firstLine(error.message)));
    // the parser can report one fault several times at one place
    const unique = new Map(issues.map((issue) => [formatIssue(issue), issue]));
    throw new ConfigError([...unique.values()]);
  }
  const value: unknown = doc.contents === null ? {} : doc.toJS();
  const tls = readTlsFiles(value, fileName);
  const intercept = readInterceptFiles(value, fileName);
  const problems = uniqueProblems([
    ...validateDocument(value),
    ...checkRelations(value),
    ...tls.problems,
    ...intercept.problems,
  ]);
  if (problems.length > 0) {
    const issues = problems.map((problem) =>
      issueAt(locate(doc, problem), formatKeyPath(problem.path), problem.message),
    );
    throw new ConfigError(issues.sort((a, b) => a.line - b.line || a.col - b.col));
  }
  return compileConfig(value as RawDocument, fileName, tls.pem, intercept.ca);
}

/** For `reprise check`: ok, or every problem as a `FILE:LINE:COL: key.path: message` line. */
export function checkConfigFile(path: string): { ok: true } | { ok: false; lines: string[] } {
  try {
    loadConfigFile(path);
    return { ok: true };
  } catch (error) {
    if (error instanceof ConfigError) return { ok: false, lines: error.errors.map(formatIssue) };
    throw error;
  }
}

/** The first problem at each place wins (the schema's, over a relation's on the same value). */
function uniqueProblems(problems: readonly ConfigProblem[]): ConfigProblem[] {
  const seen = new Set<string>();
  return problems.filter((problem) => {
    const key = `${formatKeyPath(problem.path)}${problem.atKey ? ':key' : ''}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/**
 * The offset of the node a problem names: its value, or its key for an unknown key. A key
 * that is missing is placed at the map that should hold it (the deepest node that exists).
 */
function locate(doc: Document, problem: ConfigProblem): number {
  let node: unknown = doc.contents;
  let offset = rangeStart(node) ?? 0;
  for (const [index, segment] of problem.path.entries()) {
    if (isAlias(node)) node = node.resolve(doc);
    let key: unknown;
    let value: unknown;
    if (isMap(node)) {
      const pair = node.items.find((item) => keyText(item.key) === String(segment));
      if (pair === undefined) break;
      [key, value] = [pair.key, pair.value];
    } else if (isSeq(node) && typeof segment === 'number') {
      value = node.items[segment];
    } else break;
    const last = index === problem.path.length - 1;
    offset = rangeStart(last && problem.atKey ? key : (value ?? key)) ?? offset;
    node = value;
  }
  return offset;
}

function keyText(key: unknown): string {
  return isScalar(key) ? String(key.value) : String(key);
}

function rangeStart(node: unknown): number | undefined {
  const range = (node as { range?: readonly number[] } | null | undefined)?.range;
  return range?.[0];
}

function firstLine(message: string): string {
  return message.split('\n')[0] ?? message;
}
