# nats-callout container image (for users who run containers; tests never need it).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN cargo build --release --locked

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 callout
COPY --from=build /src/target/release/nats-callout /usr/local/bin/nats-callout
COPY callout.toml /etc/nats-callout/callout.toml
COPY permissions /etc/nats-callout/permissions
USER callout
WORKDIR /etc/nats-callout
ENV NATS_CALLOUT_CONFIG=/etc/nats-callout/callout.toml
ENTRYPOINT ["nats-callout"]
CMD ["serve"]
