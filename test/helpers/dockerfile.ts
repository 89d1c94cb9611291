/**
 * Reads the instructions the reprise Dockerfile uses (FROM … AS, WORKDIR, COPY [--from], RUN
 * without shell syntax, ENV, USER, EXPOSE, STOPSIGNAL, ENTRYPOINT in exec form) and the
 * allowlist form of .dockerignore, and performs the stages without a Docker engine, so that
 * image-build.test.ts does what the Dockerfile does. Any other instruction or form throws:
 * the test must learn it before the Dockerfile may use it.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, statSync } from 'node:fs';
import { dirname, join, posix } from 'node:path';

export type DockerStep =
  | { kind: 'copy'; from: string | undefined; sources: string[]; dest: string; workdir: string }
  | { kind: 'run'; command: string; workdir: string };

export interface DockerStage {
  name: string;
  from: string;
  workdir: string;
  steps: DockerStep[];
  env: Record<string, string>;
  user: string | undefined;
  expose: string[];
  stopSignal: string | undefined;
  entrypoint: string[];
}

export function parseDockerfile(text: string): DockerStage[] {
  const stages: DockerStage[] = [];
  const lines = text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
  for (const line of lines) {
    const [instruction = '', ...words] = line.split(/\s+/);
    const rest = line.slice(instruction.length).trim();
    const stage = stages.at(-1);
    if (instruction === 'FROM') {
      if (words.length !== 3 || words[1]?.toUpperCase() !== 'AS') {
        if (words.length !== 1) throw new Error(`unsupported: ${line}`);
      }
      stages.push({
        name: words[2] ?? `stage-${stages.length}`,
        from: words[0] as string,
        workdir: '/',
        steps: [],
        env: {},
        user: undefined,
        expose: [],
        stopSignal: undefined,
        entrypoint: [],
      });
      continue;
    }
    if (stage === undefined) throw new Error(`${instruction} before FROM`);
    switch (instruction) {
      case 'WORKDIR':
        stage.workdir = posix.resolve(stage.workdir, rest);
        break;
      case 'COPY': {
        const flags = words.filter((w) => w.startsWith('--'));
        const paths = words.filter((w) => !w.startsWith('--'));
        const from = flags.find((f) => f.startsWith('--from='))?.slice('--from='.length);
        if (
          flags.length !== (from === undefined ? 0 : 1) ||
          paths.length < 2 ||
          rest.startsWith('[')
        ) {
          throw new Error(`unsupported: ${line}`);
        }
        const dest = paths.pop() as string;
        stage.steps.push({ kind: 'copy', from, sources: paths, dest, workdir: stage.workdir });
        break;
      }
      case 'RUN':
        if (/[;&|<>$`"'\\]/.test(rest)) throw new Error(`unsupported (shell syntax): ${line}`);
        stage.steps.push({ kind: 'run', command: rest, workdir: stage.workdir });
        break;
      case 'ENV':
        for (const pair of words) {
          const m = /^([A-Za-z_][A-Za-z0-9_]*)=([^"'$]*)$/.exec(pair);
          if (!m) throw new Error(`unsupported: ${line}`);
          stage.env[m[1] as string] = m[2] as string;
        }
        break;
      case 'USER':
        stage.user = rest;
        break;
      case 'EXPOSE':
        stage.expose.push(...words);
        break;
      case 'STOPSIGNAL':
        stage.stopSignal = rest;
        break;
      case 'ENTRYPOINT':
        stage.entrypoint = JSON.parse(rest) as string[];
        break;
      default:
        throw new Error(`unsupported instruction: ${line}`);
    }
  }
  return stages;
}

/**
 * Whether `path` (relative to the context) is sent to the builder under an allowlist
 * .dockerignore: `*`, then `!path` lines. The last matching line decides, and a line matches
 * a path or any of its parent directories, as in Docker.
 */
export function isInContext(dockerignore: string, path: string): boolean {
  let included = true;
  for (const raw of dockerignore.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const negated = line.startsWith('!');
    const pattern = negated ? line.slice(1) : line;
    if (pattern !== '*' && /[*?[\]]/.test(pattern)) throw new Error(`unsupported pattern: ${line}`);
    if (pattern === '*' || path === pattern || path.startsWith(`${pattern}/`)) included = negated;
  }
  return included;
}

type CopyStep = Extract<DockerStep, { kind: 'copy' }>;
/** Maps a path inside a stage's filesystem to a path on this machine. */
type StageFs = (path: string) => string;

/**
 * Performs every stage but the last in `workDir/<stage name>/` (COPY from `contextDir`, RUN
 * as a plain command there), except `prebuilt`, whose WORKDIR stands for `contextDir` as it
 * is (a checkout already built); then assembles the last stage's files in `workDir/rootfs/`,
 * which it returns. The last stage may not RUN anything (its base image has no shell).
 */
export function assembleImage(
  stages: DockerStage[],
  contextDir: string,
  workDir: string,
  prebuilt: DockerStage,
): string {
  const final = stages.at(-1) as DockerStage;
  const filesystems = new Map<string, StageFs>([
    [prebuilt.name, (path) => join(contextDir, posix.relative(prebuilt.workdir, path))],
  ]);
  const copy = (step: CopyStep, fs: StageFs) => copyStep(step, fs, contextDir, filesystems);
  for (const stage of stages.slice(0, -1).filter((s) => s !== prebuilt)) {
    const fs: StageFs = (path) => join(workDir, stage.name, path);
    for (const step of stage.steps) {
      if (step.kind === 'copy') {
        copy(step, fs);
        continue;
      }
      mkdirSync(fs(step.workdir), { recursive: true });
      const [command, ...args] = step.command.split(/\s+/);
      const env = { ...process.env, npm_config_prefer_offline: 'true' };
      const run = spawnSync(command as string, args, {
        cwd: fs(step.workdir),
        encoding: 'utf8',
        env,
      });
      if (run.status !== 0) throw new Error(`RUN ${step.command} failed:\n${run.stderr}`);
    }
    filesystems.set(stage.name, fs);
  }
  const rootfs = join(workDir, 'rootfs');
  for (const step of final.steps) {
    if (step.kind === 'run') throw new Error(`RUN in the final stage: ${step.command}`);
    copy(step, (path) => join(rootfs, path));
  }
  return rootfs;
}

/**
 * COPY as Docker does it: a directory's contents go to the destination itself; a file goes
 * into it when it ends in `/` or there are several sources.
 */
function copyStep(
  step: CopyStep,
  fs: StageFs,
  contextDir: string,
  stages: Map<string, StageFs>,
): void {
  const intoDir = step.dest.endsWith('/') || step.sources.length > 1;
  const dest = posix.resolve(step.workdir, step.dest);
  for (const source of step.sources) {
    const stage = step.from === undefined ? undefined : stages.get(step.from);
    if (step.from !== undefined && stage === undefined) throw new Error(`no stage ${step.from}`);
    const from = stage === undefined ? join(contextDir, source) : stage(source);
    const isDir = statSync(from).isDirectory();
    const to = fs(intoDir && !isDir ? posix.join(dest, posix.basename(source)) : dest);
    mkdirSync(dirname(to), { recursive: true });
    cpSync(from, to, { recursive: true, verbatimSymlinks: true });
  }
}
