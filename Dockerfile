# The portal's one image: web (gunicorn), Celery worker and beat, the pipeline
# consumer and the one-shot migrate job all run from it (see docker-compose.yml).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# Java 17 for PySpark (its spark-submit runs a JVM), tini as PID 1 (reaps the
# Spark children, forwards signals), procps for Spark's launcher scripts.
# /usr/lib/jvm/java-17 is a link to the JDK whatever the CPU (amd64, arm64).
# Debian's packages are not pinned: the base tag fixes the release, and its
# security updates are wanted on each build.
# hadolint ignore=DL3008
RUN set -eux; \
    mkdir -p /usr/share/man/man1; \
    apt-get update; \
    apt-get install -y --no-install-recommends openjdk-17-jre-headless tini procps; \
    rm -rf /var/lib/apt/lists/*; \
    ln -s "$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")" /usr/lib/jvm/java-17; \
    /usr/lib/jvm/java-17/bin/java -version
ENV JAVA_HOME=/usr/lib/jvm/java-17

# The non-root user every process runs as; /lake is created here so that a named
# volume mounted on it starts owned by that user.
ARG APP_UID=1000
ARG APP_GID=1000
RUN set -eux; \
    groupadd --gid "${APP_GID}" app; \
    useradd --uid "${APP_UID}" --gid app --create-home --shell /bin/bash app; \
    install -d -o app -g app /app /lake

WORKDIR /app

# Dependencies first: this layer is rebuilt only when requirements.txt changes.
COPY requirements.txt ./
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install -r requirements.txt

# Then the project (what .dockerignore leaves out never reaches the image).
COPY --chown=app:app . .

USER ${APP_UID}:${APP_GID}

# Static files are collected at build time; the keys are build-only dummies (the running
# container takes its own from the environment: compose refuses to start without them).
RUN DEBUG=false SECRET_KEY=collectstatic-build-only-not-secret \
    LAKE_MASKING_KEY=collectstatic-build-only-not-a-masking-key \
    python manage.py collectstatic --noinput

ENV LAKE_ROOT=/lake \
    DEBUG=false \
    LOG_FORMAT=json \
    PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus \
    GUNICORN_CMD_ARGS="--logger-class datalake.platform.logging.GunicornLogger"

EXPOSE 8000

ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["gunicorn", "datalake.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "2", "--access-logfile", "-"]
