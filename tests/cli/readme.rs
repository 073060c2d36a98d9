//! README.md, exercised, so that what it prints cannot drift from what `recarch` does:
//!
//! - every ```toml block parses, and every one that is a configuration (or a fragment of one)
//!   is accepted by recarch's own loader once completed with what it leaves out, as printed
//!   and with each of its commented-out options turned on;
//! - the store examples for the emulators the test suite runs archive for real (`recarch run`
//!   against the Graph simulator, then `recarch verify`), with the README's account, key and
//!   options exactly as printed: only the endpoint's host and port (and the archive's
//!   container and prefix) are the emulator's;
//! - the configuration-key table lists exactly the keys the loader knows, and the usage
//!   synopsis exactly the commands and flags the command line has.

use std::collections::BTreeSet;
use std::path::Path;

use recarch_graph_sim::{ContentMode, SimConfig};

use super::util::{Backend, Env, Store, all_recordings, assert_store_archive, recarch};

/// Placeholders the README prints in values (`"…"`), each given as the README text that holds
/// it, exactly as printed, and what the loader checks get in its place. A value with `…` (or
/// `<…>`) that no entry covers fails the test with its line; an entry that matches no README
/// text fails it too, so this table cannot go stale.
const PLACEHOLDERS: &[(&str, &str)] = &[
    // S3-compatible server: credentials (any value is accepted until a request is signed).
    (
        "aws_access_key_id = \"…\"",
        "aws_access_key_id = \"readme-placeholder-key-id\"",
    ),
    (
        "aws_secret_access_key = \"…\"",
        "aws_secret_access_key = \"readme-placeholder-secret\"",
    ),
    // Azure Blob with an account key: object_store decodes the key as base64 when it builds
    // the client, so the stand-in is base64 ("readme-placeholder").
    (
        "azure_storage_account_key = \"…\"",
        "azure_storage_account_key = \"cmVhZG1lLXBsYWNlaG9sZGVy\"",
    ),
    // Its alternative, a SAS token (a query string: object_store splits it into pairs).
    (
        "azure_storage_sas_key = \"sv=…&sig=…\"",
        "azure_storage_sas_key = \"sv=2022-11-02&sig=readme-placeholder\"",
    ),
];

/// ```toml blocks of README.md that are not recarch configurations and so are only parsed,
/// each named by its first line, with the reason. Empty: every block is a configuration or a
/// fragment of one. An entry that matches no block fails the test, so it cannot go stale.
const NOT_CONFIGURATION: &[(&str, &str)] = &[];

/// README.md, as its readers see it.
fn readme() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// A fenced code block of README.md.
#[derive(Debug, Clone)]
struct Block {
    /// README.md line (1-based) of the opening fence.
    line: usize,
    /// The info string's first word, lowercase (`toml`, `sh`, ...; empty when there is none).
    lang: String,
    /// The content, without the fence's indentation.
    text: String,
}

impl Block {
    /// README.md line of the first content line containing `needle` (the fence's if none).
    fn line_with(&self, needle: &str) -> usize {
        self.text
            .lines()
            .position(|l| l.contains(needle))
            .map_or(self.line, |i| self.line + 1 + i)
    }
}

/// Every fenced code block of `markdown` (backtick fences, indented ones in lists too).
fn fenced_blocks(markdown: &str) -> Vec<Block> {
    struct Open {
        line: usize,
        indent: usize,
        ticks: usize,
        lang: String,
        lines: Vec<String>,
    }
    let mut blocks = Vec::new();
    let mut open: Option<Open> = None;
    for (i, line) in markdown.lines().enumerate() {
        let trimmed = line.trim_start_matches(' ');
        let indent = line.len() - trimmed.len();
        let ticks = trimmed.chars().take_while(|&c| c == '`').count();
        match open.take() {
            None if ticks >= 3 => {
                open = Some(Open {
                    line: i + 1,
                    indent,
                    ticks,
                    lang: trimmed[ticks..]
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_ascii_lowercase(),
                    lines: Vec::new(),
                });
            }
            None => {}
            Some(block) if ticks >= block.ticks && trimmed[ticks..].trim().is_empty() => {
                blocks.push(Block {
                    line: block.line,
                    lang: block.lang,
                    text: block.lines.join("\n") + "\n",
                });
            }
            Some(mut block) => {
                block.lines.push(line[indent.min(block.indent)..].to_owned());
                open = Some(block);
            }
        }
    }
    if let Some(block) = open {
        panic!("README.md:{}: a fenced block is never closed", block.line);
    }
    blocks
}

/// The README's ```toml blocks.
fn toml_blocks() -> Vec<Block> {
    let blocks: Vec<Block> = fenced_blocks(&readme())
        .into_iter()
        .filter(|b| b.lang == "toml")
        .collect();
    assert!(
        !blocks.is_empty(),
        "README.md has no ```toml block: is the extraction broken?"
    );
    blocks
}

/// `table[key]` as a table, made if absent; `None` when it holds something else.
fn table<'a>(table: &'a mut toml::Table, key: &str) -> Option<&'a mut toml::Table> {
    table
        .entry(key)
        .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        .as_table_mut()
}

/// A README fragment completed with the minimum it leaves out, for `env`'s simulator: the
/// Graph endpoints (unless it names a cloud or its own), a tenant and client id and the
/// client secret (for `auth = "workload_identity"` instead the variables the README says the
/// AKS webhook sets, which fill them in), one organizer, and a local `file://` store when it
/// has no `[store]`. Returns the configuration and the environment to load it with.
fn complete(env: &Env, fragment: &toml::Table) -> Result<(toml::Table, Vec<(String, String)>), String> {
    let mut config = fragment.clone();
    let mut vars = Vec::new();
    let sim = env.sim.config();
    let graph = table(&mut config, "graph").ok_or("[graph] is not a table")?;
    let auth = graph
        .get("auth")
        .and_then(toml::Value::as_str)
        .unwrap_or("secret")
        .to_owned();
    let str_value = |s: &str| toml::Value::String(s.to_owned());
    if !graph.contains_key("cloud") {
        graph
            .entry("base_url")
            .or_insert_with(|| str_value(&env.sim.base_url()));
        graph
            .entry("authority_url")
            .or_insert_with(|| str_value(&env.sim.authority_url()));
    }
    if auth == "workload_identity" {
        let token = env.dir.path().join("federated-token");
        std::fs::write(&token, "readme-federated-token").map_err(|e| e.to_string())?;
        vars.push(("AZURE_TENANT_ID".to_owned(), sim.tenant_id.clone()));
        vars.push(("AZURE_CLIENT_ID".to_owned(), sim.client_id.clone()));
        vars.push(("AZURE_FEDERATED_TOKEN_FILE".to_owned(), token.display().to_string()));
    } else {
        graph.entry("tenant_id").or_insert_with(|| str_value(&sim.tenant_id));
        graph.entry("client_id").or_insert_with(|| str_value(&sim.client_id));
        if auth == "secret" && !graph.contains_key("client_secret_env") && !graph.contains_key("client_secret_file") {
            let secret = env.dir.path().join("secret");
            graph.insert("client_secret_file".into(), str_value(&secret.display().to_string()));
        }
    }
    let source = table(&mut config, "source").ok_or("[source] is not a table")?;
    let given = ["organizers", "organizers_file", "organizers_group", "organizers_all"];
    if !given.iter().any(|k| source.contains_key(*k)) {
        source.insert(
            "organizers".into(),
            toml::Value::Array(vec![str_value(&env.organizers[0])]),
        );
    }
    if !config.contains_key("store") {
        let archive = env.dir.path().join("readme-archive");
        let url = url::Url::from_directory_path(&archive).map_err(|()| "archive path is not absolute")?;
        let store = table(&mut config, "store").ok_or("[store] is not a table")?;
        store.insert("url".into(), str_value(url.as_str()));
    }
    Ok((config, vars))
}

/// Loads `config` the way the binary does (the file through `Config::load`, then its store
/// opened as a run opens it, which checks the `[store.options]` keys without contacting it).
fn load(env: &Env, config: &toml::Table, vars: &[(String, String)]) -> Result<(), String> {
    let path = env.dir.path().join("readme-example.toml");
    let text = toml::to_string(config).map_err(|e| format!("cannot write it back as TOML: {e}"))?;
    std::fs::write(&path, text).map_err(|e| e.to_string())?;
    let loaded = recarch::config::Config::load(&path, vars).map_err(|e| e.to_string())?;
    recarch_store::Archive::open(&loaded.store.url, &loaded.store.options).map_err(|e| format!("[store]: {e}"))?;
    Ok(())
}

/// The keys the loader knows in `section` (`None`: its sections), read from its own message
/// for an unknown key, so that this test keeps no list of its own.
fn loader_keys(env: &Env, section: Option<&str>) -> BTreeSet<String> {
    const PROBE: &str = "readme_no_such_key";
    let (mut config, vars) = complete(env, &toml::Table::new()).expect("an empty fragment completes");
    let into = match section {
        None => &mut config,
        Some(name) => table(&mut config, name).expect("a table"),
    };
    into.insert(PROBE.into(), toml::Value::Integer(1));
    let message = load(env, &config, &vars).expect_err("an unknown key is refused");
    let expected = message
        .split_once(&format!("unknown field `{PROBE}`, expected"))
        .unwrap_or_else(|| panic!("the loader's message for an unknown key changed: {message}"))
        .1;
    let keys: BTreeSet<String> = expected.split('`').skip(1).step_by(2).map(str::to_owned).collect();
    assert!(!keys.is_empty(), "{message}");
    keys
}

/// `text` with every [`PLACEHOLDERS`] entry substituted; records which entries were used.
fn substitute_placeholders(text: &str, used: &mut BTreeSet<&'static str>) -> String {
    let mut out = text.to_owned();
    for (printed, replacement) in PLACEHOLDERS {
        if out.contains(printed) {
            used.insert(printed);
            out = out.replace(printed, replacement);
        }
    }
    out
}

/// Every string value of `value` (a key path for each), to look for placeholders in.
fn strings(path: &str, value: &toml::Value, out: &mut Vec<(String, String)>) {
    match value {
        toml::Value::String(s) => out.push((path.to_owned(), s.clone())),
        toml::Value::Array(items) => {
            for item in items {
                strings(path, item, out);
            }
        }
        toml::Value::Table(t) => {
            for (k, v) in t {
                let path = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                strings(&path, v, out);
            }
        }
        _ => {}
    }
}

/// A commented-out option of a block, to be turned on: a comment line `# key = value`, or an
/// alternative to a setting in its trailing comment (`a = "x"   # or: b = "y"`).
struct Commented {
    /// README.md line.
    line: usize,
    /// The path of the table it is in.
    table: Vec<String>,
    /// The option.
    key: String,
    /// Its value.
    value: toml::Value,
    /// For an alternative, the key of the setting it replaces.
    replaces: Option<String>,
}

/// The block's commented-out options: comment lines that are one `key = value` in TOML, and
/// `# or: key = value` alternatives. Prose comments (and alternatives only described in
/// prose) are not TOML and are not among them.
fn commented_options(block: &Block, text: &str) -> Vec<Commented> {
    let mut out = Vec::new();
    let mut path: Vec<String> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if let Some((header, _)) = line.strip_prefix('[').and_then(|h| h.split_once(']')) {
            path = header.split('.').map(|s| s.trim().to_owned()).collect();
        } else if let Some(comment) = line.strip_prefix('#') {
            let Ok(kv) = comment.parse::<toml::Table>() else {
                continue;
            };
            if let Some((key, value)) = kv.into_iter().next().filter(|(_, v)| !v.is_table()) {
                out.push(Commented {
                    line: block.line + 1 + i,
                    table: path.clone(),
                    key,
                    value,
                    replaces: None,
                });
            }
        } else if let Some((setting, alternative)) = line.split_once("# or:") {
            let (Ok(setting), Ok(alternative)) = (setting.parse::<toml::Table>(), alternative.parse::<toml::Table>())
            else {
                continue;
            };
            if let (Some(replaced), Some((key, value))) = (setting.keys().next(), alternative.into_iter().next()) {
                out.push(Commented {
                    line: block.line + 1 + i,
                    table: path.clone(),
                    key,
                    value,
                    replaces: Some(replaced.clone()),
                });
            }
        }
    }
    out
}

/// README.md line of a TOML error in `block`.
fn error_line(block: &Block, e: &toml::de::Error) -> usize {
    e.span().map_or(block.line, |span| {
        block.line + 1 + block.text[..span.start].matches('\n').count()
    })
}

/// Every ```toml block parses; every configuration or fragment, as printed and with each of
/// its commented-out options or alternatives, is accepted by the loader once completed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_toml_example_parses_and_the_loader_accepts_it() {
    let env = Env::new(SimConfig::default(), 1).await;
    let sections = loader_keys(&env, None);
    let mut failures: Vec<String> = Vec::new();
    let mut used_placeholders = BTreeSet::new();
    let mut used_exceptions = BTreeSet::new();
    let mut exercised = 0;
    for block in toml_blocks() {
        let first_line = block.text.lines().next().unwrap_or_default().trim().to_owned();
        let printed: toml::Table = match block.text.parse() {
            Ok(t) => t,
            Err(e) => {
                failures.push(format!(
                    "README.md:{}: not TOML: {}",
                    error_line(&block, &e),
                    e.message()
                ));
                continue;
            }
        };
        if let Some((name, _reason)) = NOT_CONFIGURATION.iter().find(|(name, _)| *name == first_line) {
            used_exceptions.insert(*name);
            continue;
        }
        let foreign: Vec<&String> = printed
            .iter()
            .filter(|(k, v)| !sections.contains(*k) || !v.is_table())
            .map(|(k, _)| k)
            .collect();
        if !foreign.is_empty() {
            failures.push(format!(
                "README.md:{}: a ```toml block whose top level ({foreign:?}) is not recarch's configuration \
                 (sections {sections:?}): the test cannot exercise it; fix it, or list it in NOT_CONFIGURATION with the reason",
                block.line
            ));
            continue;
        }
        let text = substitute_placeholders(&block.text, &mut used_placeholders);
        let base: toml::Table = text.parse().expect("placeholder substitutions keep the TOML valid");
        // The block as printed, then with each commented-out option turned on (a key the block
        // sets takes the commented value instead), and each `# or:` alternative in place of
        // the setting it follows.
        let mut variants = vec![(String::from("as printed"), base.clone())];
        for option in commented_options(&block, &text) {
            let mut variant = base.clone();
            let mut into = &mut variant;
            for name in &option.table {
                into = table(into, name).expect("a table path of the block");
            }
            let what = match &option.replaces {
                Some(replaced) => {
                    into.remove(replaced);
                    format!(
                        "with `{}` instead of `{replaced}` (README.md:{})",
                        option.key, option.line
                    )
                }
                None => format!("with `{}` (README.md:{}) turned on", option.key, option.line),
            };
            into.insert(option.key, option.value);
            variants.push((what, variant));
        }
        for (what, variant) in variants {
            let mut values = Vec::new();
            strings("", &toml::Value::Table(variant.clone()), &mut values);
            let placeholders: Vec<String> = values
                .iter()
                .filter(|(_, v)| v.contains('…') || (v.starts_with('<') && v.ends_with('>')))
                .map(|(k, v)| {
                    let key = k.rsplit('.').next().unwrap_or(k);
                    format!("README.md:{}: {k} = {v:?}", block.line_with(&format!("{key} = ")))
                })
                .collect();
            if !placeholders.is_empty() {
                failures.push(format!(
                    "{}: placeholders the test has no substitution for (add them to PLACEHOLDERS)",
                    placeholders.join(", ")
                ));
                continue;
            }
            let loaded = complete(&env, &variant).and_then(|(config, vars)| load(&env, &config, &vars));
            match loaded {
                Ok(()) => exercised += 1,
                Err(e) => failures.push(format!(
                    "README.md:{}: the example {what}, completed, is refused by recarch's configuration loader: {e}",
                    block.line
                )),
            }
        }
    }
    for (printed, _) in PLACEHOLDERS {
        if !used_placeholders.contains(printed) {
            failures.push(format!(
                "PLACEHOLDERS entry {printed:?} matches nothing in README.md: remove it"
            ));
        }
    }
    for (name, _) in NOT_CONFIGURATION {
        if !used_exceptions.contains(name) {
            failures.push(format!(
                "NOT_CONFIGURATION entry {name:?} names no ```toml block of README.md: remove it"
            ));
        }
    }
    // A placeholder shows once, not once per variant of its block.
    failures.dedup();
    assert!(
        failures.is_empty(),
        "README.md's TOML examples:\n{}",
        failures.join("\n")
    );
    eprintln!("{exercised} README configurations (examples and their commented-out options) accepted");
}

/// Which emulator a README store example runs on, and how it is fitted to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    /// An Azurite example (an `azure_storage_endpoint` on loopback): only the endpoint's host
    /// and port are the emulator's; account name, key and options are the README's.
    Azurite,
    /// An example for a local S3 emulator (an `aws_endpoint` on loopback), run on moto (which
    /// takes any key): only the endpoint's host and port are the emulator's.
    LocalS3,
    /// The template for an S3-compatible server (an `aws_endpoint` elsewhere), run on
    /// SeaweedFS (which checks signatures): the endpoint's scheme, host and port, the
    /// placeholder credentials and the commented-out `aws_allow_http` (for plain-http servers,
    /// as the README says) are the emulator's; region and the other options are the README's.
    S3Template,
}

/// The README's store examples that run on an emulator of `kind`.
fn emulator_examples(kind: &[Target]) -> Vec<(Block, Target)> {
    let loopback = |endpoint: &str| {
        url::Url::parse(endpoint).is_ok_and(|u| matches!(u.host_str(), Some("127.0.0.1" | "localhost" | "[::1]")))
    };
    toml_blocks()
        .into_iter()
        .filter_map(|block| {
            let printed: toml::Table = block.text.parse().ok()?;
            let options = printed.get("store")?.get("options")?;
            let option = |key: &str| options.get(key).and_then(toml::Value::as_str).map(str::to_owned);
            let target = match (option("azure_storage_endpoint"), option("aws_endpoint")) {
                (Some(endpoint), _) if loopback(&endpoint) => Target::Azurite,
                (_, Some(endpoint)) if loopback(&endpoint) => Target::LocalS3,
                (_, Some(_)) => Target::S3Template,
                _ => return None,
            };
            kind.contains(&target).then_some((block, target))
        })
        .collect()
}

/// `endpoint` with its scheme and authority (`host:port`) taken from `from`, its path kept.
fn with_origin_of(endpoint: &str, from: &str, keep_scheme: bool) -> String {
    let split = |url: &str| -> (String, String, String) {
        let (scheme, rest) = url.split_once("://").unwrap_or_else(|| panic!("{url:?} is not a URL"));
        let end = rest.find('/').unwrap_or(rest.len());
        (scheme.to_owned(), rest[..end].to_owned(), rest[end..].to_owned())
    };
    let (scheme, _, path) = split(endpoint);
    let (their_scheme, authority, _) = split(from);
    let scheme = if keep_scheme { scheme } else { their_scheme };
    format!("{scheme}://{authority}{path}")
}

/// `text` with the one occurrence of `from` replaced by `to`.
fn replace_once(block: &Block, text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "README.md:{}: {from} should occur once in the example",
        block.line
    );
    text.replacen(from, to, 1)
}

/// Runs the README store example `block` on its emulator: `recarch run` against the Graph
/// simulator into it exits 0 and archives everything, and `recarch verify` exits 0. Skipped
/// (with a note) when the emulator is not running, a failure if `RECARCH_REQUIRE_EMULATORS` is set.
async fn archives_and_verifies(block: &Block, target: Target) {
    let backend = match target {
        Target::Azurite => Backend::Azure,
        Target::LocalS3 => Backend::S3,
        Target::S3Template => Backend::SeaweedFs,
    };
    let scratch = tempfile::tempdir().expect("tempdir");
    // The emulator's store for a fresh prefix. The archive goes there rather than to the
    // README's container or bucket: that one does not exist on the emulator (the README says
    // it must be created beforehand), and under one fixed prefix every run against a
    // long-lived emulator would share one archive. The emulator's own container or bucket,
    // made by scripts/emulators.sh, with a fresh prefix is what every end-to-end test uses
    // (tests/util/backends.rs), so runs never meet.
    let Some(emulator) = backend.store(scratch.path()) else {
        eprintln!(
            "SKIPPED README.md:{}: the {target:?} example (no {backend:?} emulator)",
            block.line
        );
        return;
    };
    let emulator_option = |key: &str| {
        emulator
            .options
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{backend:?} store has no {key}"))
    };
    let printed: toml::Table = block.text.parse().expect("the example is TOML");
    let printed_options = printed["store"]["options"].as_table().expect("[store.options]").clone();
    let printed_url = printed["store"]["url"].as_str().expect("[store].url");
    let mut text = replace_once(
        block,
        &block.text,
        &format!("\"{printed_url}\""),
        &format!("\"{}\"", emulator.url),
    );
    let endpoint_key = if target == Target::Azurite {
        "azure_storage_endpoint"
    } else {
        "aws_endpoint"
    };
    let printed_endpoint = printed_options[endpoint_key].as_str().expect("an endpoint");
    let mut substituted = vec![endpoint_key];
    let endpoint = with_origin_of(
        printed_endpoint,
        &emulator_option(endpoint_key),
        target != Target::S3Template,
    );
    text = replace_once(
        block,
        &text,
        &format!("\"{printed_endpoint}\""),
        &format!("\"{endpoint}\""),
    );
    if target == Target::S3Template {
        for key in ["aws_access_key_id", "aws_secret_access_key"] {
            text = replace_once(
                block,
                &text,
                &format!("{key} = \"…\""),
                &format!("{key} = \"{}\"", emulator_option(key)),
            );
            substituted.push(key);
        }
        if endpoint.starts_with("http://") {
            // The README prints it commented out, "only for plain-http test servers".
            let allow = text
                .lines()
                .map(|line| match line.trim_start().strip_prefix('#') {
                    Some(rest) if rest.trim_start().starts_with("aws_allow_http") => rest.trim_start(),
                    _ => line,
                })
                .collect::<Vec<_>>()
                .join("\n");
            text = allow + "\n";
            substituted.push("aws_allow_http");
        }
    }
    let adapted: toml::Table = text.parse().expect("the adapted example is TOML");
    let options = adapted["store"]["options"].as_table().expect("[store.options]");
    // Everything else is as printed (so that a wrong account, key or option fails here).
    for (key, value) in &printed_options {
        if !substituted.contains(&key.as_str()) {
            assert_eq!(options.get(key), Some(value), "README.md:{}: {key}", block.line);
        }
    }
    eprintln!(
        "README.md:{}: the {target:?} example on {backend:?}, as run:\n{text}",
        block.line
    );

    let mut env = Env::new(
        SimConfig {
            content_mode: ContentMode::Redirect,
            page_size: 2,
            ..SimConfig::default()
        },
        1,
    )
    .await;
    env.store = Store {
        url: emulator.url.clone(),
        options: options
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().expect("string options").to_owned()))
            .collect(),
    };
    env.write_config_with(&text);
    // One recording above the 5 MiB upload part size, so that uploads come in parts too.
    for size in [1_000, 300_000, 6 << 20] {
        env.sim.add_recording(&env.organizers[0], size);
    }
    let run = env.run().await;
    assert_eq!(
        run.code, 0,
        "README.md:{}: `recarch run` with the {target:?} example on {backend:?}; stdout:\n{}\nstderr:\n{}",
        block.line, run.stdout, run.stderr
    );
    assert!(run.stdout.contains("3 archived"), "{}", run.stdout);
    assert_store_archive(&env, &all_recordings(&env)).await;
    let verify = env.recarch(&["verify"], &[]).await;
    assert_eq!(
        verify.code, 0,
        "README.md:{}: `recarch verify` with the {target:?} example on {backend:?}; stdout:\n{}\nstderr:\n{}",
        block.line, verify.stdout, verify.stderr
    );
    assert!(verify.stdout.contains("0 problems"), "{}", verify.stdout);
}

/// The Azurite example archives and verifies on Azurite with its account and key as printed:
/// a wrong key is refused (403) and fails this test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_azurite_example_archives_and_verifies_on_azurite() {
    let examples = emulator_examples(&[Target::Azurite]);
    assert!(
        !examples.is_empty(),
        "README.md has no Azurite example (an azure_storage_endpoint on loopback) any more"
    );
    for (block, target) in examples {
        archives_and_verifies(&block, target).await;
    }
}

/// The S3-compatible server examples archive and verify: a local emulator example on moto, the
/// template for other servers on SeaweedFS (see [`Target`]).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_s3_compatible_examples_archive_and_verify_on_the_s3_emulators() {
    let examples = emulator_examples(&[Target::LocalS3, Target::S3Template]);
    assert!(
        !examples.is_empty(),
        "README.md has no S3-compatible server example (an aws_endpoint) any more"
    );
    for (block, target) in examples {
        archives_and_verifies(&block, target).await;
    }
}

/// The README's configuration table names every key the loader knows, and no other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configuration_table_lists_exactly_the_loaders_keys() {
    let readme = readme();
    let start = readme.find("\n## Configuration\n").expect("a Configuration section");
    let section = &readme[start + 1..];
    let section = &section[..section[1..].find("\n#").map_or(section.len(), |i| i + 1)];
    // Rows like "| `[graph].cloud` | ..." and "| `[store.options]` | ...".
    let documented: BTreeSet<String> = section
        .lines()
        .filter_map(|line| line.strip_prefix("| `[")?.split_once('`'))
        .map(|(key, _)| key.replace("].", ".").replace(']', ""))
        .collect();
    let env = Env::new(SimConfig::default(), 1).await;
    let mut known = BTreeSet::new();
    for section in loader_keys(&env, None) {
        for key in loader_keys(&env, Some(&section)) {
            known.insert(format!("{section}.{key}"));
        }
    }
    assert_eq!(
        documented,
        known,
        "README.md's configuration table against the loader: undocumented {:?}, unknown to the loader {:?}",
        known.difference(&documented).collect::<Vec<_>>(),
        documented.difference(&known).collect::<Vec<_>>()
    );
}

/// The `--flags` named in `text`.
fn flags(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|w| w.len() > 2 && w.starts_with("--") && w.as_bytes()[2].is_ascii_lowercase())
        .map(str::to_owned)
        .collect()
}

/// The README's usage synopsis names every command and each command's flags (beside the
/// global ones, documented under Logs), and no other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_usage_synopsis_matches_the_command_line() {
    let readme = readme();
    let usage = readme.find("\n## Usage\n").expect("a Usage section");
    let usage_line = readme[..usage].lines().count() + 2;
    let synopsis = fenced_blocks(&readme)
        .into_iter()
        .find(|b| b.line > usage_line && b.lang.is_empty())
        .expect("a synopsis block under Usage");
    let help = |args: &[&str]| {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        async move {
            let out = recarch(&args, &[]).await;
            out.assert_code(0);
            out.stdout
        }
    };
    let top = help(&["--help"]).await;
    let commands: BTreeSet<String> = top
        .split_once("Commands:")
        .expect("a command list")
        .1
        .lines()
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_owned)
        .collect();
    let global = flags(top.split_once("Options:").expect("options").1);
    let mut documented = BTreeSet::new();
    for (i, line) in synopsis.text.lines().enumerate() {
        let at = synopsis.line + 1 + i;
        let command = line
            .strip_prefix("recarch ")
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("README.md:{at}: not a `recarch <command>` line: {line}"));
        documented.insert(command.to_owned());
        if !commands.contains(command) {
            continue;
        }
        let printed = flags(line);
        let own = help(&[command, "--help"]).await;
        // A command with subcommands (`hold place`): its line names one, with its flags.
        let subcommands: BTreeSet<&str> = own
            .split_once("Commands:")
            .map(|(_, list)| {
                list.lines()
                    .skip(1)
                    .take_while(|l| !l.trim().is_empty())
                    .filter_map(|l| l.split_whitespace().next())
                    .filter(|c| *c != "help")
                    .collect()
            })
            .unwrap_or_default();
        let mut has = flags(own.split_once("Commands:").map_or(own.as_str(), |(_, rest)| rest));
        let sub = line.split_whitespace().skip(2).find(|w| subcommands.contains(w));
        if let Some(sub) = sub {
            has.extend(flags(&help(&[command, sub, "--help"]).await));
        } else {
            assert!(
                subcommands.is_empty(),
                "README.md:{at}: `recarch {command}` needs one of {subcommands:?}"
            );
        }
        let has: BTreeSet<String> = has.into_iter().filter(|f| !global.contains(f)).collect();
        assert_eq!(
            printed,
            has,
            "README.md:{at}: the flags of `recarch {command}{}` (beside the global ones)",
            sub.map(|s| format!(" {s}")).unwrap_or_default()
        );
    }
    assert_eq!(documented, commands, "README.md:{}: the commands", synopsis.line);
}
