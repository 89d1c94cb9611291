/**
 * A small kustomize renderer for exactly the features deploy/kubernetes uses, so that the
 * manifests can be rendered on a fresh machine with `npm ci` alone (no kustomize on npm is
 * maintained; kubectl may be absent):
 *   - `resources`: YAML files, and directories holding a kustomization.yaml (rendered first);
 *   - `configMapGenerator`: `files` entries (`path` or `key=path`), `behavior` create | replace,
 *     with the name hash suffix disabled (`generatorOptions` or the generator's `options`);
 *   - `patches`: an inline JSON 6902 patch (ops add, replace, remove, test) with a kind/name target.
 * Anything else throws, so a kustomization that needs the real kustomize fails loudly here.
 * deploy-manifests.test.ts compares the output with `kubectl kustomize` where kubectl exists.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { parse, parseAllDocuments } from 'yaml';

export type K8sObject = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; [key: string]: unknown };
  [key: string]: unknown;
};
export interface Rendered {
  readonly objects: K8sObject[];
  /** Absolute paths of every file the render read. */
  readonly files: string[];
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
interface Generator {
  name: string;
  behavior?: 'create' | 'replace';
  files?: string[];
  options?: { disableNameSuffixHash?: boolean };
}
interface PatchOp {
  op: 'add' | 'replace' | 'remove' | 'test';
  path: string;
  value?: Json;
}

const KNOWN_KEYS = new Set([
  'apiVersion',
  'kind',
  'resources',
  'configMapGenerator',
  'generatorOptions',
  'patches',
]);

export function readYamlDocuments(file: string): K8sObject[] {
  return parseAllDocuments(readFileSync(file, 'utf8'))
    .map((doc) => {
      if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors[0]?.message}`);
      return doc.toJS() as K8sObject | null;
    })
    .filter((obj): obj is K8sObject => obj !== null);
}

export function renderKustomization(dir: string): Rendered {
  const root = resolve(dir);
  const file = join(root, 'kustomization.yaml');
  const k = parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  for (const key of Object.keys(k)) {
    if (!KNOWN_KEYS.has(key))
      throw new Error(`${file}: "${key}" is not supported by kustomize-lite`);
  }
  const objects: K8sObject[] = [];
  const files = [file];
  for (const entry of (k.resources ?? []) as string[]) {
    const path = join(root, entry);
    if (statSync(path).isDirectory()) {
      const sub = renderKustomization(path);
      objects.push(...sub.objects);
      files.push(...sub.files);
    } else {
      objects.push(...readYamlDocuments(path));
      files.push(path);
    }
  }
  const options = (k.generatorOptions ?? {}) as Generator['options'];
  onlyHashOption(file, options);
  const hashOff = options?.disableNameSuffixHash;
  for (const gen of (k.configMapGenerator ?? []) as Generator[]) {
    generateConfigMap(root, gen, hashOff, objects, files);
  }
  for (const patch of (k.patches ?? []) as Record<string, unknown>[])
    applyPatch(file, patch, objects);
  return { objects, files };
}

function generateConfigMap(
  root: string,
  gen: Generator,
  hashOff: boolean | undefined,
  objects: K8sObject[],
  files: string[],
): void {
  const unsupported = Object.keys(gen).filter(
    (key) => !['name', 'behavior', 'files', 'options'].includes(key),
  );
  if (unsupported.length > 0)
    throw new Error(`configMapGenerator ${gen.name}: ${unsupported} not supported`);
  onlyHashOption(`configMapGenerator ${gen.name}`, gen.options);
  if ((gen.options?.disableNameSuffixHash ?? hashOff) !== true) {
    throw new Error(`configMapGenerator ${gen.name}: the name hash suffix is not supported`);
  }
  const data: Record<string, string> = {};
  for (const entry of gen.files ?? []) {
    const [key, path] = entry.includes('=') ? entry.split('=', 2) : [basename(entry), entry];
    const full = join(root, path as string);
    data[key as string] = readFileSync(full, 'utf8');
    files.push(full);
  }
  const generated: K8sObject = {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: gen.name },
    data,
  };
  const at = objects.findIndex((o) => o.kind === 'ConfigMap' && o.metadata.name === gen.name);
  const behavior = gen.behavior ?? 'create';
  if (behavior === 'create' && at === -1) objects.push(generated);
  else if (behavior === 'replace' && at !== -1) objects[at] = generated;
  else throw new Error(`configMapGenerator ${gen.name}: behavior ${behavior} not possible here`);
}

function onlyHashOption(where: string, options: object | undefined): void {
  const other = Object.keys(options ?? {}).filter((key) => key !== 'disableNameSuffixHash');
  if (other.length > 0) throw new Error(`${where}: options ${other} not supported`);
}

function applyPatch(file: string, patch: Record<string, unknown>, objects: K8sObject[]): void {
  const target = patch.target as { kind?: string; name?: string } | undefined;
  const unsupported = Object.keys(patch).filter((key) => key !== 'target' && key !== 'patch');
  if (unsupported.length > 0 || target === undefined || typeof patch.patch !== 'string') {
    throw new Error(`${file}: only inline patches with a target are supported`);
  }
  const ops = parse(patch.patch) as PatchOp[];
  if (!Array.isArray(ops)) throw new Error(`${file}: only JSON 6902 patches are supported`);
  const matched = objects.filter((o) => o.kind === target.kind && o.metadata.name === target.name);
  if (matched.length === 0)
    throw new Error(`${file}: patch target ${target.kind}/${target.name} not found`);
  for (const obj of matched) for (const op of ops) applyOp(obj as unknown as Json, op);
}

/** RFC 6902 on a parsed document, in place. */
function applyOp(doc: Json, op: PatchOp): void {
  if (!['add', 'replace', 'remove', 'test'].includes(op.op))
    throw new Error(`patch op ${op.op} not supported`);
  const tokens = op.path
    .split('/')
    .slice(1)
    .map((t) => t.replaceAll('~1', '/').replaceAll('~0', '~'));
  const last = tokens.pop();
  if (last === undefined) throw new Error(`patch path "${op.path}" is the whole document`);
  let parent: Json = doc;
  for (const token of tokens) parent = child(parent, token, op.path);
  if (parent === null || typeof parent !== 'object')
    throw new Error(`patch path "${op.path}" not found`);
  const exists = Array.isArray(parent) ? Number(last) < parent.length : Object.hasOwn(parent, last);
  if (op.op !== 'add' && !exists) throw new Error(`patch path "${op.path}" not found`);
  if (op.op === 'test') {
    if (!isDeepStrictEqual(child(parent, last, op.path), op.value))
      throw new Error(`patch test ${op.path} failed`);
  } else if (Array.isArray(parent)) {
    const index = last === '-' ? parent.length : Number(last);
    parent.splice(
      index,
      op.op === 'add' ? 0 : 1,
      ...(op.op === 'remove' ? [] : [op.value as Json]),
    );
  } else if (op.op === 'remove') {
    delete parent[last];
  } else {
    parent[last] = op.value as Json;
  }
}

function child(node: Json, token: string, path: string): Json {
  const next = Array.isArray(node) ? node[Number(token)] : (node as Record<string, Json>)?.[token];
  if (next === undefined) throw new Error(`patch path "${path}" not found`);
  return next;
}

export function hasKubectl(): boolean {
  return (process.env.PATH ?? '')
    .split(':')
    .some((dir) => dir !== '' && existsSync(join(dir, 'kubectl')));
}
