# Herald: one image for web (gunicorn), worker and beat (celery) and the migrate job.
FROM python:3.12-slim-bookworm

# config/settings.py derives BASE_DIR (templates/, static/, staticfiles/, var/) from its
# own location, so the code must be imported from /app, not from the copy that
# `pip install .` puts in site-packages: PYTHONPATH puts /app first for every process
# (manage.py and gunicorn would find it via the working directory anyway; celery only
# looks there while importing -A config, then imports the apps from site-packages).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app

RUN groupadd --system herald \
    && useradd --system --gid herald --home-dir /app --no-create-home --shell /usr/sbin/nologin herald

WORKDIR /app

# Dependencies and the Python packages (this layer is rebuilt only when they change).
COPY pyproject.toml ./
COPY config ./config
COPY accounts ./accounts
COPY people ./people
COPY audiences ./audiences
COPY segments ./segments
COPY channels ./channels
COPY campaigns ./campaigns
RUN pip install --no-cache-dir . \
    && rm -rf build *.egg-info

# Plain folders read from BASE_DIR, and the entry point.
COPY templates ./templates
COPY static ./static
COPY manage.py ./

# Static files are collected at build time; the values below exist only for this command
# (settings refuse to load with DEBUG off unless SECRET_KEY, PROVIDER_SECRET_KEYS and
# ALLOWED_HOSTS are set) and do not stay in the image. Nothing here connects to the database.
RUN DEBUG=0 \
    SECRET_KEY=build-only-collectstatic-key-not-used-at-runtime-0123456789abcdefghij \
    PROVIDER_SECRET_KEYS=YnVpbGQtb25seS1jb2xsZWN0c3RhdGljLWtleS0zMmI= \
    ALLOWED_HOSTS=localhost \
    DATABASE_URL=postgres://x@localhost/x \
    REDIS_URL=redis://localhost:6379/0 \
    python manage.py collectstatic --noinput \
    && mkdir -p /app/var \
    && chown -R herald:herald /app/var

# The code and the collected static files stay root-owned and read-only for the app user;
# only /app/var (settings' VAR_DIR: media) is writable.
USER herald

EXPOSE 8000

CMD ["gunicorn", "config.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3", "--access-logfile", "-"]
