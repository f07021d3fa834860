# Multi-stage build of the forewarn binary. Base images are pinned to a release
# (bump them deliberately; tests/deploy.rs refuses floating tags).
FROM rust:1.95.0-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin forewarn

FROM debian:12.12-slim
# librdkafka is linked statically; OpenSSL (TLS to Kafka and Alertmanager) is not.
RUN apt-get update && apt-get install -y --no-install-recommends libssl3 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin forewarn
COPY --from=build /src/target/release/forewarn /usr/local/bin/forewarn
# Never root; a numeric id so Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
# In a container the endpoint must be reachable from outside it.
ENV FOREWARN_LISTEN=0.0.0.0:9898
EXPOSE 9898
# Liveness over the HTTP endpoint with what the image has (bash), no curl.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9898 && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["/usr/local/bin/forewarn"]
