# syntax=docker/dockerfile:1
# reprise container image:  docker build -t reprise:0.1.0 .
# test/e2e/image-build.test.ts performs these steps without a Docker engine (it reads this file):
# keep the two in step.

# Build: bundle the TypeScript into dist/ (scripts/build.ts). Needs devDependencies; scripts
# are skipped because `prepare` would build before src/ is copied and the `node` devDependency
# would fetch a second Node binary (esbuild needs none: its binary is an optional dependency).
# The build runs on this image's Node 24.
FROM node:24-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY scripts/build.ts ./scripts/
COPY src ./src
RUN npm run build

# Production dependencies only (all pure JavaScript: no install scripts, no native addons).
FROM node:24-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

# Runtime: distroless Node 24 (Debian 12): node, glibc and CA certificates; no shell, npm or
# apt, so fewer packages to patch. Its `nonroot` user is uid/gid 65532, given as numbers so
# that Kubernetes' runAsNonRoot can check it. The app files belong to root and are read-only
# to it; reprise writes nothing to disk (logs go to stdout), so the root filesystem can be
# read-only.
FROM gcr.io/distroless/nodejs24-debian12:nonroot
WORKDIR /app
ENV NODE_ENV=production
ENV REPRISE_CONFIG=/etc/reprise/config.yaml
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# package.json: "type": "module" for dist/, and the version reprise reports.
COPY package.json ./
COPY deploy/image/config.yaml /etc/reprise/config.yaml
USER 65532:65532
EXPOSE 3128 9901
# reprise drains on SIGTERM: /readyz turns 503, in-flight requests finish within
# limits.drainTimeout, then it exits 0.
STOPSIGNAL SIGTERM
# No HEALTHCHECK: Kubernetes ignores it and probes /healthz and /readyz on port 9901 itself,
# and this image has no shell or curl to run one. Node is PID 1 and handles the signals itself.
# `docker run IMAGE check /etc/reprise/config.yaml` validates a config with the same image.
# The memory settings of dist/cli/main.js's first line (V8 and glibc read them only at start;
# that line's `env -S` needs a shell tool this image does not have, so they are repeated here).
ENV MALLOC_ARENA_MAX=2
ENTRYPOINT ["/nodejs/bin/node", "--expose-gc", "--max-semi-space-size=4", "--max-old-space-size=160", "--initial-old-space-size=48", "/app/dist/cli/main.js"]
