# syntax=docker/dockerfile:1
# Portcullis container image: a static-enough binary on distroless, non-root, nothing
# else in the image. Works with a read-only root filesystem (it writes nothing to disk;
# logs go to stdout).
#
#   docker build -t portcullis:0.1.0 .
#   docker run --rm -p 8080:8080 -p 9090:9090 \
#     -v "$PWD/portcullis.yaml:/etc/portcullis/portcullis.yaml:ro" --read-only portcullis:0.1.0
#
# crates/cli/tests/deploy_dockerfile.rs checks this file (stages, USER, no secrets, paths).

# --- build -------------------------------------------------------------------------
FROM rust:1.95-bookworm AS build
WORKDIR /src
# aws-lc-sys builds its C with cmake when no prebuilt bindings fit.
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake clang \
 && rm -rf /var/lib/apt/lists/*
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --locked --profile dist -p portcullis-cli \
 && install -m 0555 target/dist/portcullis /portcullis

# --- runtime -----------------------------------------------------------------------
# glibc and libgcc only (mimalloc and aws-lc link against them); no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /portcullis /usr/local/bin/portcullis
# distroless's `nonroot` user; Kubernetes' runAsNonRoot needs it numeric.
USER 65532:65532
# http (/verify), grpc (ext_authz), admin (/healthz, /readyz, /metrics)
EXPOSE 8080 9001 9090
# The config comes from a mounted ConfigMap; secrets from mounted Secrets or env.
ENV PORTCULLIS_CONFIG=/etc/portcullis/portcullis.yaml
# SIGTERM: stop accepting, drain in-flight requests, exit 0 (well within 30 s).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/portcullis"]
CMD ["serve"]
