//! What a target offers (systemd, root), probed once per run so that steps needing what it
//! lacks are skipped with the reason.

use std::time::Duration;

use crate::scenario::Capability;
use crate::target::{Command, Target};

#[derive(Debug, Clone)]
pub struct Capabilities {
    systemd: Result<(), String>,
    root: Result<(), String>,
}

impl Capabilities {
    pub fn probe(target: &dyn Target) -> Self {
        let timeout = Duration::from_secs(15);
        let systemd = match target.exec(&Command::new(
            ["test", "-d", "/run/systemd/system"],
            timeout,
        )) {
            Ok(output) if output.exit_code == Some(0) => Ok(()),
            Ok(_) => Err(format!(
                "{} does not run systemd (/run/systemd/system is absent)",
                target.describe()
            )),
            Err(error) => Err(format!("could not probe for systemd: {error}")),
        };
        let root = match target.exec(&Command::new(["id", "-u"], timeout)) {
            Ok(output) if output.stdout_text().trim() == "0" => Ok(()),
            Ok(output) => Err(format!(
                "{} runs commands as uid {}, not root",
                target.describe(),
                output.stdout_text().trim()
            )),
            Err(error) => Err(format!("could not probe the user id: {error}")),
        };
        Self { systemd, root }
    }

    /// The reason the first missing capability gives, if any is missing.
    pub fn missing(&self, required: &[Capability]) -> Option<String> {
        required.iter().find_map(|capability| {
            let state = match capability {
                Capability::Systemd => &self.systemd,
                Capability::Root => &self.root,
            };
            state
                .as_ref()
                .err()
                .map(|reason| format!("needs {}: {reason}", capability.name()))
        })
    }
}
