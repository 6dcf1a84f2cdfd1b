# The hub image for infra/compose.yaml (an organiser's own Docker host, registry reachable):
# hackgap with its pinned dependencies, configurable-http-proxy and iptables.
# Build from the repository root: docker build -f infra/hub.Dockerfile -t hackgap/hub .
FROM python:3.11-slim-bookworm
RUN apt-get update \
    && apt-get install -y --no-install-recommends nodejs npm iptables \
    && npm install -g configurable-http-proxy@5.3.0 \
    && rm -rf /var/lib/apt/lists/* /root/.npm
WORKDIR /opt/hackgap
COPY requirements.lock ./
RUN pip install --no-cache-dir -r requirements.lock
COPY . .
RUN pip install --no-cache-dir --no-deps .
