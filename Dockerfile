FROM python:3.11-slim
WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY manage.py ./
COPY chatproject chatproject
COPY chat chat
EXPOSE 8000
CMD ["sh", "-c", "python manage.py migrate --noinput && python manage.py create_table && exec python -m chatproject.serve -b 0.0.0.0 -p ${PORT:-8000} chatproject.asgi:application"]
