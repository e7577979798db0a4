# The ledgerflow command in a container: `docker build -t ledgerflow .`, then e.g.
# `docker run --rm ledgerflow --version`. docker-compose.yml wires it to Kafka.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Only what the wheel is built from: the source tree never shadows the installed package.
WORKDIR /build
COPY pyproject.toml README.md ./
COPY core core
COPY ingest ingest
COPY schemas schemas
COPY projector projector
COPY api api
RUN pip install . && cd / && rm -rf /build

RUN useradd --create-home --uid 10001 ledgerflow && mkdir /data && chown ledgerflow:ledgerflow /data
USER ledgerflow
WORKDIR /data
ENV LEDGERFLOW_HOME=/data
VOLUME ["/data"]

ENTRYPOINT ["ledgerflow"]
CMD ["--help"]
