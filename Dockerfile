FROM python:3.11-slim
WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
# The server runs as an unprivileged user that owns only var/ (SQLite, the
# dev issuer's key) and staticfiles/ (collectstatic); the code stays root's.
# Named volumes mounted on those two start out owned by it as well.
RUN groupadd --system --gid 10001 chat \
    && useradd --system --uid 10001 --gid chat --no-create-home --home-dir /nonexistent chat \
    && mkdir var staticfiles && chown chat:chat var staticfiles
COPY manage.py ./
COPY chatproject chatproject
COPY chat chat
USER 10001:10001
EXPOSE 8000
# One server process. Migrations, the table and static files are steps of
# their own (docker-compose.yml runs them once, before any server starts).
CMD ["sh", "-c", "exec python -m chatproject.serve -b 0.0.0.0 -p ${PORT:-8000} chatproject.asgi:application"]
