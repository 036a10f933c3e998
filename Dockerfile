# wharf in a container, driving the host's Docker Engine through its socket.
#
#   docker build -t wharf .
#   docker run -d --name wharf --init --restart unless-stopped \
#       -v /var/run/docker.sock:/var/run/docker.sock \
#       -v wharf-data:/var/lib/wharf -v "$PWD/specs:/specs:ro" \
#       -p 127.0.0.1:7999:7999 wharf
#   docker exec wharf cat /var/lib/wharf/admin.token
#
# - The socket is the whole engine: whoever reaches the API with the admin token can run
#   anything on the host. Publish the port on loopback (as above) or serve TLS (--tls-cert,
#   --tls-key) with tokens of narrower roles.
# - Stats: wharf reads container counters from the host's files when it can see them
#   (add `--pid host -v /sys/fs/cgroup:/sys/fs/cgroup:ro`); otherwise it asks the engine for
#   each container, which is slower with hundreds of apps.
# - `--git URL` instead of the /specs volume: the image has git and CA certificates.
# - Another base: --build-arg RUST_IMAGE=… / RUNTIME_IMAGE=… (e.g. a local mirror).

ARG RUST_IMAGE=rust:1-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${RUST_IMAGE} AS build
WORKDIR /src
# The dependencies first, in a layer of their own that source changes do not invalidate.
COPY Cargo.toml Cargo.lock ./
# The workspace's other member (the test task): cargo reads every member's manifest.
COPY xtask xtask
RUN mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src
COPY migrations migrations
COPY src src
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin wharf

FROM ${RUNTIME_IMAGE}
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates git openssh-client \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/wharf /usr/local/bin/wharf
VOLUME /var/lib/wharf
EXPOSE 7999
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/wharf", "--data", "/var/lib/wharf"]
# 0.0.0.0 inside the container's own network namespace; the host decides who reaches it (-p).
CMD ["serve", "--listen", "0.0.0.0:7999", "--specs", "/specs"]
