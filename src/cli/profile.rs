//! `veridoc profile`: print a built-in or file profile, check profile files.

use std::path::PathBuf;

use super::{exit, Fatal};
use crate::verify::Profile;

/// Output format of `profile print`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Format {
    /// TOML, the format to start a profile file from.
    Toml,
    /// JSON (the form reports hash).
    Json,
}

#[derive(clap::Subcommand, Debug)]
pub(super) enum Command {
    /// Print a profile (every check's range), resolved: a file's `extends` applied.
    Print {
        /// A built-in profile name or a profile file.
        #[arg(default_value = "passport", value_name = "NAME|FILE")]
        profile: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Toml)]
        format: Format,
    },
    /// Check profile files: parse, resolve and validate each; print its name and hash.
    /// Exit 2 when one is invalid.
    Check {
        /// Profile files (or built-in names).
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// List the built-in profiles.
    List,
}

pub(super) fn run(c: Command) -> Result<u8, Fatal> {
    match c {
        Command::Print { profile, format } => {
            let p = Profile::resolve(&profile)?;
            let text = match format {
                Format::Toml => p.to_toml(),
                Format::Json => serde_json::to_string_pretty(&p)? + "\n",
            };
            print!("{text}");
            Ok(exit::OK)
        }
        Command::Check { files } => {
            let mut bad = 0;
            for f in &files {
                match Profile::resolve(&f.to_string_lossy()) {
                    Ok(p) => println!(
                        "ok    {}: profile {} ({})",
                        f.display(),
                        p.name,
                        p.hash_hex()
                    ),
                    Err(e) => {
                        bad += 1;
                        let e = e.to_string();
                        let file = f.display().to_string();
                        if e.contains(&file) {
                            println!("FAIL  {e}");
                        } else {
                            println!("FAIL  {file}: {e}");
                        }
                    }
                }
            }
            if bad > 0 {
                return Err(Fatal(format!("{bad} of {} profiles invalid", files.len())));
            }
            Ok(exit::OK)
        }
        Command::List => {
            for name in Profile::builtin_names() {
                println!("{name}");
            }
            Ok(exit::OK)
        }
    }
}
