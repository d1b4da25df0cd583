# syntax=docker/dockerfile:1
# vipd's image: the daemon, its production dependencies and the native addons, nothing else.
# test/package.test.ts checks the same thing without a Docker engine: the package installed with
# --omit=dev (addon compiled there) runs `vipd --help`, `vipd version` and `vipd check`.
#
#   docker build -t ghcr.io/vipd/vipd:$(node -p "require('./package.json').version") .
#
# Both stages use the same Node major on the same Debian release, so the addon built in the first
# (N-API, against Node's own headers) loads in the second.
ARG NODE_IMAGE=node:20-bookworm

FROM ${NODE_IMAGE} AS build
# The full node image is buildpack-deps: python3, make and g++ for node-gyp are already there.
# Fail here, plainly, if a base image change ever drops them.
RUN python3 --version && make --version >/dev/null && g++ --version >/dev/null
WORKDIR /src
# Dependencies first, so editing src/ does not re-run the install. `npm ci` runs the package's
# install script, which builds native/ (node-gyp with --nodedir: Node's headers, no download).
COPY package.json package-lock.json ./
COPY native/binding.gyp native/packet.cc native/relay.cc native/
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src/ src/
RUN npm run build && npm prune --omit=dev --no-audit --no-fund

FROM ${NODE_IMAGE}-slim
WORKDIR /opt/vipd
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules/ node_modules/
COPY --from=build /src/dist/src/ dist/src/
COPY --from=build /src/native/build/Release/vipd_packet.node /src/native/build/Release/vipd_relay.node native/build/Release/
COPY configs/ configs/
# dist/src/cli/main.js has a `#!/usr/bin/env node` line; tsc does not set the executable bit.
RUN chmod 0755 dist/src/cli/main.js && ln -s /opt/vipd/dist/src/cli/main.js /usr/local/bin/vipd \
 && vipd version
# Runs as root on purpose: the static pod grants exactly NET_ADMIN and NET_RAW and drops the rest
# (vipd manifest pod), and the secret file on the host is root's, mode 0600.
ENTRYPOINT ["vipd"]
CMD ["run", "--config", "/etc/vipd/vipd.yaml"]
