FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    CHIPWATCH_DATABASE=/data/chipwatch.db \
    CHIPWATCH_OPS_LISTEN=0.0.0.0:9108

WORKDIR /app
COPY requirements.lock .
RUN pip install --no-cache-dir --require-hashes -r requirements.lock

COPY bot.py config.yaml ./
COPY alerts ./alerts

RUN useradd --create-home --uid 10001 chipwatch \
    && mkdir -p /data && chown chipwatch:chipwatch /data
USER chipwatch
VOLUME ["/data"]

# /healthz and /metrics: on every interface inside the container, so Prometheus can scrape
# it (publish it with -p 127.0.0.1:9108:9108); the check asks it on loopback. The check is
# python -m alerts.healthcheck (standard library only: the slim image has no curl).
EXPOSE 9108
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 CMD ["python", "-m", "alerts.healthcheck"]

# Secrets come from the environment at run time: -e TELEGRAM_BOT_TOKEN=... -e SLACK_WEBHOOK_URL=...
# (or -e SLACK_BOT_TOKEN=... for a Slack app)
CMD ["python", "bot.py", "run"]
