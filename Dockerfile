# safepref application image: front-end files from npm (pinned by package-lock.json), then the
# Python package. Migrations run before the server starts (see docker-compose.yml).
FROM node:20-slim AS assets
WORKDIR /src
COPY package.json package-lock.json ./
RUN SCARF_ANALYTICS=false npm ci --no-audit --no-fund

FROM python:3.11-slim
WORKDIR /srv/safepref
COPY . .
COPY --from=assets /src/node_modules/htmx.org/dist/htmx.min.js static/vendor/htmx.min.js
COPY --from=assets /src/node_modules/swagger-ui-dist/swagger-ui-bundle.js \
     /src/node_modules/swagger-ui-dist/swagger-ui.css static/vendor/swagger-ui/
RUN pip install --no-cache-dir . && useradd --system safepref
USER safepref
ENV SAFEPREF_ENVIRONMENT=production
EXPOSE 8000
CMD ["sh", "-c", "safepref migrate && exec safepref serve --host 0.0.0.0 --port 8000 --workers ${SAFEPREF_WORKERS:-2}"]
