# The gridmap API for production: `docker compose up` (see docker-compose.yml).
FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 GRIDMAP_DATA_DIR=/var/lib/gridmap
WORKDIR /app
COPY pyproject.toml README.md ./
COPY gridmap ./gridmap
COPY api ./api
RUN pip install --no-cache-dir .
COPY web ./web
COPY data ./data
RUN useradd --system --home /var/lib/gridmap gridmap && mkdir -p /var/lib/gridmap \
    && chown gridmap /var/lib/gridmap
USER gridmap
EXPOSE 8000
# Migrate the configured database, then serve.
CMD ["sh", "-c", "gridmap db up && gridmap serve --host 0.0.0.0 --port 8000"]
