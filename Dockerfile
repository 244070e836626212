# safepref application image: front-end files from npm (pinned by package-lock.json), then the
# Python package. Migrations run before the server starts (see docker-compose.yml).
FROM node:20-slim AS assets
WORKDIR /src
COPY package.json package-lock.json ./
RUN SCARF_ANALYTICS=false npm ci --no-audit --no-fund

FROM python:3.11-slim
WORKDIR /srv/safepref
# Dependencies first, from the lock file (pinned, hashes checked): a layer that only changes
# with the lock.
COPY requirements/run.txt requirements/run.txt
RUN pip install --no-cache-dir --require-hashes -r requirements/run.txt
COPY . .
COPY --from=assets /src/node_modules/htmx.org/dist/htmx.min.js static/vendor/htmx.min.js
COPY --from=assets /src/node_modules/swagger-ui-dist/swagger-ui-bundle.js \
     /src/node_modules/swagger-ui-dist/swagger-ui.css static/vendor/swagger-ui/
RUN pip install --no-cache-dir --no-deps --no-build-isolation . && useradd --system safepref
USER safepref
ENV SAFEPREF_ENVIRONMENT=production
EXPOSE 8000
# Liveness: the process answers (docker-compose.yml checks readiness, /readyz, on top).
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8000/healthz', timeout=3)"]
CMD ["sh", "-c", "safepref migrate && exec safepref serve --host 0.0.0.0 --port 8000 --workers ${SAFEPREF_WORKERS:-2}"]
