# Multi-stage build: compile in the Rust image, run in a slim Debian as a non-root user.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY tests ./tests
COPY examples ./examples
RUN cargo build --release --locked --bin switchyard

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin switchyard \
 && mkdir -p /data /app/geoip \
 && chown switchyard /data
COPY --from=build /src/target/release/switchyard /usr/local/bin/switchyard
COPY geoip/README.md geoip/LICENSE-MaxMind-test-data.md /app/geoip/
WORKDIR /app
# Embedded store by default; its folder also holds the generated admin token and cookie secret.
ENV SWITCHYARD__SERVER__BIND=0.0.0.0:8080 \
    SWITCHYARD__STORE__PATH=/data/switchyard.redb
USER switchyard
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["switchyard", "healthcheck", "--url", "http://127.0.0.1:8080/healthz"]
ENTRYPOINT ["switchyard"]
