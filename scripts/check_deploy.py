#!/usr/bin/env python3
"""Offline checks of the rendered Kubernetes manifests in deploy/ (run by check-deploy.sh).

    check_deploy.py --repo ROOT [-k 1.31 -k 1.37] NAME=RENDERED.yaml ...

For each rendered kustomization (NAME=file, as `kubectl kustomize` printed it):

* every object is validated against the Kubernetes API JSON schema of its kind, for each
  Kubernetes version given, strictly (unknown fields are errors), with the schemas that the
  `kubernetes-validate` package ships (no network). A kind without a schema is an error too.
* a few enumerations that the schemas do not carry (imagePullPolicy, concurrencyPolicy, ...).
* the policy this project deploys with: the CronJob's concurrency, deadlines and grace period,
  the Pod Security "restricted" profile plus a read-only root, no API token, resources, mounts
  that match the config (recarch.toml from the ConfigMap is parsed and checked for keys that
  the README documents), shard counts that agree.

Before any of it, a self-test proves that the validator rejects broken objects and that the
policy checks reject a weakened CronJob. Exits 1 on any failure.
"""

from __future__ import annotations

import argparse
import copy
import posixpath
import re
import sys
from collections import Counter
from pathlib import Path

import yaml

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - older Pythons get tomli in the tools venv
    import tomli as tomllib  # type: ignore[no-redef]

from kubernetes_validate import utils as kv

# recarch's shutdown grace after SIGTERM: the README's `[run] shutdown_grace` defaults to 20 s; the
# current binary waits 25 s (README "Signals"). The pod's terminationGracePeriodSeconds must be
# above both, or a stopped run is SIGKILLed while it writes its run report.
RECARCH_SHUTDOWN_GRACE_S = 25

# Secrets the manifests reference but deliberately do not contain (created out of band).
EXTERNAL_SECRETS = {"recarch-client-secret"}

# recarch.toml keys documented in the README (recarch rejects unknown keys with exit 2).
DOCUMENTED_KEYS = {
    "graph": {
        "base_url", "authority_url", "tenant_id", "client_id", "client_secret_env",
        "client_secret_file", "cloud", "auth", "client_certificate_file",
        "client_private_key_file", "client_certificate_password_env", "federated_token_file",
    },
    "source": {
        "organizers", "organizers_file", "start_date_time", "organizers_group", "organizers_all",
        "kinds", "contacts_select",
    },
    "store": {"url", "options"},
    "fetch": {"concurrency", "max_attempts", "max_item_attempts"},
    "run": {"shutdown_grace"},
    "metrics": {"pushgateway_url"},
}

# Enumerations the JSON schemas leave as plain strings.
ENUMS = {
    "imagePullPolicy": {"Always", "IfNotPresent", "Never"},
    "concurrencyPolicy": {"Allow", "Forbid", "Replace"},
    "completionMode": {"NonIndexed", "Indexed"},
    "podReplacementPolicy": {"TerminatingOrFailed", "Failed"},
    "fsGroupChangePolicy": {"OnRootMismatch", "Always"},
    "pod.restartPolicy": {"Always", "OnFailure", "Never"},
    "seccompProfile.type": {"RuntimeDefault", "Localhost", "Unconfined"},
    "podFailurePolicy.action": {"FailJob", "FailIndex", "Ignore", "Count"},
    "onExitCodes.operator": {"In", "NotIn"},
    "accessModes": {"ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"},
}

HOURLY = re.compile(r"^\d{1,2} \* \* \* \*$")


# --------------------------------------------------------------------------------------------
# schema validation


def schema_errors(obj: dict, versions: list[str]) -> list[str]:
    """Strict schema validation of one object against every version; returns error lines."""
    errors = []
    name = f"{obj.get('kind')}/{(obj.get('metadata') or {}).get('name')}"
    for version in versions:
        try:
            kv.validate(obj, version, strict=True)
        except kv.ValidationError as e:
            path = ".".join(str(p) for p in e.path) or "(top level)"
            errors.append(f"{name}: Kubernetes {version} schema: {path}: {e.message}")
        except kv.SchemaNotFoundError as e:
            errors.append(f"{name}: {e.message}")
        except kv.VersionNotSupportedError as e:
            errors.append(f"{name}: {e.message}")
    return errors


# --------------------------------------------------------------------------------------------
# enumerations and policy


def pod_template(cronjob: dict) -> dict:
    return cronjob["spec"]["jobTemplate"]["spec"]["template"]


def enum_errors(obj: dict) -> list[str]:
    errors = []
    name = f"{obj.get('kind')}/{(obj.get('metadata') or {}).get('name')}"

    def check(field: str, value, where: str) -> None:
        if value is not None and value not in ENUMS[field]:
            allowed = ", ".join(sorted(ENUMS[field]))
            errors.append(f"{name}: {where}: {value!r} is not one of {allowed}")

    kind = obj.get("kind")
    if kind == "PersistentVolumeClaim":
        for mode in obj.get("spec", {}).get("accessModes") or []:
            check("accessModes", mode, "spec.accessModes")
    if kind != "CronJob":
        return errors
    spec = obj.get("spec", {})
    check("concurrencyPolicy", spec.get("concurrencyPolicy"), "spec.concurrencyPolicy")
    job = spec.get("jobTemplate", {}).get("spec", {})
    check("completionMode", job.get("completionMode"), "jobTemplate.spec.completionMode")
    check("podReplacementPolicy", job.get("podReplacementPolicy"),
          "jobTemplate.spec.podReplacementPolicy")
    for i, rule in enumerate((job.get("podFailurePolicy") or {}).get("rules") or []):
        check("podFailurePolicy.action", rule.get("action"), f"podFailurePolicy.rules[{i}].action")
        codes = rule.get("onExitCodes")
        if codes:
            check("onExitCodes.operator", codes.get("operator"),
                  f"podFailurePolicy.rules[{i}].onExitCodes.operator")
    pod = job.get("template", {}).get("spec", {})
    check("pod.restartPolicy", pod.get("restartPolicy"), "pod restartPolicy")
    psc = pod.get("securityContext") or {}
    check("fsGroupChangePolicy", psc.get("fsGroupChangePolicy"), "pod securityContext.fsGroupChangePolicy")
    check("seccompProfile.type", (psc.get("seccompProfile") or {}).get("type"),
          "pod securityContext.seccompProfile.type")
    for c in (pod.get("initContainers") or []) + (pod.get("containers") or []):
        cname = c.get("name")
        check("imagePullPolicy", c.get("imagePullPolicy"), f"container {cname} imagePullPolicy")
        csc = c.get("securityContext") or {}
        check("seccompProfile.type", (csc.get("seccompProfile") or {}).get("type"),
              f"container {cname} securityContext.seccompProfile.type")
    return errors


def find(objs: list[dict], kind: str, name: str | None = None) -> list[dict]:
    return [o for o in objs if o.get("kind") == kind
            and (name is None or o.get("metadata", {}).get("name") == name)]


def arg_value(args: list[str], flag: str) -> str | None:
    for i, a in enumerate(args):
        if a == flag and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


def policy_errors(objs: list[dict]) -> list[str]:
    """The deployment policy of this project, on one rendered kustomization."""
    errors: list[str] = []
    err = errors.append
    cronjobs = find(objs, "CronJob")
    if len(cronjobs) != 1:
        return [f"expected exactly one CronJob, found {len(cronjobs)}"]
    cj = cronjobs[0]
    spec = cj["spec"]
    job = spec["jobTemplate"]["spec"]
    tmpl = pod_template(cj)
    pod = tmpl["spec"]
    labels = (tmpl.get("metadata") or {}).get("labels") or {}

    # --- the CronJob: no overlap, bounded lateness and duration
    if spec.get("concurrencyPolicy") != "Forbid":
        err(f"CronJob: concurrencyPolicy is {spec.get('concurrencyPolicy')!r}, must be Forbid")
    sds = spec.get("startingDeadlineSeconds")
    if not isinstance(sds, int) or sds <= 0:
        err("CronJob: startingDeadlineSeconds must be set (a late run is skipped, not piled up)")
    for f in ("successfulJobsHistoryLimit", "failedJobsHistoryLimit"):
        if not isinstance(spec.get(f), int):
            err(f"CronJob: {f} must be set explicitly")
    grace = pod.get("terminationGracePeriodSeconds")
    if not isinstance(grace, int) or grace <= RECARCH_SHUTDOWN_GRACE_S:
        err(f"pod: terminationGracePeriodSeconds is {grace!r}, must be above recarch's shutdown "
            f"grace ({RECARCH_SHUTDOWN_GRACE_S} s; [run] shutdown_grace default 20 s)")
    ads = job.get("activeDeadlineSeconds")
    if not isinstance(ads, int) or ads <= 0:
        err("Job: activeDeadlineSeconds must be set")
    elif HOURLY.match(str(spec.get("schedule", ""))) and isinstance(grace, int) \
            and ads + grace >= 3600:
        err(f"Job: activeDeadlineSeconds ({ads}) + grace ({grace}) must end before the next "
            "hourly run")
    if pod.get("restartPolicy") != "Never":
        err("pod: restartPolicy must be Never (podFailurePolicy needs it; one pod per attempt)")

    # --- podFailurePolicy: well-formed, and the exit codes of recarch's contract covered
    rules = (job.get("podFailurePolicy") or {}).get("rules") or []
    indexed = job.get("completionMode") == "Indexed"
    handled = set()
    for i, rule in enumerate(rules):
        codes = rule.get("onExitCodes")
        if rule.get("action") == "FailIndex" and job.get("backoffLimitPerIndex") is None:
            err(f"podFailurePolicy.rules[{i}]: FailIndex needs backoffLimitPerIndex")
        if codes:
            values = codes.get("values") or []
            if values != sorted(set(values)):
                err(f"podFailurePolicy.rules[{i}]: exit codes must be unique and ascending")
            if codes.get("operator") == "In" and 0 in values:
                err(f"podFailurePolicy.rules[{i}]: exit code 0 is not allowed with In")
            if codes.get("operator") == "In" and rule.get("action") in ("FailJob", "FailIndex"):
                handled.update(values)
            if rule.get("action") == "Ignore" and codes.get("operator") == "In" \
                    and set(values) & {1, 2, 3}:
                err(f"podFailurePolicy.rules[{i}]: Ignore would start a new pod at once for "
                    "recarch exit codes 1/2/3")
    for code in (1, 2, 3):
        if code not in handled:
            err(f"podFailurePolicy: recarch exit code {code} must end the run (FailJob/FailIndex),"
                " not be retried at once")
    if job.get("backoffLimitPerIndex") is not None and not indexed:
        err("Job: backoffLimitPerIndex needs completionMode Indexed")

    # --- Pod Security "restricted", plus a read-only root and no API token
    psc = pod.get("securityContext") or {}
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(flag):
            err(f"pod: {flag} must not be set")
    if pod.get("automountServiceAccountToken") is not False:
        err("pod: automountServiceAccountToken must be false (recarch needs no API token)")
    if (psc.get("seccompProfile") or {}).get("type") not in ("RuntimeDefault", "Localhost"):
        err("pod: seccompProfile must be RuntimeDefault (or Localhost)")
    if psc.get("runAsUser") == 0:
        err("pod: runAsUser must not be 0")
    containers = (pod.get("initContainers") or []) + (pod.get("containers") or [])
    for c in containers:
        n = f"container {c.get('name')}"
        csc = c.get("securityContext") or {}
        if not (csc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True):
            err(f"{n}: runAsNonRoot must be true")
        if csc.get("runAsUser", psc.get("runAsUser")) in (None, 0):
            err(f"{n}: a numeric non-root runAsUser must be set")
        if csc.get("allowPrivilegeEscalation") is not False:
            err(f"{n}: allowPrivilegeEscalation must be false")
        if csc.get("privileged"):
            err(f"{n}: privileged must not be set")
        if csc.get("readOnlyRootFilesystem") is not True:
            err(f"{n}: readOnlyRootFilesystem must be true")
        caps = csc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            err(f"{n}: capabilities must drop ALL")
        if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
            err(f"{n}: capabilities.add beyond NET_BIND_SERVICE")
        res = c.get("resources") or {}
        if not (res.get("requests") or {}).get("memory") or not (res.get("limits") or {}).get("memory"):
            err(f"{n}: memory request and limit must be set (sized from the measured peak RSS)")
        if not (res.get("requests") or {}).get("cpu"):
            err(f"{n}: a CPU request must be set")
    for v in pod.get("volumes") or []:
        if "hostPath" in v:
            err(f"pod: volume {v.get('name')}: hostPath is not allowed")

    # --- the recarch container: args, environment, mounts
    main = [c for c in pod.get("containers") or [] if c.get("name") == "recarch"]
    if len(main) != 1:
        err("pod: expected one container named recarch")
        return errors
    c = main[0]
    args = c.get("args") or []
    env = {e["name"]: e for e in c.get("env") or []}
    if not args or args[0] != "run":
        err(f"recarch: args must start with run, got {args!r}")
    if (env.get("RECARCH_LOG_FORMAT") or {}).get("value") != "json":
        err("recarch: RECARCH_LOG_FORMAT=json must be set (log collectors)")
    volumes = {v["name"]: v for v in pod.get("volumes") or []}
    mounts = c.get("volumeMounts") or []
    used = set()
    for m in mounts:
        used.add(m["name"])
        if m["name"] not in volumes:
            err(f"recarch: volumeMount {m['name']} has no volume")
    for name in volumes:
        if name not in used:
            err(f"pod: volume {name} is not mounted")

    def volume_at(path: str) -> tuple[dict | None, str]:
        """The mount holding `path` (longest mountPath prefix) and the path inside it."""
        best = None
        for m in mounts:
            mp = m["mountPath"].rstrip("/")
            if path == mp or path.startswith(mp + "/"):
                if best is None or len(mp) > len(best["mountPath"].rstrip("/")):
                    best = m
        if best is None:
            return None, ""
        return best, posixpath.relpath(path, best["mountPath"])

    tmp_mount, _ = volume_at("/tmp/x")
    if tmp_mount is None or "emptyDir" not in volumes.get(tmp_mount["name"], {}):
        err("recarch: /tmp must be an emptyDir (the root filesystem is read-only)")
    if (env.get("TMPDIR") or {}).get("value", "/tmp") != "/tmp":
        err("recarch: TMPDIR must be /tmp")

    for v in volumes.values():
        if "configMap" in v and not find(objs, "ConfigMap", v["configMap"]["name"]):
            err(f"pod: volume {v['name']}: ConfigMap {v['configMap']['name']} is not rendered")
        if "persistentVolumeClaim" in v and not find(
                objs, "PersistentVolumeClaim", v["persistentVolumeClaim"]["claimName"]):
            err(f"pod: volume {v['name']}: PVC {v['persistentVolumeClaim']['claimName']} is not rendered")
        if "secret" in v:
            sname = v["secret"]["secretName"]
            if sname not in EXTERNAL_SECRETS and not find(objs, "Secret", sname):
                err(f"pod: volume {v['name']}: Secret {sname} is neither rendered nor external")

    def file_in_volume(path: str, what: str, source: str) -> dict | None:
        """Checks that `path` is a key projected by a `source` (configMap/secret) volume."""
        mount, rel = volume_at(path)
        if mount is None:
            err(f"{what} {path} is on no mounted volume")
            return None
        vol = volumes.get(mount["name"], {})
        if source not in vol:
            err(f"{what} {path} is on volume {mount['name']}, which is not a {source}")
            return None
        if mount.get("readOnly") is not True:
            err(f"{what}: volume {mount['name']} must be mounted readOnly")
        items = vol[source].get("items")
        if items is not None:
            keys = {i["path"]: i["key"] for i in items}
            if rel not in keys:
                err(f"{what} {path}: no item with path {rel} in volume {mount['name']}")
                return None
            return {"key": keys[rel], "volume": vol}
        return {"key": rel, "volume": vol}

    # --- the configuration file and what it names
    config_path = arg_value(args, "--config")
    if not config_path:
        err("recarch: --config FILE missing from args")
        return errors
    found = file_in_volume(config_path, "--config", "configMap")
    if not found:
        return errors
    cms = find(objs, "ConfigMap", found["volume"]["configMap"]["name"])
    text = (cms[0].get("data") or {}).get(found["key"]) if cms else None
    if text is None:
        err(f"--config {config_path}: ConfigMap has no key {found['key']}")
        return errors
    errors.extend(config_errors(text))
    try:
        cfg = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return errors
    graph = cfg.get("graph", {})
    store_url = cfg.get("store", {}).get("url", "")
    auth = graph.get("auth", "secret")
    if graph.get("client_secret_file"):
        file_in_volume(graph["client_secret_file"], "[graph] client_secret_file", "secret")
    if auth == "secret" and not graph.get("client_secret_file") and (
            graph.get("client_secret_env", "RECARCH_CLIENT_SECRET") not in env):
        err("[graph] auth = secret: neither client_secret_file nor the secret's variable is set")
    sa_name = pod.get("serviceAccountName")
    sas = find(objs, "ServiceAccount", sa_name) if sa_name else []
    if not sas:
        err(f"pod: ServiceAccount {sa_name!r} is not rendered")
    sa = sas[0] if sas else {}
    if sa and sa.get("automountServiceAccountToken") is not False:
        err(f"ServiceAccount {sa_name}: automountServiceAccountToken must be false")
    sa_ann = (sa.get("metadata") or {}).get("annotations") or {}
    options = cfg.get("store", {}).get("options", {})
    az_keyless = store_url.startswith("az://") and not any(
        k in options for k in ("azure_storage_account_key", "azure_storage_sas_key"))
    if auth == "workload_identity" or az_keyless:
        if labels.get("azure.workload.identity/use") != "true":
            err("workload identity: the pod needs label azure.workload.identity/use: \"true\"")
        if not sa_ann.get("azure.workload.identity/client-id"):
            err("workload identity: the ServiceAccount needs azure.workload.identity/client-id")
    if store_url.startswith("s3://") and "aws_access_key_id" not in options:
        if not sa_ann.get("eks.amazonaws.com/role-arn"):
            err("S3 without keys: the ServiceAccount needs eks.amazonaws.com/role-arn (IRSA)")
    if store_url.startswith("file://"):
        path = store_url[len("file://"):]
        mount, _ = volume_at(path)
        vol = volumes.get(mount["name"], {}) if mount else {}
        if not mount or "persistentVolumeClaim" not in vol or mount.get("readOnly"):
            err(f"[store] url {store_url}: must be on a writable PersistentVolumeClaim mount")
        elif indexed and (job.get("parallelism") or 1) > 1:
            claim = find(objs, "PersistentVolumeClaim", vol["persistentVolumeClaim"]["claimName"])
            if claim and "ReadWriteMany" not in claim[0]["spec"].get("accessModes", []):
                err("shards in parallel on a file:// store need a ReadWriteMany claim")
    elif any(v.get("persistentVolumeClaim") for v in volumes.values()):
        err(f"[store] url {store_url}: an archive volume is mounted but not used")

    # --- shards
    shard_count = arg_value(args, "--shard-count")
    if indexed:
        completions, parallelism = job.get("completions"), job.get("parallelism")
        if shard_count is None or not shard_count.isdigit():
            err("Indexed Job: --shard-count N missing from args")
        elif not (int(shard_count) == completions == parallelism):
            err(f"Indexed Job: --shard-count {shard_count}, completions {completions} and "
                f"parallelism {parallelism} must agree")
        index = arg_value(args, "--shard-index")
        if index is not None and index != "$(JOB_COMPLETION_INDEX)":
            err(f"Indexed Job: --shard-index must be $(JOB_COMPLETION_INDEX), got {index!r}")
        if index is not None and "JOB_COMPLETION_INDEX" not in env:
            err("Indexed Job: $(JOB_COMPLETION_INDEX) is expanded only from a declared env var")
        if job.get("backoffLimitPerIndex") is None:
            err("Indexed Job: backoffLimitPerIndex must be set (one shard's failures must not "
                "stop the others)")
    elif shard_count is not None:
        err("--shard-count given but the Job is not Indexed")
    return errors


def config_errors(text: str) -> list[str]:
    """recarch.toml: parses, uses only documented keys, and has the required ones."""
    try:
        cfg = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        return [f"recarch.toml: invalid TOML: {e}"]
    errors = []
    for section, table in cfg.items():
        if section not in DOCUMENTED_KEYS or not isinstance(table, dict):
            errors.append(f"recarch.toml: [{section}] is not a documented section")
            continue
        for key in table:
            if key not in DOCUMENTED_KEYS[section]:
                errors.append(f"recarch.toml: [{section}] {key} is not a documented key")
    options = cfg.get("store", {}).get("options", {})
    if not isinstance(options, dict) or any(not isinstance(v, str) for v in options.values()):
        errors.append("recarch.toml: [store.options] values must be strings")
    url = cfg.get("store", {}).get("url")
    if not isinstance(url, str) or not re.match(r"^(file|s3|az)://", url):
        errors.append(f"recarch.toml: [store] url {url!r} must be file://, s3:// or az://")
    graph = cfg.get("graph", {})
    if graph.get("auth", "secret") != "workload_identity":
        for key in ("tenant_id", "client_id"):
            if key not in graph:
                errors.append(f"recarch.toml: [graph] {key} is required")
    if graph.get("client_secret_env") and graph.get("client_secret_file"):
        errors.append("recarch.toml: set client_secret_env or client_secret_file, not both")
    src = cfg.get("source", {})
    if not any(k in src for k in ("organizers", "organizers_file", "organizers_group",
                                  "organizers_all")):
        errors.append("recarch.toml: [source] names no organizers")
    return errors


# --------------------------------------------------------------------------------------------
# self-test: the checks must be able to fail


def self_test(versions: list[str], sample: list[dict]) -> list[str]:
    problems = []
    good = {
        "apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "selftest"},
        "spec": {"schedule": "17 * * * *", "jobTemplate": {"spec": {"template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "c", "image": "example.invalid/c:1",
                            "imagePullPolicy": "IfNotPresent"}]}}}}},
    }
    if schema_errors(good, versions) or enum_errors(good):
        problems.append("a valid minimal CronJob was rejected: "
                        + "; ".join(schema_errors(good, versions) + enum_errors(good)))

    def broken(desc: str, mutate, checker) -> None:
        obj = copy.deepcopy(good)
        mutate(obj)
        if not checker(obj):
            problems.append(f"not rejected: {desc}")

    def container(o):
        return o["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]

    schema = lambda o: schema_errors(o, versions)  # noqa: E731
    broken("an unknown field (containers[0].imagePullPolicyy)",
           lambda o: container(o).update(imagePullPolicyy="Always"), schema)
    broken("an unknown field at the top of the spec (spec.concurrency)",
           lambda o: o["spec"].update(concurrency="Forbid"), schema)
    broken("a wrong type (jobTemplate.spec.backoffLimit: \"one\")",
           lambda o: o["spec"]["jobTemplate"]["spec"].update(backoffLimit="one"), schema)
    broken("a missing required field (spec.schedule)",
           lambda o: o["spec"].pop("schedule"), schema)
    broken("an unknown kind (CronJobs)", lambda o: o.update(kind="CronJobs"), schema)
    broken("imagePullPolicy: Sometimes",
           lambda o: container(o).update(imagePullPolicy="Sometimes"), enum_errors)

    # The policy checks must reject a weakened copy of a real rendered CronJob.
    base_errors = policy_errors(sample)
    if base_errors:
        problems.append("the sample rendering fails the policy itself: " + "; ".join(base_errors))
    else:
        def weakened(desc: str, mutate) -> None:
            objs = copy.deepcopy(sample)
            mutate(find(objs, "CronJob")[0])
            if not policy_errors(objs):
                problems.append(f"policy did not reject: {desc}")

        pod = lambda cj: pod_template(cj)["spec"]  # noqa: E731
        weakened("concurrencyPolicy: Allow", lambda cj: cj["spec"].update(concurrencyPolicy="Allow"))
        weakened("terminationGracePeriodSeconds: 20",
                 lambda cj: pod(cj).update(terminationGracePeriodSeconds=20))
        weakened("no startingDeadlineSeconds", lambda cj: cj["spec"].pop("startingDeadlineSeconds"))
        weakened("readOnlyRootFilesystem: false",
                 lambda cj: pod(cj)["containers"][0]["securityContext"].update(
                     readOnlyRootFilesystem=False))
        weakened("exit code 3 retried at once (Ignore)",
                 lambda cj: cj["spec"]["jobTemplate"]["spec"]["podFailurePolicy"]["rules"].insert(
                     0, {"action": "Ignore",
                         "onExitCodes": {"operator": "In", "values": [3]}}))
        objs = copy.deepcopy(sample)
        for cm in find(objs, "ConfigMap"):
            for k in cm.get("data", {}):
                cm["data"][k] += "\n[surprise]\nnot_a_key = 1\n"
        if not policy_errors(objs):
            problems.append("policy did not reject: an undocumented recarch.toml section")
    return problems


# --------------------------------------------------------------------------------------------


def dockerfile_errors(repo: Path) -> list[str]:
    """deploy/Dockerfile's dependency layer copies every workspace member's Cargo.toml."""
    cargo = tomllib.loads((repo / "Cargo.toml").read_text())
    members = cargo.get("workspace", {}).get("members", [])
    dockerfile = (repo / "deploy" / "Dockerfile").read_text()
    errors = []
    for m in members:
        if not re.search(rf"^COPY {re.escape(m)}/Cargo.toml ", dockerfile, re.M):
            errors.append(f"deploy/Dockerfile: no `COPY {m}/Cargo.toml` for workspace member {m}")
    return errors


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", type=Path, required=True)
    ap.add_argument("-k", "--kubernetes-version", action="append", dest="versions")
    ap.add_argument("targets", nargs="+", metavar="NAME=RENDERED.yaml")
    a = ap.parse_args()
    versions = a.versions or [kv.latest_version()]

    rendered = {}
    for t in a.targets:
        name, _, path = t.partition("=")
        if not name or not path:
            ap.error(f"expected NAME=RENDERED.yaml, got {t!r}")
        docs = [d for d in yaml.safe_load_all(Path(path).read_text()) if d]
        rendered[name] = docs

    failures = 0
    sample = next(iter(rendered.values()))
    problems = self_test(versions, sample)
    if problems:
        for p in problems:
            print(f"  FAIL self-test: {p}")
        failures += len(problems)
    else:
        print("  ok   self-test: the validator rejects an unknown field, a wrong type, a missing "
              "required field, an unknown kind and a bad enum; the policy rejects weakened CronJobs")

    for p in dockerfile_errors(a.repo):
        print(f"  FAIL {p}")
        failures += 1

    for name, docs in rendered.items():
        kinds = Counter(d.get("kind") for d in docs)
        summary = ", ".join(f"{k}" + (f" x{n}" if n > 1 else "") for k, n in kinds.items())
        errors = []
        for d in docs:
            errors.extend(schema_errors(d, versions))
            errors.extend(enum_errors(d))
        if name != "base" or find(docs, "CronJob"):
            errors.extend(policy_errors(docs))
        if errors:
            failures += len(errors)
            print(f"  FAIL {name}: {summary}")
            for e in errors:
                print(f"         {e}")
        else:
            print(f"  ok   {name}: {summary} (schemas {', '.join(versions)}, strict; policy)")
    if failures:
        print(f"check_deploy: {failures} problem(s)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
