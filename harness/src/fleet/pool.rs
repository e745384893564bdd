//! Runs the hosts of a fleet side by side: up to `parallel` hosts at once, each on a thread of
//! its own (libssh2 sessions block), the next host starting when one finishes. Every host's
//! report is kept in inventory order whatever happens to the others: a host that panics the
//! harness itself is reported as failed with the reason, and `--fail-fast` leaves the hosts
//! not started yet as `not_run`.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::Duration;

use super::host_run::{run_host, without_run, Event, Plan};
use super::inventory::Host;
use crate::report::fleet::{HostReport, HostStatus};

/// The most hosts run at once when `--parallel` is not given: each host holds a thread, an
/// SSH session and an HTTP client, and a machine's file descriptors and the targets' sshd
/// `MaxStartups` (10 unauthenticated connections by default) bound what helps.
pub const DEFAULT_PARALLEL_LIMIT: usize = 32;

/// Runs every host; `observe` sees each event on the calling thread, as it happens, and `None`
/// when nothing happened for a while (so that a live view can show time passing).
pub fn run_all(
    hosts: &[Host],
    plan: &Plan,
    parallel: usize,
    fail_fast: bool,
    observe: &mut dyn FnMut(Option<(usize, Event)>),
) -> Vec<HostReport> {
    let parallel = parallel.clamp(1, hosts.len().max(1));
    let next = AtomicUsize::new(0);
    let reports: Mutex<Vec<Option<HostReport>>> = Mutex::new(vec![None; hosts.len()]);
    let (sender, receiver) = mpsc::channel::<(usize, Event)>();
    std::thread::scope(|scope| {
        for _ in 0..parallel {
            let sender = sender.clone();
            let (next, reports) = (&next, &reports);
            scope.spawn(move || loop {
                let index = next.fetch_add(1, Ordering::SeqCst);
                let Some(host) = hosts.get(index) else {
                    break;
                };
                let report = if fail_fast && plan.stop.load(Ordering::SeqCst) {
                    let reason = "--fail-fast: another host failed first, so this one was not run";
                    without_run(host, plan, HostStatus::NotRun, reason.into())
                } else {
                    let send = |event: Event| {
                        let _ = sender.send((index, event));
                    };
                    catch_unwind(AssertUnwindSafe(|| run_host(index, host, plan, &send)))
                        .unwrap_or_else(|panic| {
                            let reason = format!(
                                "the harness failed on this host (a bug; please report it): {}",
                                panic_text(&panic)
                            );
                            without_run(host, plan, HostStatus::Failed, reason)
                        })
                };
                if fail_fast && report.status != HostStatus::Passed {
                    plan.stop.store(true, Ordering::SeqCst);
                }
                let _ = sender.send((index, Event::Finished(Box::new(report.clone()))));
                if let Ok(mut reports) = reports.lock() {
                    reports[index] = Some(report);
                }
            });
        }
        // Only the workers hold senders now: the loop ends when the last one is done.
        drop(sender);
        loop {
            match receiver.recv_timeout(Duration::from_millis(250)) {
                Ok(update) => observe(Some(update)),
                Err(mpsc::RecvTimeoutError::Timeout) => observe(None),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
    });
    let reports = reports
        .into_inner()
        .unwrap_or_else(|poison| poison.into_inner());
    reports
        .into_iter()
        .zip(hosts)
        .map(|(report, host)| {
            report.unwrap_or_else(|| {
                let reason = "the harness lost this host's result (a bug; please report it)";
                without_run(host, plan, HostStatus::Failed, reason.into())
            })
        })
        .collect()
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|text| text.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}
