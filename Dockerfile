# streambudget image with Docker: a static Go binary on distroless, running as non-root.
#   docker build --build-arg VERSION=$(git describe --tags --always --dirty) -t streambudget .
# `make image` builds the same image without a Docker daemon, for linux/amd64 and
# linux/arm64, reproducibly (integration/tools/image); that is the published one.
# The base images are pinned by digest: a tag moves, a digest does not. To move
# them, look the new digest up (crane digest golang:1.26) and change it here.

FROM golang:1.26@sha256:595c7847cff97c9a9e76f015083c481d26078f961c9c8dca3923132f51fe12f1 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
# Only the sources the binary needs (not .stack/, node_modules or the tests' tools).
COPY cmd/ cmd/
COPY pkg/ pkg/
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags "-s -w -buildid= -X main.version=${VERSION}" \
      -o /out/streambudget ./cmd/streambudget

FROM gcr.io/distroless/static-debian12:nonroot@sha256:d093aa3e30dbadd3efe1310db061a14da60299baff8450a17fe0ccc514a16639
COPY --from=build /out/streambudget /streambudget
USER 65532:65532
EXPOSE 9090
ENTRYPOINT ["/streambudget"]
