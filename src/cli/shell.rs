//! `wharf completion SHELL` and `wharf man`: completion scripts (clap_complete) and manual pages
//! (clap_mangen) generated from the same command definitions as `--help`, so they never
//! disagree with the binary.

use std::path::Path;

use clap::CommandFactory;

use super::args::Args;
use super::{CliError, CliResult, Exit};

/// `wharf completion SHELL`: the completion script on stdout (written whole; a reader that
/// stops early, as `| head` does, is not an error).
pub fn completion(shell: clap_complete::Shell) -> CliResult {
    use std::io::Write;
    let mut command = Args::command();
    // Into memory first: clap_complete panics on a failed write.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "wharf", &mut script);
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(&script).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(Exit::Ok),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(Exit::Ok),
        Err(e) => Err(CliError::new(
            Exit::Failure,
            format!("writing the completion script: {e}"),
        )),
    }
}

/// `wharf man [--out DIR]`: `wharf.1` and a page per command (`wharf-serve.1`,
/// `wharf-images-pull.1`, …) in `out`, created if missing; existing pages are replaced.
pub fn man(out: &Path) -> CliResult {
    let failed =
        |e: std::io::Error| CliError::new(Exit::Failure, format!("{}: {e}", out.display()));
    std::fs::create_dir_all(out).map_err(failed)?;
    clap_mangen::generate_to(Args::command(), out).map_err(failed)?;
    println!("wrote the manual pages to {}", out.display());
    Ok(Exit::Ok)
}
