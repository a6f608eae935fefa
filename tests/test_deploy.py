"""The Kubernetes deployment files (`deploy/`) agree with each other and with the code.

No cluster is reachable from CI, so what can be checked is checked here: every file parses, has
the fields its consumer requires, names the same image, namespace and service account, sets only
environment variables the code reads (with values the code accepts), points Dagster at the
scheduler service the dask operator creates, gives the workers the environment the local cluster
gets (`resources.runners.worker_environ`), and holds no credential.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import dask.config
import yaml

from resources.pubsub_settings import PublishSettings, env_name, parse_setting
from resources.runners import worker_environ

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
HELM = yaml.safe_load((DEPLOY / "helm" / "dagster-values.yaml").read_text())
DASK = yaml.safe_load((DEPLOY / "dask" / "cluster.yaml").read_text())
ACCOUNT = yaml.safe_load((DEPLOY / "k8s" / "serviceaccount.yaml").read_text())
DOCKERFILE = (DEPLOY / "Dockerfile").read_text()
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
LOCK = ROOT / "requirements.lock"


def _user_code() -> dict:
    (deployment,) = HELM["dagster-user-deployments"]["deployments"]
    return deployment


def _env(items: list[dict]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in items}


def _launcher_env() -> dict[str, str]:
    pairs = HELM["runLauncher"]["config"]["k8sRunLauncher"]["envVars"]
    return dict(p.split("=", 1) for p in pairs)


def _variables_the_code_reads() -> set[str]:
    names: set[str] = set()
    for path in [*ROOT.glob("pipelines/*.py"), *ROOT.glob("resources/*.py")]:
        names |= set(re.findall(r"\b(CIRCUS_[A-Z_]+)\b", path.read_text()))
    names |= {env_name(f) for f in PublishSettings.__dataclass_fields__}
    return names


def test_every_file_parses_with_the_fields_its_consumer_needs() -> None:
    assert DASK["apiVersion"] == "kubernetes.dask.org/v1" and DASK["kind"] == "DaskCluster"
    for part in ("worker", "scheduler"):
        (container,) = DASK["spec"][part]["spec"]["containers"]
        assert container["image"] and container["args"]
    assert DASK["spec"]["worker"]["replicas"] >= 1
    ports = {p["name"]: p["port"] for p in DASK["spec"]["scheduler"]["service"]["ports"]}
    assert ports["tcp-comm"] == 8786
    assert ACCOUNT["kind"] == "ServiceAccount"
    assert HELM["runLauncher"]["type"] == "K8sRunLauncher"
    assert HELM["dagsterDaemon"]["runMonitoring"]["enabled"] is True
    deployment = _user_code()
    assert {"name", "image", "dagsterApiGrpcArgs", "port"} <= set(deployment)


def test_one_image_one_namespace_one_service_account() -> None:
    image = _user_code()["image"]
    reference = f"{image['repository']}:{image['tag']}"
    for part in ("worker", "scheduler"):
        (container,) = DASK["spec"][part]["spec"]["containers"]
        assert container["image"] == reference, part
        assert DASK["spec"][part]["spec"]["serviceAccountName"] == ACCOUNT["metadata"]["name"]
    assert DASK["metadata"]["namespace"] == ACCOUNT["metadata"]["namespace"]
    assert HELM["serviceAccount"] == {"create": False, "name": ACCOUNT["metadata"]["name"]}
    pod = HELM["runLauncher"]["config"]["k8sRunLauncher"]["runK8sConfig"]["podSpecConfig"]
    assert pod["serviceAccountName"] == ACCOUNT["metadata"]["name"]
    assert ACCOUNT["metadata"]["annotations"]["iam.gke.io/gcp-service-account"].endswith(".iam.gserviceaccount.com")


def test_the_code_location_and_the_environment_are_the_codes() -> None:
    args = _user_code()["dagsterApiGrpcArgs"]
    assert args[args.index("--module-name") + 1] == PYPROJECT["tool"]["dagster"]["module_name"]
    user_env, launcher_env = _env(_user_code()["env"]), _launcher_env()
    known = _variables_the_code_reads()
    circus = {k: v for k, v in user_env.items() if k.startswith("CIRCUS_")}
    assert set(circus) <= known, set(circus) - known
    assert circus == launcher_env  # the run pods see what the code server sees
    assert user_env["CIRCUS_STORAGE"] == "gcs"
    for name, value in circus.items():
        if name.startswith("CIRCUS_PUBSUB_"):
            setting = name.removeprefix("CIRCUS_PUBSUB_").lower()
            parse_setting(setting, value)  # a value the code accepts


def test_dagster_reaches_the_scheduler_the_operator_creates() -> None:
    # the dask operator names the scheduler's service "<cluster>-scheduler" (port tcp-comm)
    cluster, namespace = DASK["metadata"]["name"], DASK["metadata"]["namespace"]
    address = f"tcp://{cluster}-scheduler.{namespace}.svc.cluster.local:8786"
    assert _env(_user_code()["env"])["CIRCUS_DASK_ADDRESS"] == address
    assert _launcher_env()["CIRCUS_DASK_ADDRESS"] == address


def test_workers_are_single_threaded_and_get_the_local_clusters_environment() -> None:
    """Without a nanny (which would add MALLOC_TRIM_THRESHOLD_), with the rest of its environment:
    what `resources.runners.local_cluster` gives its workers."""
    (worker,) = DASK["spec"]["worker"]["spec"]["containers"]
    args = worker["args"]
    assert args[0] == "dask-worker" and args[args.index("--nthreads") + 1] == "1"
    assert "--no-nanny" in args
    env = _env(worker["env"])
    assert "MALLOC_TRIM_THRESHOLD_" not in env
    assert {k: env.get(k) for k in worker_environ()} == {k: str(v) for k, v in worker_environ().items()}
    # a Dask config variable cannot remove a key from the nanny's environment (it is merged in)
    assert "MALLOC_TRIM_THRESHOLD_" in dask.config.get("distributed.nanny.pre-spawn-environ")


def test_the_image_installs_the_pinned_versions_and_every_package() -> None:
    assert re.search(r"pip install -c requirements\.lock '\.\[dagster,gcp\]'", DOCKERFILE)
    pins = dict(line.split("==") for line in LOCK.read_text().splitlines() if "==" in line)
    libraries = pins["dagster-gcp"]  # dagster's libraries share one version line
    assert f"dagster-k8s=={libraries}" in DOCKERFILE and f"dagster-postgres=={libraries}" in DOCKERFILE
    for package in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]:
        assert f"COPY {package.rstrip('*')} " in DOCKERFILE, package


def test_no_credential_anywhere() -> None:
    for path in DEPLOY.rglob("*"):
        if path.is_file():
            text = path.read_text().lower()
            for word in ("password", "private_key", "google_application_credentials", "secret", "token"):
                assert word not in text, (path, word)
