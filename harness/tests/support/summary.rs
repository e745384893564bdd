//! The check every end-to-end run shares: the harness exited 0 and closed with this summary.

use std::process::Output;

use libtest_mimic::Failed;

/// Ok when `output` is exit 0 with `expected` ("N passed, N failed, N skipped") as its last
/// line; else the failure with both streams.
pub fn expect_summary(output: &Output, expected: &str) -> Result<(), Failed> {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    if output.status.code() != Some(0) || last != expected {
        return Err(format!(
            "expected exit 0 and {expected:?}, got {} and {last:?}:\n{stdout}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    Ok(())
}
