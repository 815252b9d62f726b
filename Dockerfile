# p2p-exporter, the sidecar exporter: `docker build -t p2p-exporter:0.1.0 .` (docker-compose.yml does it).
#
# Multi-stage: the Rust toolchain stays in the build stage; the runtime image is Debian slim with the
# one binary, run as an unprivileged user. Needs BuildKit (the default builder since Docker 23).

# The workspace's declared rust-version (Cargo.toml): building the image with it proves the MSRV.
# tests/it/stack/ checks the two agree and that every locked dependency builds with it.
ARG RUST_VERSION=1.88.0

FROM rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
COPY . .
# Cache mounts keep the registry and target dir between builds, so a source edit recompiles only
# our crates. --locked: the image builds exactly the Cargo.lock that CI tested.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin p2p-exporter \
    && cp target/release/p2p-exporter /usr/local/bin/p2p-exporter

# Same Debian release as the builder (bookworm, glibc 2.36), pinned to a point release.
FROM debian:12.7-slim
COPY --from=build /usr/local/bin/p2p-exporter /usr/local/bin/p2p-exporter
# Numeric, so orchestrators can verify runAsNonRoot; no home, no shell login, nothing to own.
USER 10001:10001
# Containers are reached over their network, not loopback.
ENV P2P_EXPORTER_LISTEN=0.0.0.0:9730
EXPOSE 9730
# No curl or wget in slim images, and none added: bash (always present in Debian) opens a TCP
# connection itself and checks the status line of GET /healthz, on the port P2P_EXPORTER_LISTEN names.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["/bin/bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${P2P_EXPORTER_LISTEN##*:} && printf 'GET /healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && IFS= read -r status <&3 && [[ $status == HTTP/1.?' 200'* ]]"]
ENTRYPOINT ["/usr/local/bin/p2p-exporter"]
