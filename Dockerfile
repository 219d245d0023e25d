# The drifthouse image: `docker run drifthouse:local run -c /etc/drifthouse/drifthouse.yaml`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# Dependencies first, so that code changes do not reinstall them.
COPY pyproject.toml README.md ./
RUN mkdir drifthouse && touch drifthouse/__init__.py \
    && pip install . \
    && pip uninstall -y drifthouse \
    && rm -rf drifthouse
COPY drifthouse ./drifthouse
RUN pip install --no-deps . && rm -rf /src/build

RUN useradd --system --uid 10001 --home-dir /var/lib/drifthouse --create-home drifthouse \
    && mkdir -p /etc/drifthouse \
    && chown drifthouse /var/lib/drifthouse
USER drifthouse
WORKDIR /var/lib/drifthouse

ENTRYPOINT ["drifthouse"]
CMD ["--help"]
