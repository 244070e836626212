"""Operating the service: health checks, Prometheus metrics, one log line per request."""
