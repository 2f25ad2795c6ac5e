# nats-callout container image. `docker compose up` builds it (see docker-compose.yml);
# tests check this file statically (no container engine runs in CI).
FROM rust:1.95-bookworm AS build
WORKDIR /src
# Everything the crate needs to build: its manifest, build script, sources, the chat page it
# embeds (web/src, web/dist), the targets the manifest declares (bench/, benches/) and the
# workspace's other member (the Rust client kit: cargo reads every member's manifest).
COPY Cargo.toml Cargo.lock build.rs ./
COPY build ./build
COPY src ./src
COPY web/src ./web/src
COPY web/dist ./web/dist
COPY bench ./bench
COPY benches ./benches
COPY clients/rust ./clients/rust
# The context has no .git: `--version` says commit unknown unless the build names it
# (docker build --build-arg NATS_CALLOUT_GIT_COMMIT=$(git rev-parse HEAD) .).
ARG NATS_CALLOUT_GIT_COMMIT=
# The dist profile: the lean artifact to ship (docs/src/release.md).
RUN cargo build --profile dist --locked --bin nats-callout

FROM debian:bookworm-slim
# A fixed, unprivileged user; the volumes for keys and the token store belong to it.
RUN useradd --system --uid 10001 --user-group --no-create-home callout \
 && mkdir -p /keys /data /etc/nats-callout \
 && chown 10001:10001 /keys /data
COPY --from=build /src/target/dist/nats-callout /usr/local/bin/nats-callout
COPY deploy/docker/callout.toml /etc/nats-callout/callout.toml
COPY permissions /etc/nats-callout/permissions
USER 10001:10001
WORKDIR /etc/nats-callout
ENV NATS_CALLOUT_CONFIG=/etc/nats-callout/callout.toml
VOLUME ["/keys", "/data"]
EXPOSE 8080 9090
HEALTHCHECK --interval=5s --timeout=3s --retries=12 CMD ["nats-callout", "healthcheck"]
ENTRYPOINT ["nats-callout"]
CMD ["serve"]
