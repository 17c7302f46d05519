# mapping-audit gear: the repository installed with its pinned constraints, run by fwgear.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY shared ./shared
COPY agent ./agent
COPY gears ./gears
COPY fwlite ./fwlite
COPY manifests ./manifests
RUN pip install --no-cache-dir -c constraints.txt .

WORKDIR /flywheel/v0
COPY manifests/mapping-audit.json ./manifest.json

CMD ["fwgear", "run", "mapping-audit", "--root", "/flywheel/v0"]
