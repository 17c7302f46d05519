# fwagent, the DICOM edge agent: push receiver (and pull poller) uploading to Flywheel.
# Config by file (mount it and set FWAGENT_CONFIG=/etc/fwagent/agent.yaml) or purely by
# environment (FWAGENT_<SECTION>_<KEY>, e.g. FWAGENT_FLYWHEEL_API_KEY). The spool is a volume.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    FWAGENT_SPOOL_DIR=/var/lib/fwagent \
    FWAGENT_PUSH_HOST=0.0.0.0 \
    FWAGENT_METRICS_HOST=0.0.0.0

WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY shared ./shared
COPY agent ./agent
# the agent's extra only: no gear (fw-gear, codecs) or fwlite (FastAPI) packages; pandas
# comes with flywheel-migration (de-id: mount a profile, set FWAGENT_DEID_PROFILE)
RUN pip install --no-cache-dir -c constraints.txt '.[agent]' \
    && groupadd --system --gid 10001 fwagent \
    && useradd --system --uid 10001 --gid fwagent --home-dir /var/lib/fwagent --no-create-home fwagent \
    && mkdir -p /var/lib/fwagent /etc/fwagent \
    && chown fwagent:fwagent /var/lib/fwagent

USER 10001:10001
WORKDIR /var/lib/fwagent
VOLUME ["/var/lib/fwagent"]
EXPOSE 11112 11113 11114 9108

ENTRYPOINT ["fwagent"]
CMD ["run"]
