# syntax=docker/dockerfile:1
# compat-extender, the kube-scheduler extender. From the repository root:
#   docker build -t ghcr.io/nfd-compat-extender/compat-extender:0.1.0 .
# Every install step is docker/install.sh; tests/test_dockerfile.py lints this file and runs those
# steps outside Docker (wheels, a clean venv, the installed command serving the examples).

# One base for building and running, so the wheels fit the interpreter that runs them. The tag pins
# Python 3.12 on Debian 12; add @sha256:<digest> to pin the exact bytes.
FROM python:3.12-slim-bookworm AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Wheels for the project and all its dependencies (binary wheels from PyPI; the project built here).
FROM base AS builder
WORKDIR /src
COPY docker/install.sh /usr/local/bin/install.sh
COPY pyproject.toml README.md ./
COPY extender ./extender
RUN sh /usr/local/bin/install.sh wheels /src /wheels

# The runtime: a venv installed from those wheels only. The wheels and the script are bind-mounted
# for the one RUN, so neither ends up in a layer; there is no compiler and no build tool here.
FROM base
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="compat-extender" \
      org.opencontainers.image.description="kube-scheduler extender that places pods only on nodes that can run their images (NFD image compatibility)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/library/python:3.12-slim-bookworm"
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    --mount=type=bind,source=docker/install.sh,target=/install.sh \
    sh /install.sh venv /wheels /opt/compat-extender
# Nothing is written at run time: no bytecode (compiled at install), no caches. HOME is /tmp, an
# emptyDir in deploy/, for any library that wants one; the root filesystem can be read-only.
# COMPAT_EXTENDER_REVISION: the revision built, in the startup log and compat_extender_build_info.
ENV PATH=/opt/compat-extender/bin:$PATH \
    HOME=/tmp \
    COMPAT_EXTENDER_REVISION=${REVISION}
# numeric, so that runAsNonRoot can check it without an /etc/passwd entry
USER 65532:65532
EXPOSE 8888
ENTRYPOINT ["compat-extender"]
# deploy/base mounts its ConfigMap (extender.yaml) at /etc/compat-extender
CMD ["serve", "--config", "/etc/compat-extender/extender.yaml"]
