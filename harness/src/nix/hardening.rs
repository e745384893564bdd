//! Scoring a unit file's sandbox with the host's `systemd-analyze security --offline=true`,
//! which reads the file alone (no running systemd), and saying which directives cost most.

use std::path::Path;
use std::process::Command;

/// The project's budget on systemd-analyze's exposure scale (0 locked down, 10 unprotected);
/// the same as the flake's hardening check and ci/checks.d/40-hardening.sh.
pub const BUDGET: f64 = 1.0;

#[derive(Debug, thiserror::Error)]
pub enum HardeningError {
    #[error("systemd-analyze is not installed or not on PATH: install systemd (Debian: apt-get install systemd; Nix: nix shell nixpkgs#systemd) to score the units")]
    Missing,
    #[error("cannot run systemd-analyze: {0}")]
    Spawn(std::io::Error),
    #[error("systemd-analyze security printed no overall exposure level for {unit} ({status}): {output}")]
    NoScore {
        unit: String,
        status: String,
        output: String,
    },
}

/// A directive that adds to the exposure, as systemd-analyze lists it with a ✗.
#[derive(Debug, Clone, PartialEq)]
pub struct Cost {
    pub directive: String,
    pub description: String,
    pub weight: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    pub exposure: f64,
    /// The costly directives, the heaviest first.
    pub costs: Vec<Cost>,
}

impl Score {
    /// The heaviest directives, for a one-line explanation.
    pub fn costliest(&self, count: usize) -> String {
        self.costs
            .iter()
            .take(count)
            .map(|cost| format!("{} {} ({})", cost.directive, cost.weight, cost.description))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Reads `→ Overall exposure level for NAME: 0.2 SAFE` and the `✗ DIRECTIVE  DESCRIPTION
/// WEIGHT` lines of systemd-analyze's table.
pub fn parse(output: &str) -> Option<Score> {
    let exposure = output.lines().find_map(|line| {
        let rest = line.split("Overall exposure level for ").nth(1)?;
        let (_, value) = rest.split_once(": ")?;
        value.split_whitespace().next()?.parse::<f64>().ok()
    })?;
    let mut costs: Vec<Cost> = output
        .lines()
        .filter_map(|line| {
            let rest = line.trim_start().strip_prefix('✗')?.trim();
            let (directive, rest) = rest.split_once(char::is_whitespace)?;
            let (description, weight) = rest.trim().rsplit_once(char::is_whitespace)?;
            Some(Cost {
                directive: directive.to_string(),
                description: description.trim().to_string(),
                weight: weight.parse().ok()?,
            })
        })
        .collect();
    costs.sort_by(|a, b| b.weight.total_cmp(&a.weight));
    Some(Score { exposure, costs })
}

/// Scores the unit file at `path` (its file name is the unit's name).
pub fn score(path: &Path) -> Result<Score, HardeningError> {
    let output = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(path)
        .output()
        .map_err(|error| {
            if error.kind() == std::io::ErrorKind::NotFound {
                HardeningError::Missing
            } else {
                HardeningError::Spawn(error)
            }
        })?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    parse(&stdout).ok_or_else(|| HardeningError::NoScore {
        unit: path.display().to_string(),
        status: output.status.to_string(),
        output: String::from_utf8_lossy(&output.stderr).trim().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUT: &str =
        "  NAME                 DESCRIPTION                                   EXPOSURE
✓ SystemCallFilter=~@swap  System call allow list defined for service
✗ RootDirectory=/RootImage=  Service runs within the host's root directory      0.1
✗ PrivateNetwork=    Service has access to the host's network                 0.5
✗ NoNewPrivileges=   Service processes may acquire new privileges             0.2
→ Overall exposure level for weak.service: 1.0 OK 🙂
";

    #[test]
    fn reads_the_score_and_the_costliest_directives() {
        let score = parse(OUTPUT).unwrap();
        assert_eq!(score.exposure, 1.0);
        assert_eq!(score.costs.len(), 3);
        assert_eq!(
            score.costliest(2),
            "PrivateNetwork= 0.5 (Service has access to the host's network); NoNewPrivileges= 0.2 (Service processes may acquire new privileges)"
        );
        assert_eq!(parse("no table"), None);
    }
}
