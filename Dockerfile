# rollbackd container image: the daemon, and (same image, `simulate`) the trading-system
# simulator of the compose stack.
#
#   docker build -t rollbackd .
#   docker run --rm -p 9100:9100 rollbackd                    # built-in defaults, see below
#   docker run --rm -v $PWD/rollbackd.yaml:/etc/rollbackd/rollbackd.yaml:ro -p 9100:9100 rollbackd

# ---- build ------------------------------------------------------------------------------
FROM rust:1-bookworm AS builder
WORKDIR /src

# Dependencies first, in their own layer: a change to rollbackd's sources does not
# rebuild them. Stub targets stand in for the real ones.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src target/release/rollbackd target/release/deps/rollbackd-* \
       target/release/deps/librollbackd-* target/release/.fingerprint/rollbackd-*

# The real sources (src/ and the console in assets/, embedded in the binary).
COPY . .
RUN cargo build --release --locked --bin rollbackd \
    && ./target/release/rollbackd --version

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

COPY --from=builder /src/target/release/rollbackd /usr/local/bin/rollbackd

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
