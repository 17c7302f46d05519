# The gears, one image each from this one file: a base stage with the gears' dependencies
# (pyproject extra "gears": no agent, no fwlite/FastAPI/uvicorn), then one stage per gear
# holding its manifest and running its manifest's command. Build one gear with --target:
#   docker build -f Dockerfiles/gears.Dockerfile --target dicom-send \
#       -t fw-dicom-connector/dicom-send:0.1.0 .
FROM python:3.11-slim AS base

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY shared ./shared
COPY gears ./gears
RUN pip install --no-cache-dir -c constraints.txt '.[gears]'

WORKDIR /flywheel/v0

FROM base AS dicom-send
COPY manifests/dicom-send.json ./manifest.json
CMD ["fwgear", "run", "dicom-send", "--root", "/flywheel/v0"]

FROM base AS unsorted-mover
COPY manifests/unsorted-mover.json ./manifest.json
CMD ["fwgear", "run", "unsorted-mover", "--root", "/flywheel/v0"]

FROM base AS mapping-audit
COPY manifests/mapping-audit.json ./manifest.json
CMD ["fwgear", "run", "mapping-audit", "--root", "/flywheel/v0"]
