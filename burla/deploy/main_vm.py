"""What main_service's VM runs: its startup script, its systemd unit, and the lines that
install burla's wheel from the cluster's bucket (on that VM and on every node).

At every boot the startup script installs the wheel the VM's metadata names (only if the
installed build differs), fetches the admin token from the bucket once, writes
main_service's settings and unit, starts the unit (systemd brings it back after a crash
or a reboot), and publishes the fingerprint of main_service's certificate as the guest
attribute `burla/tls-sha256`, where `burla deploy` reads it. Files are fetched with the
VM's own service account token, from Cloud Storage's JSON API (or the emulator
STORAGE_EMULATOR_HOST names).
"""

from __future__ import annotations

import shlex

from burla.deploy.options import DeployOptions
from burla.deploy.wheel import CLUSTER_EXTRAS

UNIT = "burla-main"
ETC = "/etc/burla"
VENV = "/opt/burla"
TOKEN_OBJECT = "deploy/admin-token"
"""Under the cluster's prefix in its bucket: main_service's admin token."""
SOFTWARE_PREFIX = "deploy/software"
FINGERPRINT_ATTRIBUTE = "burla/tls-sha256"
CONFIG_KEY = "burla-config"
WHEEL_KEY = "burla-wheel"

_FETCH = """\
import json, os, sys, urllib.parse, urllib.request
bucket, name, target = sys.argv[1:4]
metadata = os.environ.get("GCE_METADATA_HOST", "metadata.google.internal")
asked = urllib.request.Request(
    f"http://{metadata}/computeMetadata/v1/instance/service-accounts/default/token",
    headers={"Metadata-Flavor": "Google"},
)
token = json.load(urllib.request.urlopen(asked, timeout=30))["access_token"]
storage = os.environ.get("STORAGE_EMULATOR_HOST", "https://storage.googleapis.com")
url = f"{storage}/storage/v1/b/{bucket}/o/{urllib.parse.quote(name, safe='')}?alt=media"
got = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
with urllib.request.urlopen(got, timeout=120) as answer, open(target, "wb") as file:
    file.write(answer.read())
"""
"""Downloads one object with the VM's credentials: python3 BUCKET NAME TARGET."""


def object_name(options: DeployOptions, name: str) -> str:
    return f"{options.cluster}/{name}"


def wheel_object(options: DeployOptions, filename: str) -> str:
    return object_name(options, f"{SOFTWARE_PREFIX}/{filename}")


def install_lines(options: DeployOptions, wheel_filename: str, build: str) -> str:
    """Installs the wheel and its pinned constraints into /opt/burla, unless that build is
    there already; the Docker engine too when workers run in containers."""
    bucket = shlex.quote(options.bucket)
    wheel = shlex.quote(wheel_object(options, wheel_filename))
    constraints = shlex.quote(wheel_object(options, "constraints.txt"))
    extras = ",".join(CLUSTER_EXTRAS)
    docker = (
        "command -v dockerd >/dev/null || { apt-get update -qq && "
        "apt-get install -y -qq docker.io; }\n"
        if options.containers == "docker"
        else ""
    )
    return f"""\
{docker}if [ "$(cat {VENV}/burla-build 2>/dev/null)" != {build} ]; then
  if [ ! -x {VENV}/bin/pip ]; then
    rm -rf {VENV}
    python3 -m venv {VENV} 2>/dev/null || {{
      rm -rf {VENV} && apt-get update -qq && apt-get install -y -qq python3-venv &&
      python3 -m venv {VENV}; }}
  fi
  mkdir -p {VENV}/wheels
  python3 - {bucket} {wheel} {VENV}/wheels/{wheel_filename} <<'FETCH'
{_FETCH}FETCH
  python3 - {bucket} {constraints} {VENV}/wheels/constraints.txt <<'FETCH'
{_FETCH}FETCH
  {VENV}/bin/pip install --quiet --constraint {VENV}/wheels/constraints.txt \\
    "{VENV}/wheels/{wheel_filename}[{extras}]"
  echo {build} > {VENV}/burla-build
fi
"""


def unit_text(options: DeployOptions) -> str:
    """main_service's systemd unit; ${INTERNAL} and ${EXTERNAL} are filled in by the
    startup script (the VM's addresses, known only there)."""
    environment = {"BURLA_CONFIG": f"{ETC}/config.toml", **options.vm_env}
    lines = "\n".join(
        f"Environment={shlex.quote(f'{name}={value}')}" for name, value in environment.items()
    )
    flags = [
        f"{VENV}/bin/python",
        "-m",
        "burla.services.main_service",
        "cloud",
        "--host=0.0.0.0",
        f"--port={options.port}",
        f"--url=https://${{INTERNAL}}:{options.port}",
        f"--token-file={ETC}/token",
        f"--tls-dir={ETC}/tls",
        "--tls-name=${INTERNAL}",
        "--tls-name=${EXTERNAL}",
        f"--service-account={options.account_email}",
        f"--install-file={ETC}/node-install.sh",
        *([f"--max-nodes={options.max_nodes}"] if options.max_nodes else []),
    ]
    return f"""\
[Unit]
Description=burla main_service of cluster {options.cluster}
After=network-online.target
Wants=network-online.target

[Service]
{lines}
ExecStart={" ".join(flags)}
Restart=always
RestartSec=2

[Install]
WantedBy=multi-user.target
"""


def config_text(options: DeployOptions) -> str:
    """main_service's settings ([gcp] of burla.core.settings)."""
    values = {
        "project": options.project,
        "zone": options.zone_name,
        "cluster": options.cluster,
        "machine_type": options.machine_type,
        "spot": options.spot,
        "standby_nodes": options.standby,
        "bucket": options.bucket,
        "containers": options.containers,
        "registry": options.registry,
        "pythons": options.pythons,
        "source_image": options.source_image,
    }
    from burla.client.config_file import toml_text

    return toml_text({"gcp": values})


def startup_script(options: DeployOptions, wheel_filename: str, build: str) -> str:
    """The bash script main_service's VM runs at every boot (see module doc)."""
    exports = "".join(
        f"export {name}={shlex.quote(value)}\n" for name, value in options.vm_env.items()
    )
    bucket = shlex.quote(options.bucket)
    token = shlex.quote(object_name(options, TOKEN_OBJECT))
    unit_path = f"/etc/systemd/system/{UNIT}.service"
    return f"""\
#!/bin/bash
# burla main_service of cluster {options.cluster}, made by burla deploy
set -euo pipefail
{exports}METADATA="http://${{GCE_METADATA_HOST:-metadata.google.internal}}/computeMetadata/v1"
meta() {{ curl --silent --show-error --fail --header 'Metadata-Flavor: Google' "$METADATA/$1"; }}
{install_lines(options, wheel_filename, build)}mkdir -p {ETC}
if [ ! -s {ETC}/token ]; then
  (umask 077 && python3 - {bucket} {token} {ETC}/token <<'FETCH'
{_FETCH}FETCH
  )
fi
meta instance/attributes/{CONFIG_KEY} > {ETC}/config.toml
meta instance/attributes/burla-node-install > {ETC}/node-install.sh
INTERNAL="$(meta instance/network-interfaces/0/ip)"
EXTERNAL="$(meta instance/network-interfaces/0/access-configs/0/external-ip || true)"
EXTERNAL="${{EXTERNAL:-$INTERNAL}}"
meta instance/attributes/burla-unit | sed -e "s/\\${{INTERNAL}}/$INTERNAL/g" \\
  -e "s/\\${{EXTERNAL}}/$EXTERNAL/g" > {unit_path}.new
if cmp -s {unit_path}.new {unit_path} && [ "$(cat {VENV}/burla-started 2>/dev/null)" = {build} ]
then
  rm {unit_path}.new
  systemctl start {UNIT}
else
  mv {unit_path}.new {unit_path}
  systemctl daemon-reload
  systemctl enable {UNIT}
  systemctl restart {UNIT}
  echo {build} > {VENV}/burla-started
fi
until [ -s {ETC}/tls/cert.pem ]; do sleep 0.2; done
fingerprint="$({VENV}/bin/python -c 'import sys
from pathlib import Path
from burla.services.tls import certificate_fingerprint
print(certificate_fingerprint(Path(sys.argv[1])))' {ETC}/tls/cert.pem)"
curl --silent --show-error --fail --request PUT --header 'Metadata-Flavor: Google' \\
  --data "$fingerprint" "$METADATA/instance/guest-attributes/{FINGERPRINT_ATTRIBUTE}"
"""
