//! Helpers for driving the built `recarch` binary against the Graph simulator.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;

use recarch_graph_sim::{ContentMode, GraphSim, SimConfig};
use sha2::{Digest, Sha256};

mod backends;
pub mod proxy;
pub use backends::{Backend, Store};

/// A test tenant: a running simulator, a temp dir with a config file and a local archive.
pub struct Env {
    pub sim: GraphSim,
    pub dir: tempfile::TempDir,
    pub organizers: Vec<String>,
    /// Where the archive is: local disk (`dir/archive`) unless built with [`Env::on`].
    pub store: Store,
}

impl Env {
    /// A tenant whose simulator serves content as `content_mode` and lists `page_size` items
    /// per delta page (so that rounds span several pages), archiving to local disk.
    pub async fn paged(content_mode: ContentMode, page_size: usize, organizers: usize) -> Env {
        let config = SimConfig {
            content_mode,
            page_size,
            ..SimConfig::default()
        };
        Env::new(config, organizers).await
    }

    /// A tenant whose simulator serves content directly (no redirects), otherwise as
    /// configured by default, archiving to local disk.
    pub async fn direct(organizers: usize) -> Env {
        let config = SimConfig {
            content_mode: ContentMode::Direct,
            ..SimConfig::default()
        };
        Env::new(config, organizers).await
    }

    pub async fn new(config: SimConfig, organizers: usize) -> Env {
        Env::on(Backend::Local, config, organizers)
            .await
            .expect("local disk is always there")
    }

    /// A tenant archiving to `backend`; `None` when that backend's emulator is not running.
    pub async fn on(backend: Backend, config: SimConfig, organizers: usize) -> Option<Env> {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = backend.store(&dir.path().join("archive"))?;
        let sim = GraphSim::start(config).await.expect("simulator starts");
        let organizers = (0..organizers).map(|_| sim.add_organizer()).collect();
        let env = Env {
            sim,
            dir,
            organizers,
            store,
        };
        env.write_config("");
        std::fs::write(env.dir.path().join("secret"), &env.sim.config().client_secret).expect("write secret");
        Some(env)
    }

    /// Creates bucket `name` on this env's S3 server (moto, which takes an unsigned
    /// `CreateBucket`), with Object Lock enabled or not; returns a `Store` at `name/tenant`
    /// with this env's options.
    pub async fn create_bucket(&self, name: &str, object_lock: bool) -> Store {
        let endpoint = self
            .store
            .options
            .iter()
            .find(|(k, _)| k == "aws_endpoint")
            .map(|(_, v)| v.clone())
            .expect("an S3 endpoint");
        let mut request = reqwest::Client::new().put(format!("{endpoint}/{name}"));
        if object_lock {
            request = request.header("x-amz-bucket-object-lock-enabled", "true");
        }
        let created = request.send().await.expect("the S3 server answers");
        assert!(
            created.status().is_success(),
            "create bucket {name}: {}",
            created.status()
        );
        Store {
            url: format!("s3://{name}/tenant"),
            options: self.store.options.clone(),
        }
    }

    /// The archive, opened the way the binary opens it.
    pub fn open_archive(&self) -> recarch_store::Archive {
        recarch_store::Archive::open(&self.store.url, &self.store.options).expect("open archive")
    }

    pub fn archive(&self) -> PathBuf {
        self.dir.path().join("archive")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("recarch.toml")
    }

    /// Writes recarch.toml; `extra` is appended (e.g. a [fetch] section).
    pub fn write_config(&self, extra: &str) {
        self.write_config_with(&format!("{extra}\n{}", self.store.toml()));
    }

    /// Writes recarch.toml: `[graph]` (the simulator, the secret in the file `secret`) and
    /// `[source]` (this tenant's organizers), then `rest` verbatim, which holds the `[store]`
    /// section (e.g. one copied from the README) and any other.
    pub fn write_config_with(&self, rest: &str) {
        let organizers = self
            .organizers
            .iter()
            .map(|o| format!("\"{o}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let text = format!(
            "[graph]\nbase_url = \"{}\"\nauthority_url = \"{}\"\ntenant_id = \"{}\"\nclient_id = \"{}\"\nclient_secret_file = \"secret\"\n\n[source]\norganizers = [{organizers}]\n\n{rest}",
            self.sim.base_url(),
            self.sim.authority_url(),
            self.sim.config().tenant_id,
            self.sim.config().client_id,
        );
        std::fs::write(self.config_path(), text).expect("write config");
    }

    /// Runs `recarch <args> --config <cfg>` with extra environment variables.
    pub async fn recarch(&self, args: &[&str], envs: &[(&str, &str)]) -> Run {
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        all.push("--config".into());
        all.push(self.config_path().display().to_string());
        recarch(&all, envs).await
    }

    pub async fn run(&self) -> Run {
        self.recarch(&["run"], &[]).await
    }

    /// Starts `recarch run` in the background (warnings only on stderr, both streams piped);
    /// the child is killed if the test ends first.
    pub fn spawn_run(&self) -> tokio::process::Child {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_recarch"))
            .args(["run", "--config"])
            .arg(self.config_path())
            .env("RECARCH_LOG", "warn")
            .env_remove("RECARCH_CLIENT_SECRET")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("binary starts")
    }
}

/// Sends SIGTERM to a run started with [`Env::spawn_run`] and waits for it to end.
pub async fn terminate(child: tokio::process::Child) -> std::process::Output {
    let pid = child.id().expect("running").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    child.wait_with_output().await.expect("child ends")
}

/// The outcome of one invocation of the binary.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn assert_code(&self, code: i32) -> &Run {
        assert_eq!(
            self.code, code,
            "exit code; stdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

pub async fn recarch(args: &[String], envs: &[(&str, &str)]) -> Run {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_recarch"));
    cmd.args(args)
        .env("RECARCH_LOG", "info")
        .env_remove("RECARCH_CLIENT_SECRET");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out: Output = cmd.output().await.expect("binary runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The members every line of `recarch ls --json` has (null where an item has none).
pub const LS_MEMBERS: [&str; 8] = [
    "kind",
    "organizerId",
    "id",
    "meetingId",
    "createdDateTime",
    "size",
    "sha256",
    "manifest",
];

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Every file under `root`, as paths relative to it with `/` separators.
pub fn files(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(
                    p.strip_prefix(root)
                        .expect("under root")
                        .to_string_lossy()
                        .replace('\\', "/"),
                );
            }
        }
    }
    out.sort();
    out
}

/// Manifest path of a recording id under the archive.
pub fn manifest_path(archive: &Path, organizer: &str, id: &str) -> PathBuf {
    archive
        .join("manifests/recordings")
        .join(organizer)
        .join(format!("{}.json", sha256_hex(id.as_bytes())))
}

/// The manifest of item `id` of `kind` (`recordings`, `transcripts`, `contacts`) of `org` on
/// local disk, parsed; `None` when there is none.
pub fn manifest_of(env: &Env, kind: &str, org: &str, id: &str) -> Option<serde_json::Value> {
    let path = env
        .archive()
        .join(format!("manifests/{kind}/{org}/{}.json", sha256_hex(id.as_bytes())));
    let text = std::fs::read_to_string(path).ok()?;
    Some(serde_json::from_str(&text).expect("manifest is JSON"))
}

/// Checks the archive holds exactly `expected` (organizer, recording) pairs, each manifest
/// right and each blob re-hashing to its name, and nothing outside the layout.
pub fn assert_archive(env: &Env, expected: &[(String, recarch_graph_sim::RecordingInfo)]) {
    let archive = env.archive();
    for (org, rec) in expected {
        let path = manifest_path(&archive, org, &rec.id);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("manifest of {} at {}: {e}", rec.id, path.display()));
        let m: serde_json::Value = serde_json::from_str(&text).expect("manifest is JSON");
        let sha = env.sim.content_sha256(&rec.id).expect("sim knows the recording");
        assert_eq!(m["schema"], "recarch.manifest.v1");
        assert_eq!(m["kind"], "callRecording");
        assert_eq!(m["id"], rec.id.as_str());
        assert_eq!(m["meetingId"], rec.meeting_id.as_str());
        assert_eq!(m["organizerId"], org.as_str());
        assert_eq!(m["createdDateTime"], rec.created.as_str());
        assert_eq!(m["content"]["sha256"], sha.as_str());
        assert_eq!(m["content"]["size"], rec.size);
        assert_eq!(m["content"]["mediaType"], "video/mp4");
        assert_eq!(m["content"]["blob"], format!("blobs/sha256/{sha}"));
        assert_eq!(m["graph"]["id"], rec.id.as_str());
        assert_eq!(m["graph"]["recordingContentUrl"], rec.content_url.as_str());
        assert!(
            m["graph"]["contentCorrelationId"].is_string(),
            "unknown fields kept: {}",
            m["graph"]
        );
        let archived_at = m["archivedAt"].as_str().expect("archivedAt");
        assert!(
            chrono::DateTime::parse_from_rfc3339(archived_at).is_ok() && archived_at.ends_with('Z'),
            "{archived_at}"
        );
        let blob = std::fs::read(archive.join(format!("blobs/sha256/{sha}"))).expect("blob exists");
        assert_eq!(sha256_hex(&blob), sha, "blob re-hashes to its name");
        assert_eq!(blob.len() as u64, rec.size);
    }
    let all = files(&archive);
    let manifests = all.iter().filter(|f| f.starts_with("manifests/")).count();
    assert_eq!(manifests, expected.len(), "one manifest per recording: {all:#?}");
    for f in &all {
        assert!(in_layout(f), "unexpected object {f} in the archive: {all:#?}");
    }
    for f in all.iter().filter(|f| f.starts_with("blobs/")) {
        let bytes = std::fs::read(archive.join(f)).expect("read blob");
        assert_eq!(format!("blobs/sha256/{}", sha256_hex(&bytes)), *f);
    }
}

/// Whether `key` belongs in an archive after a run that exited 0 (the README's layout, lease gone).
pub fn in_layout(key: &str) -> bool {
    key.starts_with("blobs/sha256/") && key.len() == "blobs/sha256/".len() + 64
        || key.starts_with("manifests/") && key.ends_with(".json")
        || key.starts_with("meetings/") && key.ends_with(".json")
        || key.starts_with("calls/") && key.ends_with(".json")
        || key.starts_with("catalog/") && key.ends_with(".jsonl")
        || key.starts_with("ledger/") && key.len() == "ledger/".len() + 20 + ".json".len() && key.ends_with(".json")
        // Everything under state/ is laid out as the implementation chooses (ARCHITECTURE.md): JSON documents.
        || key.starts_with("state/") && key.ends_with(".json")
        || key.starts_with("runs/") && key.ends_with(".json")
}

/// All (organizer, recording) pairs the simulator holds.
pub fn all_recordings(env: &Env) -> Vec<(String, recarch_graph_sim::RecordingInfo)> {
    env.organizers
        .iter()
        .flat_map(|o| env.sim.recordings(o).into_iter().map(move |r| (o.clone(), r)))
        .collect()
}

/// The newest run report (by `finishedAt`: names of runs within one second may not sort).
pub fn last_report(env: &Env) -> serde_json::Value {
    let dir = env.archive().join("runs");
    files(&dir)
        .iter()
        .map(|f| {
            serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(dir.join(f)).expect("read report"))
                .expect("report is JSON")
        })
        .max_by_key(|r| r["finishedAt"].as_str().unwrap_or_default().to_owned())
        .expect("a run report")
}

/// Every key in `store`, listed past the archive.
pub async fn raw_keys(store: &dyn object_store::ObjectStore) -> Vec<String> {
    raw_keys_under(store, None).await
}

/// The keys under `prefix` (`None`: all) in `store`, listed past the archive.
pub async fn raw_keys_under(store: &dyn object_store::ObjectStore, prefix: Option<&str>) -> Vec<String> {
    use futures::TryStreamExt as _;
    store
        .list(prefix.map(object_store::path::Path::from).as_ref())
        .map_ok(|meta| meta.location.to_string())
        .try_collect()
        .await
        .expect("list the archive")
}

/// The bytes of object `key` of `store`, read past the archive.
pub async fn raw_get(store: &dyn object_store::ObjectStore, key: String) -> Vec<u8> {
    use object_store::ObjectStoreExt as _;
    store
        .get(&object_store::path::Path::from(key.as_str()))
        .await
        .unwrap_or_else(|e| panic!("get {key}: {e}"))
        .bytes()
        .await
        .unwrap_or_else(|e| panic!("read {key}: {e}"))
        .to_vec()
}

/// Writes object `key` of `store` as `bytes`, past the archive.
pub async fn raw_put(store: &dyn object_store::ObjectStore, key: String, bytes: Vec<u8>) {
    use object_store::ObjectStoreExt as _;
    store
        .put(&object_store::path::Path::from(key.as_str()), bytes.into())
        .await
        .unwrap_or_else(|e| panic!("put {key}: {e}"));
}

/// Like [`assert_archive`], through the object store, for any backend: every expected
/// recording has a right manifest and a blob that re-hashes to its name, and nothing outside
/// the layout is left.
pub async fn assert_store_archive(env: &Env, expected: &[(String, recarch_graph_sim::RecordingInfo)]) {
    let archive = env.open_archive();
    let store = archive.object_store();
    let keys = raw_keys(store).await;
    let get = |key: String| raw_get(store, key);
    for (org, rec) in expected {
        let key = format!("manifests/recordings/{org}/{}.json", sha256_hex(rec.id.as_bytes()));
        assert!(keys.contains(&key), "manifest {key} missing: {keys:#?}");
        let m: serde_json::Value = serde_json::from_slice(&get(key).await).expect("manifest is JSON");
        let sha = env.sim.content_sha256(&rec.id).expect("known");
        assert_eq!(m["id"], rec.id.as_str());
        assert_eq!(m["content"]["sha256"], sha.as_str());
        assert_eq!(m["content"]["size"], rec.size);
        assert_eq!(m["graph"]["id"], rec.id.as_str());
        let blob = get(format!("blobs/sha256/{sha}")).await;
        assert_eq!(sha256_hex(&blob), sha);
    }
    let manifests = keys.iter().filter(|k| k.starts_with("manifests/")).count();
    assert_eq!(manifests, expected.len(), "one manifest per recording");
    for k in &keys {
        assert!(in_layout(k), "unexpected object {k}: {keys:#?}");
    }
}
