# The kpistream worker image: docker build -t kpistream . && docker run kpistream worker
FROM python:3.11.10-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY streams ./streams
COPY metrics ./metrics
RUN pip install . && rm -rf /src

RUN useradd --system --uid 10001 --home-dir /var/lib/kpistream --create-home kpistream
USER kpistream
WORKDIR /var/lib/kpistream
ENV KPISTREAM_DATA_DIR=/var/lib/kpistream \
    KPISTREAM_WEB_PORT=6066

EXPOSE 6066
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:6066/health', timeout=2)"]
ENTRYPOINT ["kpistream"]
CMD ["worker"]
