# Multi-stage build of the forewarn binary.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin forewarn

FROM debian:bookworm-slim
# librdkafka is linked statically; OpenSSL (TLS to Kafka and Alertmanager) is not.
RUN apt-get update && apt-get install -y --no-install-recommends libssl3 ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/forewarn /usr/local/bin/forewarn
EXPOSE 9898
ENTRYPOINT ["/usr/local/bin/forewarn"]
