# syntax=docker/dockerfile:1
# rollbackd container image: the daemon, and (same image, `simulate`) the trading-system
# simulator of the compose stack.
#
#   docker build -t rollbackd --build-arg ROLLBACKD_REVISION=$(git rev-parse --short=12 HEAD) .
#   docker run --rm -p 9100:9100 rollbackd                    # built-in defaults, see below
#   docker run --rm -v $PWD/rollbackd.yaml:/etc/rollbackd/rollbackd.yaml:ro -p 9100:9100 rollbackd

# ---- build ------------------------------------------------------------------------------
FROM rust:1-bookworm AS builder
WORKDIR /src

# The whole context (.dockerignore keeps it to the sources): Cargo.toml may name targets
# (benches, tests) whose files must exist, and the console in assets/ is embedded.
COPY . .

# The source revision for rollbackd_build_info (.git is not in the context).
ARG ROLLBACKD_REVISION=unknown

# Dependencies are cached across builds in BuildKit cache mounts (the registry and the
# target directory), so a change to rollbackd's sources recompiles rollbackd only. The
# target directory is a cache, not part of the layer: the binary is copied out of it.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bin rollbackd \
    && install -m 0755 target/release/rollbackd /usr/local/bin/rollbackd \
    && rollbackd --version \
    && mkdir -p /out/doc /out/man1 /out/completions \
    && cp docs/*.md /out/doc/ \
    && rollbackd man > /out/man1/rollbackd.1 \
    && rollbackd completions bash > /out/completions/rollbackd

# ---- run --------------------------------------------------------------------------------
FROM debian:bookworm-slim

# curl: the health check. ca-certificates: for anything behind a TLS proxy.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*

# A fixed, unprivileged uid/gid so volume ownership is predictable.
RUN groupadd --system --gid 10001 rollbackd \
    && useradd --system --uid 10001 --gid rollbackd --home-dir /var/lib/rollbackd \
       --shell /usr/sbin/nologin rollbackd \
    && mkdir -p /var/lib/rollbackd /etc/rollbackd \
    && chown rollbackd:rollbackd /var/lib/rollbackd

# Default config for a bare `docker run`: the seed's defaults, reachable from outside the
# container, history on the volume. Mount your own rollbackd.yaml over it.
RUN printf '%s\n' \
    '# Image default: the seed'"'"'s defaults; mount your own rollbackd.yaml here.' \
    'listen: "0.0.0.0:9100"' \
    'storage: { path: /var/lib/rollbackd/rollbackd.db }' \
    > /etc/rollbackd/rollbackd.yaml

COPY --from=builder /usr/local/bin/rollbackd /usr/local/bin/rollbackd
# The runbook the shipped alert rules link to by default
# (file:///usr/share/doc/rollbackd/runbook.md), the man page and bash completion.
COPY --from=builder /out/doc/ /usr/share/doc/rollbackd/
COPY --from=builder /out/man1/rollbackd.1 /usr/share/man/man1/rollbackd.1
COPY --from=builder /out/completions/rollbackd /usr/share/bash-completion/completions/rollbackd

USER 10001:10001
WORKDIR /var/lib/rollbackd
# The append-only SQLite history (WAL): keep it on a volume.
VOLUME ["/var/lib/rollbackd"]
EXPOSE 9100

# Liveness of the daemon. (The simulator, same image, is checked by compose on its own port.)
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:9100/-/healthy"]

ENTRYPOINT ["rollbackd"]
CMD ["serve", "--config", "/etc/rollbackd/rollbackd.yaml"]
