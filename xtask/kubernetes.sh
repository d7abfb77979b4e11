#!/usr/bin/env bash
# kubernetes-validate (from PyPI) against the manifests in deploy/kubernetes/: every resource
# checked offline against the OpenAPI schemas of Kubernetes $k8s that the package ships, in
# strict mode (an unknown or misspelt field is an error, and so is a kind or apiVersion it has no
# schema for). The package is installed once, when missing, into a virtualenv in
# target/tools/kubernetes-validate: nothing is installed system-wide and no cluster is needed.
# Then what no schema can know: the identities the manifests hang together by (pod paddock-N
# reads paddock-N.toml, whose node_id is N, with certificate node-N, and the bootstrap lists name
# the pods through the headless Service), and every TOML key and flag they use being one
# docs/operations.md documents.
# `bash xtask/kubernetes.sh [DIR]` (DIR: deploy/kubernetes by default).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${1:-$root/deploy/kubernetes}"
version="1.37.0"   # kubernetes-validate
k8s="1.32.0"       # the oldest Kubernetes in which every field used here is GA (ordinals, PVC retention)
venv="$root/target/tools/kubernetes-validate"
validate="$venv/bin/kubernetes-validate"
if [ ! -x "$validate" ] || [ "$("$validate" --version 2>/dev/null)" != "$version" ]; then
    echo "installing kubernetes-validate $version from PyPI into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "kubernetes-validate==$version"
fi
shopt -s nullglob
files=("$dir"/*.yaml)
if [ ${#files[@]} -eq 0 ]; then
    echo "kubernetes: no manifests in $dir"
    exit 1
fi

# Schemas. kubernetes-validate exits 0 on a resource it has no schema for (a WARN line): any
# line that is not a pass fails here, and every document must have passed.
out=$("$validate" --strict --kubernetes-version "$k8s" "${files[@]}" 2>&1) && rc=0 || rc=$?
echo "$out"
documents=$("$venv/bin/python" -c '
import sys, yaml
print(sum(1 for f in sys.argv[1:] for d in yaml.safe_load_all(open(f)) if d))' "${files[@]}")
passed=$(grep -c '^INFO .* passed for resource' <<<"$out" || true)
if [ "$rc" -ne 0 ] || grep -qv '^INFO ' <<<"$out" || [ "$passed" -ne "$documents" ]; then
    echo "kubernetes: $passed of $documents resources in $dir passed Kubernetes $k8s's schemas (strict); see above"
    exit 1
fi
echo "kubernetes: all $documents resources in ${#files[@]} files valid against Kubernetes $k8s (strict, kubernetes-validate $version)"

# Identities and documented settings.
"$venv/bin/python" - "$root/docs/operations.md" "${files[@]}" <<'PY'
import re, sys, tomllib, yaml

ops = open(sys.argv[1]).read()
docs = {}
for f in sys.argv[2:]:
    for d in yaml.safe_load_all(open(f)):
        if d:
            docs[(d["kind"], d["metadata"]["name"])] = d
errors = []
def need(ok, what):
    if not ok:
        errors.append(what)

sts = [d for (kind, _), d in docs.items() if kind == "StatefulSet"]
need(len(sts) == 1, "exactly one StatefulSet")
if errors:
    sys.exit("kubernetes: " + "; ".join(errors))
sts = sts[0]
ns = sts["metadata"].get("namespace", "default")
spec, pod = sts["spec"], sts["spec"]["template"]["spec"]
start, replicas = spec.get("ordinals", {}).get("start", 0), spec["replicas"]
ordinals = list(range(start, start + replicas))
need(start >= 1, "ordinals.start must be at least 1: pod paddock-N is node N and a node id is non-zero")
need(spec.get("podManagementPolicy") == "Parallel",
     "podManagementPolicy must be Parallel: no node is ready before a majority has started")
peers = docs.get(("Service", spec["serviceName"]))
need(peers is not None, f"the StatefulSet's serviceName {spec['serviceName']} is a Service here")
if peers:
    need(peers["spec"].get("clusterIP") == "None", f"{spec['serviceName']} is headless")
    need(peers["spec"].get("publishNotReadyAddresses") is True,
         f"{spec['serviceName']} publishes not-ready pods (peers must reach a node before it can be ready)")
labels = sts["spec"]["template"]["metadata"]["labels"]
for (kind, name), d in docs.items():
    selector = d.get("spec", {}).get("selector") if kind in ("Service", "PodDisruptionBudget") else None
    if selector is not None:
        selector = selector.get("matchLabels", selector)
        need(all(labels.get(k) == v for k, v in selector.items()), f"{kind} {name} selects the Paddock pods")
pdb = [d for (kind, _), d in docs.items() if kind == "PodDisruptionBudget"]
need(len(pdb) == 1 and pdb[0]["spec"].get("maxUnavailable") == 1, "one PodDisruptionBudget with maxUnavailable 1")

(c,) = [c for c in pod["containers"] if c["name"] == "paddock"]
ports = {p["name"]: p["containerPort"] for p in c["ports"]}
for probe, path in (("startupProbe", "/health/live"), ("livenessProbe", "/health/live"),
                    ("readinessProbe", "/health/ready")):
    get = c.get(probe, {}).get("httpGet", {})
    need(get.get("path") == path and get.get("port") in ("http", ports.get("http"))
         and get.get("scheme") == "HTTPS", f"{probe}: HTTPS GET {path} on the API port")
args = c.get("command", []) + c.get("args", [])
for flag in [a for a in args if a.startswith("--")]:
    need(f"`{flag}" in ops, f"flag {flag} is documented in docs/operations.md")
mounts = [m["mountPath"] for m in c["volumeMounts"]]
config = args[args.index("--config") + 1] if "--config" in args else ""
need(config.endswith("$(POD_NAME).toml"), "the node reads the file named for its pod: --config .../$(POD_NAME).toml")
need(any(e["name"] == "POD_NAME" and e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name"
         for e in c.get("env", [])), "POD_NAME comes from the pod's name (downward API)")

cms = [v for (kind, _), v in docs.items() if kind == "ConfigMap"
       and any(v["metadata"]["name"] == vol.get("configMap", {}).get("name") for vol in pod["volumes"])]
need(len(cms) == 1, "the StatefulSet mounts one ConfigMap of configuration files")
files = cms[0]["data"] if cms else {}
name = sts["metadata"]["name"]
initial = None
checked = []
for n in ordinals:
    key = f"{name}-{n}.toml"
    if key not in files:
        errors.append(f"pod {name}-{n} has no configuration file {key}")
        continue
    cfg = tomllib.loads(files[key])
    checked.append(key)
    for k in cfg:
        need(f"`{k}`" in ops or f"`{k} =" in ops, f"{key}: key {k} is documented in docs/operations.md")
    need(cfg.get("node_id") == n, f"{key}: node_id is {n}")
    need(str(cfg.get("tls_cert_file", "")).endswith(f"/node-{n}.pem")
         and str(cfg.get("tls_key_file", "")).endswith(f"/node-{n}.key"), f"{key}: its TLS pair is node-{n}'s")
    for k in ("data_dir", "tls_ca_file", "tls_cert_file", "tls_key_file", "static_keys_file"):
        need(k in cfg and any(str(cfg[k]) == m or str(cfg[k]).startswith(m.rstrip("/") + "/") for m in mounts),
             f"{key}: {k} lies on a mounted volume")
    for k, port in (("http_listen", "http"), ("peer_listen", "peer")):
        need(str(cfg.get(k, "")).rsplit(":", 1)[-1] == str(ports.get(port)), f"{key}: {k} is the container port {port}")
    boot = cfg.get("bootstrap", {})
    if boot:
        need(str(n) in boot, f"{key}: its bootstrap list names node {n}")
        need(initial is None or boot == initial, f"{key}: the same bootstrap list as the other files")
        initial = initial or boot
        for i, addr in boot.items():
            want = f"{name}-{i}.{spec['serviceName']}.{ns}.svc.cluster.local:{ports.get('peer')}"
            need(addr == want, f"{key}: bootstrap {i} = {addr}, expected {want}")
need(initial is not None and len(initial) % 2 == 1, "an odd number of initial voters in a [bootstrap] list")
if errors:
    print("kubernetes: the manifests do not hang together; each of these should hold and does not:")
    for e in errors:
        print("  - " + e)
    sys.exit(1)
print(f"kubernetes: {replicas} pods ({name}-{ordinals[0]}..{name}-{ordinals[-1]}), each with its own "
      f"configuration file ({', '.join(checked)}), node id and certificate; bootstrap voters "
      f"{', '.join(initial)} through the headless Service {spec['serviceName']}; probes on /health/*; "
      f"every flag and TOML key documented in docs/operations.md")
PY
