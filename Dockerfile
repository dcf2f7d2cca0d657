# tempano's API and worker image (the Temporal server comes from its own image in docker-compose.yml).
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends \
        iproute2 iptables openssh-client openssh-server graphviz \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN pip install --no-cache-dir ".[postgres]"
ENV TEMPANO_DATA_DIR=/var/lib/tempano
EXPOSE 8321
CMD ["tempano", "api"]
