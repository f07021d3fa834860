# Multi-stage build of the forewarn binary.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin forewarn

FROM debian:bookworm-slim
COPY --from=build /src/target/release/forewarn /usr/local/bin/forewarn
ENTRYPOINT ["/usr/local/bin/forewarn"]
