FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    CHIPWATCH_CONFIG=/data/config.yaml \
    CHIPWATCH_DATABASE=/data/chipwatch.db \
    CHIPWATCH_OPS_LISTEN=0.0.0.0:9108

WORKDIR /app
COPY requirements.lock .
RUN pip install --no-cache-dir --require-hashes -r requirements.lock

# /app is read-only to the bot. config.yaml here is only the one the image ships: the entry
# point copies it to the data volume on the first start (CHIPWATCH_CONFIG), where the bot may
# edit it (/watch) and where you put your own (README: Docker).
COPY bot.py config.yaml docker-entrypoint.sh ./
COPY alerts ./alerts
RUN chmod 0755 docker-entrypoint.sh \
    && useradd --create-home --uid 10001 chipwatch \
    && mkdir -p /data && chown chipwatch:chipwatch /data
USER chipwatch
VOLUME ["/data"]

# /healthz and /metrics: on every interface inside the container, so Prometheus can scrape
# it (publish it with -p 127.0.0.1:9108:9108); the check asks it on loopback. The check is
# python -m alerts.healthcheck (standard library only: the slim image has no curl).
EXPOSE 9108
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 CMD ["python", "-m", "alerts.healthcheck"]

# Secrets come from the environment at run time: -e TELEGRAM_BOT_TOKEN=... -e SLACK_WEBHOOK_URL=...
# (or -e SLACK_BOT_TOKEN=... for a Slack app). `docker run chipwatch status` (or check-config,
# backtest …) runs another command on the same config. An invalid config stops `run` with exit
# status 2 and a line naming file:line: key. SIGTERM: polls in flight are cancelled, a send in
# flight gets 5 s, well within docker stop's 10 s.
ENTRYPOINT ["/app/docker-entrypoint.sh"]
CMD ["run"]
