//! What the benchmarks share: reading their command line, and the `[graph]` section of a
//! configuration for the simulator. Each benchmark uses a part of it.

#![allow(dead_code)]

use recarch_graph_sim::GraphSim;

/// The benchmark's arguments (the program name left out), and whether `cargo bench` runs it
/// (a `--bench` argument) rather than `cargo test` (which runs it at a smoke size).
pub fn command_line() -> (Vec<String>, bool) {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let benching = raw.iter().any(|a| a == "--bench");
    (raw, benching)
}

/// The arguments `parse` reads, or, when they are wrong, the error on stderr and exit 2.
pub fn args_or_exit<T>(parse: impl FnOnce() -> Result<T, String>) -> T {
    parse().unwrap_or_else(|e| {
        eprintln!("error: {e}");
        std::process::exit(2);
    })
}

/// The value of the option `name`: the next argument of `it`.
pub fn value<'a>(it: &mut impl Iterator<Item = &'a String>, name: &str) -> Result<&'a String, String> {
    it.next().ok_or(format!("{name} needs a value"))
}

/// The value of the option `name` (the next argument of `it`), a number.
pub fn number<'a>(it: &mut impl Iterator<Item = &'a String>, name: &str) -> Result<u64, String> {
    value(it, name)?.parse::<u64>().map_err(|e| format!("{name}: {e}"))
}

/// The `[graph]` section of a configuration for `sim`, its client secret read from the file
/// `secret` beside the configuration.
pub fn graph_section(sim: &GraphSim) -> String {
    format!(
        "[graph]\nbase_url = \"{}\"\nauthority_url = \"{}\"\ntenant_id = \"{}\"\nclient_id = \"{}\"\nclient_secret_file = \"secret\"\n",
        sim.base_url(),
        sim.authority_url(),
        sim.config().tenant_id,
        sim.config().client_id,
    )
}
