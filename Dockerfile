# syntax=docker/dockerfile:1
# The serving image: the model built by the pipeline (`make run` / `dvc repro`) behind the
# FastAPI + onnxruntime API of src/mlops_template/serve.py.
#
#   make run    # builds models/model.onnx, data/schema.json, eval/metrics.json
#   docker build --build-arg MODEL_VERSION=v1.2.0 --build-arg GIT_COMMIT=$(git rev-parse HEAD) -t model-api .
#   docker run --rm -p 8000:8000 model-api      # then: curl localhost:8000/health
#
# Dependencies come from uv.lock (exact versions and hashes): the serving set only,
# [project].dependencies; no training group (dvc, scikit-learn, skl2onnx, ...), no dev tools.
# Pin the base image by digest in your fork (e.g. python:3.11-slim-bookworm@sha256:...),
# and let Dependabot update it.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
# uv from PyPI, the same version the Makefile bootstraps.
ARG UV_VERSION=0.13.9
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
RUN pip install "uv==${UV_VERSION}"
WORKDIR /app
# Dependencies first (a layer that only changes with the lock), then the project itself.
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-default-groups --no-install-project
COPY README.md ./
COPY src ./src
RUN uv sync --frozen --no-dev --no-default-groups --no-editable

FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --shell /usr/sbin/nologin app
WORKDIR /app
COPY --from=build /app/.venv /app/.venv
# The model and everything the API reads, baked in (read-only for the app user).
COPY params.yaml ./
COPY data/schema.json data/
COPY eval/metrics.json eval/
# The model last: a new model (or a tampered one) re-does one COPY, not four.
COPY models/model.onnx models/train_info.json models/
# Version and commit from here on: they change with every build, the layers above only
# with the lock, the code or the model, so a rebuild takes those from the layer cache.
# A RUN must follow the ARGs: buildah's layer cache keys ENV and LABEL steps on their
# text alone, RUN steps on the args' values too; without one, an image would keep the
# commit of a previous build (buildah issue #5501).
ARG MODEL_VERSION=dev
ARG GIT_COMMIT=unknown
# Refuse to build an image whose model does not match its training record (sha256).
RUN python -m mlops_template serve --check
RUN mkdir -p /var/lib/predictions && chown 10001:10001 /var/lib/predictions
# The prediction log the drift monitor reads (mount a volume here to keep it);
# PREDICTION_LOG=off disables it.
ENV PREDICTION_LOG=/var/lib/predictions/predictions.sqlite
VOLUME ["/var/lib/predictions"]
LABEL org.opencontainers.image.title="mlops-template model API" \
      org.opencontainers.image.version="${MODEL_VERSION}" \
      org.opencontainers.image.revision="${GIT_COMMIT}"
ENV MODEL_VERSION=${MODEL_VERSION} \
    GIT_COMMIT=${GIT_COMMIT}
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2).status != 200)"]
# One worker per container (scale with replicas); uvicorn reads WEB_CONCURRENCY for more.
CMD ["uvicorn", "mlops_template.serve:app_from_env", "--factory", "--host", "0.0.0.0", "--port", "8000", "--no-access-log"]
