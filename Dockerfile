# syntax=docker/dockerfile:1.7
# One image, four roles: `docker run IMAGE webhook|consumer|scheduler|dashboard` (ENTRYPOINT is `itff`).
# Dependency wheels are built once in the builder stage from requirements-runtime.lock (the runtime
# part of requirements.lock, kept in sync by tests/deploy/test_docker.py); the runtime stage
# installs them offline, runs as an unprivileged user and holds no secrets: they come from the
# platform's environment at run time.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY requirements-runtime.lock ./
RUN pip wheel --no-deps --wheel-dir /wheels -r requirements-runtime.lock
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY producers ./producers
COPY consumers ./consumers
COPY storage ./storage
COPY panel_app ./panel_app
RUN pip wheel --no-deps --wheel-dir /wheels .

FROM ${PYTHON_IMAGE} AS runtime
ARG VERSION=0.0.0+local
LABEL org.opencontainers.image.title="itff" \
      org.opencontainers.image.description="ITFF: TradingView webhooks -> Kafka -> scikit-learn signals" \
      org.opencontainers.image.version="${VERSION}"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    ITFF_ENV=production \
    ITFF_HOME=/var/lib/itff \
    ITFF_DATABASE_URL=sqlite+aiosqlite:////var/lib/itff/data/itff.db \
    ITFF_ARTIFACT_DIR=/var/lib/itff/artifacts \
    ITFF_REPORT_DIR=/var/lib/itff/reports \
    ITFF_LOG_DIR=/var/lib/itff/logs \
    ITFF_DATA_SOURCE=csv:/opt/itff/data/sample \
    ITFF_HEALTHCHECK_URL=http://127.0.0.1:8080/health
RUN groupadd --system --gid 10001 itff \
 && useradd --system --uid 10001 --gid itff --home-dir /var/lib/itff --no-create-home \
        --shell /usr/sbin/nologin itff \
 && mkdir -p /var/lib/itff/data /var/lib/itff/artifacts /var/lib/itff/reports /var/lib/itff/logs \
 && chown -R itff:itff /var/lib/itff
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --no-deps /wheels/*.whl \
 && pip check
COPY --chown=root:root data/sample /opt/itff/data/sample
WORKDIR /var/lib/itff
USER 10001:10001
# 8080 receiver, 9100 receiver metrics, 9101 consumer metrics, 9102 scheduler metrics, 5006 dashboard
EXPOSE 8080 9100 9101 9102 5006
VOLUME ["/var/lib/itff/data", "/var/lib/itff/artifacts", "/var/lib/itff/reports", "/var/lib/itff/logs"]
# Each role points ITFF_HEALTHCHECK_URL at its own endpoint (compose and render.yaml do).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['ITFF_HEALTHCHECK_URL'], timeout=4)"]
ENTRYPOINT ["itff"]
CMD ["webhook"]
