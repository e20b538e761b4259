# streambudget image: a static Go binary on distroless, running as non-root.
#   docker build --build-arg VERSION=$(git describe --tags --always --dirty) -t streambudget .
# The Helm chart (helm/streambudget) runs it as `streambudget run ...`.

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
# Only the sources the binary needs (not .stack/, node_modules or the tests' tools).
COPY cmd/ cmd/
COPY pkg/ pkg/
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" \
      -o /out/streambudget ./cmd/streambudget

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/streambudget /streambudget
USER 65532:65532
EXPOSE 9090
ENTRYPOINT ["/streambudget"]
