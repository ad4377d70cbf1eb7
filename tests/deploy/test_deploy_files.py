"""What CI can check of deploy/ without a container engine: the compose file parses and wires every process
with its health check, a worker for every queue and one beat, and its Citus variant distributes the tables
before anything runs; the Dockerfile is multi-stage, runs as a user
and checks its health; the entry point knows each process kind."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from django.conf import settings

from apps.core.metrics import QUEUES

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


@pytest.fixture(scope="module")
def services() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]


def test_compose_runs_every_process_kind(services):
    assert {"postgres", "redis", "migrate", "web", "beat"} <= set(services)
    for kind in ("migrate", "web", "beat"):
        assert services[kind]["command"] == [kind]


def test_every_queue_has_a_worker(services):
    routed = {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()} | {settings.CELERY_TASK_DEFAULT_QUEUE}
    assert routed <= set(QUEUES)
    served = {
        queue
        for service in services.values()
        if service.get("command") == ["worker"]
        for queue in service["environment"]["WORKER_QUEUES"].split(",")
    }
    assert served == set(QUEUES)


def test_long_running_processes_have_health_checks_and_start_after_the_migration(services):
    for name, service in services.items():
        if name == "migrate":
            assert service["restart"] == "no"
            continue
        assert "healthcheck" in service, f"{name} has no health check"
        if service.get("build"):
            assert service["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}, name
    assert "/readyz" in " ".join(services["web"]["healthcheck"]["test"])
    assert services["beat"]["deploy"]["replicas"] == 1


def test_compose_holds_no_secret(services):
    _assert_no_secret(services)


def _assert_no_secret(services: dict) -> None:
    for name, service in services.items():
        for key, value in (service.get("environment") or {}).items():
            if re.search(r"PASSWORD|SECRET|KEY|TOKEN", key) or "postgres://" in str(value):
                assert re.search(r"\$\{[A-Z_]+:\?", str(value)), f"{name}.{key} must come from deploy/.env"
        assert service.get("env_file", [".env"]) == [".env"]


def test_the_citus_variant_distributes_after_the_migration_and_before_anything_runs(services):
    citus = yaml.safe_load((DEPLOY / "compose.citus.yaml").read_text())["services"]
    assert set(citus) - {"citus-worker-1", "citus-worker-2", "distribute"} <= set(services)  # it only overrides
    assert citus["postgres"]["image"].startswith("citusdata/citus:")
    workers = [name for name in citus if name.startswith("citus-worker-")]
    assert len(workers) == 2
    for worker in workers:
        assert citus[worker]["image"] == citus["postgres"]["image"]
        assert "healthcheck" in citus[worker]
        assert citus["migrate"]["depends_on"][worker] == {"condition": "service_healthy"}
    shell, flag, script = citus["distribute"]["command"]
    assert (shell, flag) == ("sh", "-c")
    prepare, distribute = script.split(" && ")
    assert prepare == "python manage.py citus_distribute --prepare"
    assert distribute.startswith("python manage.py citus_distribute --coordinator=postgres ")
    assert {f"--worker={worker}" for worker in workers} <= set(distribute.split())
    assert citus["distribute"]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    for name, service in services.items():
        if service.get("build") and name != "migrate":
            assert citus[name]["depends_on"]["distribute"] == {"condition": "service_completed_successfully"}, name
    _assert_no_secret(citus)


def test_the_dockerfile_is_multi_stage_and_runs_as_a_user():
    lines = [line.strip() for line in (DEPLOY / "Dockerfile").read_text().splitlines()]
    stages = [index for index, line in enumerate(lines) if line.startswith("FROM ")]
    assert len(stages) >= 2
    final = lines[stages[-1] :]
    user = next(line for line in final if line.startswith("USER "))
    assert user.split()[1].split(":")[0] not in {"0", "root"}
    assert any(line.startswith("HEALTHCHECK") for line in final)
    assert 'ENTRYPOINT ["/app/deploy/entrypoint.sh"]' in final
    assert any("slim" in line for line in lines if line.startswith("FROM "))


def test_the_entry_point_knows_each_process_kind():
    entrypoint = DEPLOY / "entrypoint.sh"
    assert os.access(entrypoint, os.X_OK)
    subprocess.run(["/bin/sh", "-n", str(entrypoint)], check=True)  # noqa: S603 - our own file
    text = entrypoint.read_text()
    for kind in ("web", "worker", "beat", "migrate"):
        assert re.search(rf"^\s+{kind}\)", text, re.MULTILINE), kind
    assert "deploy/gunicorn.conf.py" in text
    compile((DEPLOY / "gunicorn.conf.py").read_text(), "gunicorn.conf.py", "exec")


# --- Kubernetes ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def manifests() -> list[dict]:
    return [
        document
        for path in sorted((DEPLOY / "k8s").glob("*.yaml"))
        for document in yaml.safe_load_all(path.read_text())
        if document
    ]


def _of_kind(manifests: list[dict], kind: str) -> dict[str, dict]:
    return {document["metadata"]["name"]: document for document in manifests if document["kind"] == kind}


def test_every_pod_runs_the_image_as_a_user_with_its_settings_and_bounded_memory(manifests):
    workloads = {**_of_kind(manifests, "Deployment"), **_of_kind(manifests, "Job")}
    assert workloads
    for name, workload in workloads.items():
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        for container in pod["containers"]:
            assert container["image"].startswith("isv-platform:"), name
            assert container["args"][0] in {"web", "worker", "beat", "migrate"}, name
            assert {"configMapRef", "secretRef"} <= {key for source in container["envFrom"] for key in source}, name
            assert container["resources"]["requests"], name
            assert container["resources"]["limits"]["memory"], name


def test_web_is_probed_on_its_health_endpoints_and_scales_on_cpu(manifests):
    [web] = [
        d
        for d in _of_kind(manifests, "Deployment").values()
        if d["spec"]["template"]["spec"]["containers"][0]["args"] == ["web"]
    ]
    container = web["spec"]["template"]["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    autoscalers = _of_kind(manifests, "HorizontalPodAutoscaler")
    assert autoscalers[web["metadata"]["name"]]["spec"]["metrics"][0]["resource"]["name"] == "cpu"


def test_every_queue_has_workers_that_scale_on_its_depth(manifests):
    autoscalers = _of_kind(manifests, "HorizontalPodAutoscaler")
    served = set()
    for name, deployment in _of_kind(manifests, "Deployment").items():
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        if container["args"] != ["worker"]:
            continue
        queues = next(item["value"] for item in container["env"] if item["name"] == "WORKER_QUEUES").split(",")
        served |= set(queues)
        assert "livenessProbe" in container, name
        metrics_port = int(_of_kind(manifests, "ConfigMap")["isv-platform"]["data"]["WORKER_METRICS_PORT"])
        assert {"name": "metrics", "containerPort": metrics_port} in container["ports"], name  # for a PodMonitor
        [metric] = autoscalers[name]["spec"]["metrics"]
        assert metric["external"]["metric"]["name"] == "isv_queue_depth"
        assert metric["external"]["metric"]["selector"]["matchLabels"]["queue"] in queues
    assert served == set(QUEUES)


def test_exactly_one_beat_and_a_migration_job(manifests):
    [beat] = [
        d
        for d in _of_kind(manifests, "Deployment").values()
        if d["spec"]["template"]["spec"]["containers"][0]["args"] == ["beat"]
    ]
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"]["type"] == "Recreate"
    assert beat["metadata"]["name"] not in _of_kind(manifests, "HorizontalPodAutoscaler")
    [job] = _of_kind(manifests, "Job").values()
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["migrate"]


def test_the_secret_is_a_template_with_no_value_in_it(manifests):
    [secret] = _of_kind(manifests, "Secret").values()
    assert secret["stringData"]
    for key, value in secret["stringData"].items():
        assert re.search(r"<[^>]+>", value), f"{key} holds a value; the template must hold placeholders only"


def test_the_build_context_leaves_out_secrets_and_local_state():
    """deploy/.env holds the compose secrets and var/ the development ones: neither may reach an image."""
    ignored = (DEPLOY.parent / ".dockerignore").read_text().split()
    assert {"**/.env", "var/", ".venv/", ".git/"} <= set(ignored)
