FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /srv/hookline

COPY pyproject.toml README.md ./
COPY app ./app
RUN pip install . && useradd --system --uid 10001 --no-create-home hookline \
    && mkdir -p /srv/hookline/data && chown hookline:hookline /srv/hookline/data
COPY config.yaml ./config.yaml

# The SQLite adapter's database (config.yaml: path ./data/hookline.db); mount a volume here.
VOLUME ["/srv/hookline/data"]

USER hookline
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz').status != 200)"
STOPSIGNAL SIGTERM
CMD ["hookline", "serve", "--host", "0.0.0.0", "--port", "8080"]
