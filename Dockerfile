FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    CHIPWATCH_DATABASE=/data/chipwatch.db

WORKDIR /app
COPY requirements.lock .
RUN pip install --no-cache-dir --require-hashes -r requirements.lock

COPY bot.py config.yaml ./
COPY alerts ./alerts

RUN useradd --create-home --uid 10001 chipwatch \
    && mkdir -p /data && chown chipwatch:chipwatch /data
USER chipwatch
VOLUME ["/data"]

# Secrets come from the environment at run time: -e TELEGRAM_BOT_TOKEN=... -e SLACK_WEBHOOK_URL=...
CMD ["python", "bot.py", "run"]
