# syntax=docker/dockerfile:1.7
# Two images from one build (docs/packaging.md, docs/adr/0007-images-and-packaging.md):
#
#   docker build -t shop .                              # the `shop` binary: every service (default target)
#   docker build -t shop-operator --target operator .   # the `shop-operator` binary
#
# Build arguments: VERSION, REVISION and CREATED become OCI labels; RUST_VERSION picks the builder;
# CARGO_PROFILE=dev gives a faster, unoptimised build (the Tiltfile's dev loop), release otherwise.
# Runtime: distroless cc-debian12 (glibc, libgcc_s, libssl3, CA certificates, tzdata; no shell), user
# nonroot = uid/gid 65532, the uid the operator's pod security context runs every pod as.

ARG RUST_VERSION=1.95
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

# ---------------------------------------------------------------------------------------------
# Builder: the whole workspace; cargo's registry, git checkouts and target dir are BuildKit cache
# mounts, so a rebuild after a code change recompiles only the changed crates.
FROM rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /src
# librdkafka (rdkafka's bundled build) links zlib: link it statically so the runtime needs no libz.
ENV CARGO_TERM_COLOR=never \
    LIBZ_SYS_STATIC=1
# librdkafka's TLS and SASL (rdkafka's `ssl` feature) link OpenSSL dynamically: the rust:bookworm
# image (buildpack-deps) ships libssl-dev and pkg-config, and the distroless cc runtime libssl3.
# Fail here, clearly, if a builder image without them is ever chosen.
RUN pkg-config --exists openssl \
    || { echo "builder image lacks OpenSSL headers or pkg-config (libssl-dev, pkg-config)" >&2; exit 1; }
ARG CARGO_PROFILE=release
ENV CARGO_PROFILE=${CARGO_PROFILE}
COPY . .

FROM builder AS build-shop
RUN --mount=type=cache,id=shop-cargo-registry,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,id=shop-cargo-git,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,id=shop-target,target=/src/target,sharing=locked \
    cargo build --profile "$CARGO_PROFILE" --locked -p shop --bin shop \
    && dir="$CARGO_PROFILE" && if [ "$dir" = dev ]; then dir=debug; fi \
    && install -D -m 0755 "target/$dir/shop" /out/shop \
    && install -d -m 0755 /out/data

FROM builder AS build-operator
RUN --mount=type=cache,id=shop-cargo-registry,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,id=shop-cargo-git,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,id=shop-target,target=/src/target,sharing=locked \
    cargo build --profile "$CARGO_PROFILE" --locked -p shop-operator --bin shop-operator \
    && dir="$CARGO_PROFILE" && if [ "$dir" = dev ]; then dir=debug; fi \
    && install -D -m 0755 "target/$dir/shop-operator" /out/shop-operator

# ---------------------------------------------------------------------------------------------
# shop-operator: `docker build --target operator .`
FROM ${RUNTIME_IMAGE} AS operator
ARG VERSION=0.0.0-dev
ARG REVISION=unknown
ARG CREATED=1970-01-01T00:00:00Z
LABEL org.opencontainers.image.title="shop-operator" \
      org.opencontainers.image.description="Kubernetes operator for ShopPlatform" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://example.invalid/shop-platform"
COPY --from=build-operator /out/shop-operator /usr/local/bin/shop-operator
ENV SHOP_LOG_FORMAT=json \
    SHOP_OPERATOR_METRICS_ADDR=0.0.0.0:8080
USER 65532:65532
EXPOSE 8080
# No HEALTHCHECK: distroless has no shell, curl or wget, and the binary has no probe command.
# Kubernetes probes /healthz on port 8080 (charts/shop-operator, manifests/operator).
ENTRYPOINT ["/usr/local/bin/shop-operator"]
CMD ["run"]

# ---------------------------------------------------------------------------------------------
# shop (the default target): ENTRYPOINT is the binary, CMD its default arguments. Kubernetes
# replaces CMD only: the operator's pods run `args: [serve, <service>]` and `[migrate, <service>]`.
# Without arguments the container runs the whole shop (`serve all`): a production command that
# seeds nothing, creates no account and refuses to start until a payment provider is chosen.
# The local demo (sample catalog, demo accounts, simulated payments) is asked for by name:
#   docker run --rm -p 8080:8080 shop up --addr 0.0.0.0:8080      → http://localhost:8080/docs
#   docker run --rm -p 8080:8080 -e SHOP_PAYMENT__PROVIDER=stripe … shop   (production, one process)
FROM ${RUNTIME_IMAGE} AS shop
ARG VERSION=0.0.0-dev
ARG REVISION=unknown
ARG CREATED=1970-01-01T00:00:00Z
LABEL org.opencontainers.image.title="shop" \
      org.opencontainers.image.description="ShopPlatform: every service of the shop in one binary" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://example.invalid/shop-platform"
COPY --from=build-shop /out/shop /usr/local/bin/shop
COPY --from=build-shop --chown=65532:65532 /out/data /data
ENV SHOP_HTTP_ADDR=0.0.0.0:8080 \
    SHOP_LOG_FORMAT=json \
    SHOP_DATA_DIR=/data
USER 65532:65532
WORKDIR /data
EXPOSE 8080
# No HEALTHCHECK: see the operator stage. Kubernetes probes /healthz and /readyz.
ENTRYPOINT ["/usr/local/bin/shop"]
CMD ["serve", "all"]
